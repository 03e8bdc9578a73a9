"""The firm-wide position cap as bounds on this instance's position. Pure.

Several engines of one firm trade the same base asset; each publishes its position to Redis and reads
the others' (fastmm.db.firm). ``risk.firm_max_position_btc`` caps |own + others|, which bounds this
instance's own position to ``[-(cap + others), cap - others]``: :func:`firm_bounds` gives
``(max long, max short)`` in lots. The quote engine holds its position plus every working order on a
side inside the bound (a fill turns working lots into position, so only new orders can grow the sum),
and quotes no more than the room left (:func:`room`) on top of its own ``inventory.max_position_btc``.
The others' positions are up to a publish interval old: two engines filling at the same moment can
pass the cap by what the other filled since its last publish.

Without a current firm view (Redis unreachable, or the firm process silent) the engine keeps its own
limits; with ``firm.stop_opening_when_down`` it bounds the position where it is, so only reducing
orders go, until the view is back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Bounds = tuple[int, int]    # (largest long position, largest short position as a positive number), lots


@dataclass(frozen=True, slots=True)
class FirmView:
    others_position_e8: int     # summed over the other live instances, 1e-8 of the base asset
    others_live: int
    current: bool               # Redis answered within the staleness bound


def firm_bounds(own_lots: int, lot_e8: int, cap_e8: int, view: FirmView | None,
                stop_opening_when_down: bool) -> Bounds | None:
    """This instance's position bounds under the firm cap; None when the firm imposes nothing."""
    if view is None or not view.current:
        if not stop_opening_when_down:
            return None
        return (max(0, own_lots), max(0, -own_lots))       # no further from zero than now
    if cap_e8 <= 0:
        return None
    others = view.others_position_e8
    return (max(0, (cap_e8 - others) // lot_e8), max(0, (cap_e8 + others) // lot_e8))


def room(bounds: Bounds, position_lots: int) -> tuple[int, int]:
    """(lots that may still be bought, sold) from ``position_lots`` within ``bounds``."""
    return (max(0, bounds[0] - position_lots), max(0, bounds[1] + position_lots))


class _FirmFields(Protocol):
    """What is read of a FIRM record (fastmm.shm.records.FIRM, a numpy record): fields by name."""

    def __getitem__(self, name: str, /) -> Any: ...


def view_from_record(r: _FirmFields, now_ns: int, stale_ns: int) -> FirmView:
    """A FIRM shared-memory record as a view; stale after ``stale_ns``."""
    t_ok = int(r["t_ok"])
    current = bool(int(r["redis_up"])) and t_ok > 0 and now_ns - t_ok <= stale_ns
    return FirmView(int(r["others_position_e8"]), int(r["others_live"]), current)
