"""Hedge fills: a Kraken order's cumulative execution turned into whole-lot fills, sans-I/O.

The hedger polls each hedge order and sees its cumulative ``vol_exec``, ``cost`` and ``fee``;
:class:`HedgeFills` decides what that means for the quoter, who books TrueX lots: the new volume plus
the order's sub-lot carry, in whole lots (the final remainder of an ended order rounded to the nearest
lot), at the average price of the new slice, with the slice's fee. The fill's id is the order's id and
its cumulative volume, so a slice seen twice (a restart) has the same id and is published once.

An execution that cannot be true (fastmm.core.vet) is refused: the hedger halts, nothing is published.
The shell journals every :class:`HedgeSlice` (a sub-lot one too: it carries state across a restart),
then publishes those with ``publish``. Amounts are integers of 1e-8; no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from fastmm.core.vet import execution_problem


@dataclass(frozen=True, slots=True)
class HedgeSlice:
    """What one look at an order adds: ``lots`` whole lots (0: carried, not published)."""

    cl_ord_id: str
    exec_id: str
    lots: int
    price_e8: int        # average price of this slice, rounded half-even to 1e-8
    fee_e8: int          # this slice's fee
    vol_exec_e8: int     # the order's cumulative state after this slice
    cost_e8: int
    fee_cum_e8: int
    carry_e8: int        # executed volume below one lot, not yet published
    publish: bool        # whole lots never published before under this id


@dataclass(frozen=True, slots=True)
class Refused:
    """An execution report that cannot be true: why."""

    problem: str


def _div_half_even(n: int, d: int) -> int:
    q, r = divmod(n, d)
    if 2 * r > d or (2 * r == d and q % 2):
        q += 1
    return q


class HedgeFills:
    """Per hedge order: what was executed when last seen, the sub-lot carry; the fill ids published."""

    def __init__(self, lot_e8: int, executed: Mapping[str, tuple[int, int, int]] | None = None,
                 carry_e8: Mapping[str, int] | None = None, published: Iterable[str] = ()) -> None:
        if lot_e8 <= 0:
            raise ValueError(f"lot of {lot_e8} e-8 BTC")
        self.lot_e8 = lot_e8
        # cl_ord_id -> (vol_exec, cost, cumulative fee) as last journalled
        self.executed: dict[str, tuple[int, int, int]] = dict(executed or {})
        self.carry_e8: dict[str, int] = dict(carry_e8 or {})
        self.published: set[str] = set(published)

    @property
    def count(self) -> int:
        """Fills published (or decided to be: the quoter's booked count catches up to this)."""
        return len(self.published)

    def vol_exec_e8(self, cl: str) -> int:
        return self.executed.get(cl, (0, 0, 0))[0]

    def observe(self, cl: str, order_id: str, volume_e8: int, vol_exec_e8: int, cost_e8: int,
                fee_cum_e8: int, closed: bool) -> HedgeSlice | Refused | None:
        """Order ``cl`` (Kraken's ``order_id``, ``volume_e8`` what we sent) now shows this cumulative
        execution; ``closed`` when it has ended. None: nothing new."""
        prev_vol, prev_cost, prev_fee = self.executed.get(cl, (0, 0, 0))
        problem = execution_problem(volume_e8, vol_exec_e8, prev_vol, Decimal(cost_e8).scaleb(-8),
                                    Decimal(fee_cum_e8).scaleb(-8))
        if problem is not None:
            return Refused(problem)
        if vol_exec_e8 <= prev_vol:
            return None
        d_vol = vol_exec_e8 - prev_vol
        lots, carry = divmod(self.carry_e8.get(cl, 0) + d_vol, self.lot_e8)
        if closed and carry >= self.lot_e8 // 2:      # round the final remainder to the nearest lot
            lots, carry = lots + 1, carry - self.lot_e8
        exec_id = f"{order_id or cl}:{vol_exec_e8}"
        publish = lots > 0 and exec_id not in self.published
        self.executed[cl] = (vol_exec_e8, cost_e8, fee_cum_e8)
        self.carry_e8[cl] = carry
        if publish:
            self.published.add(exec_id)
        return HedgeSlice(cl, exec_id, lots, _div_half_even((cost_e8 - prev_cost) * 10**8, d_vol),
                          fee_cum_e8 - prev_fee, vol_exec_e8, cost_e8, fee_cum_e8, carry, publish)
