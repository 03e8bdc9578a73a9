"""The kill switch: trips on drawdown, position, order rate or reject rate; stays tripped.

Once tripped, only risk-reducing actions pass :meth:`RiskManager.allows` (cancels always; an order
only on the side that shrinks the position and no larger than what is left to shrink), and the quote
engine pulls every quote. Only an operator's :meth:`RiskManager.reset` clears it; the reset starts the
rate windows and the drawdown peak afresh, so a condition that still holds trips it again at once.

Checks (``RiskConfig``): drawdown of total PnL from its peak above ``max_drawdown``; |position| above
``inventory.emergency_position_btc``; more than ``max_order_rate_per_min`` order messages or
``max_reject_rate_per_min`` rejects in the last 60 s. The shells and the trading core also trip it for
an impossible venue report and for a journal that cannot write.

Stale reference data is not a trip: it is no risk taken, only a reason not to quote. The quote engine
pulls every quote while the reference is stale or silent (``risk.stale_data_ms`` is its backstop) and
quotes again by itself when a fresh price with enough confidence is back.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from fastmm.config import InventoryConfig, RiskConfig
from fastmm.core.money import from_units, to_units
from fastmm.instrument import Instrument

log = logging.getLogger(__name__)

_MIN_NS = 60_000_000_000


class TripReason(StrEnum):
    DRAWDOWN = "drawdown"
    POSITION = "position"
    ORDER_RATE = "order_rate"
    REJECT_RATE = "reject_rate"
    MANUAL = "manual"
    BAD_REPORT = "bad_report"    # the venue reported something impossible (fastmm.core.vet); not booked
    JOURNAL = "journal"          # the journal cannot write: nothing new may be sent


@dataclass(frozen=True, slots=True)
class RiskTrip:
    now_ns: int
    reason: TripReason
    detail: str


@dataclass(frozen=True, slots=True)
class RiskReset:
    now_ns: int
    operator: str
    was: TripReason


class _Window:
    """Event times within the last ``span_ns``."""

    __slots__ = ("_q", "_span")

    def __init__(self, span_ns: int) -> None:
        self._span = span_ns
        self._q: deque[int] = deque()

    def add(self, now_ns: int, n: int = 1) -> int:
        q = self._q
        q.extend([now_ns] * n)
        edge = now_ns - self._span
        while q and q[0] <= edge:
            q.popleft()
        return len(q)

    def clear(self) -> None:
        self._q.clear()


class RiskManager:
    __slots__ = ("_emergency_lots", "_events", "_max_dd", "_max_orders", "_max_rejects", "_orders", "_peak",
                 "_rejects", "_total", "trip_info", "tripped")

    def __init__(self, cfg: RiskConfig, inventory: InventoryConfig, instrument: Instrument) -> None:
        self._max_dd = to_units(cfg.max_drawdown)
        self._max_orders = cfg.max_order_rate_per_min
        self._max_rejects = cfg.max_reject_rate_per_min
        self._emergency_lots = instrument.qty_floor_lots(inventory.emergency_position_btc)
        self._orders = _Window(_MIN_NS)
        self._rejects = _Window(_MIN_NS)
        self._peak: int | None = None
        self._total = 0
        self.tripped = False
        self.trip_info: RiskTrip | None = None
        self._events: list[RiskTrip | RiskReset] = []

    def trip(self, now_ns: int, reason: TripReason, detail: str = "") -> None:
        if self.tripped:
            return
        self.tripped = True
        self.trip_info = RiskTrip(now_ns, reason, detail)
        self._events.append(self.trip_info)
        log.error("kill switch tripped: %s %s", reason, detail)

    def reset(self, now_ns: int, operator: str) -> RiskReset | None:
        """An operator clears the kill switch; windows and the drawdown peak start afresh."""
        if not self.tripped or self.trip_info is None:
            return None
        ev = RiskReset(now_ns, operator, self.trip_info.reason)
        self.tripped = False
        self.trip_info = None
        self._orders.clear()
        self._rejects.clear()
        self._peak = self._total
        self._events.append(ev)
        log.warning("kill switch reset by %s (was %s)", operator, ev.was)
        return ev

    # -- inputs -----------------------------------------------------------------------------------
    def on_orders_sent(self, now_ns: int, n: int = 1) -> None:
        if self._orders.add(now_ns, n) > self._max_orders:
            self.trip(now_ns, TripReason.ORDER_RATE, f"more than {self._max_orders} order messages in 60 s")

    def on_reject(self, now_ns: int) -> None:
        if self._rejects.add(now_ns) > self._max_rejects:
            self.trip(now_ns, TripReason.REJECT_RATE, f"more than {self._max_rejects} rejects in 60 s")

    def on_pnl(self, now_ns: int, total_units: int) -> None:
        self._total = total_units
        if self._peak is None or total_units > self._peak:
            self._peak = total_units
        elif self._peak - total_units > self._max_dd:
            dd = from_units(self._peak - total_units)
            self.trip(now_ns, TripReason.DRAWDOWN, f"drawdown {dd} PYUSD over {from_units(self._max_dd)}")

    def on_position(self, now_ns: int, position_lots: int) -> None:
        if abs(position_lots) > self._emergency_lots:
            self.trip(now_ns, TripReason.POSITION,
                      f"position {position_lots} lots over {self._emergency_lots}")

    # -- decisions --------------------------------------------------------------------------------
    def allows(self, side: int, qty_lots: int, position_lots: int, open_same_side_lots: int = 0) -> bool:
        """Whether an order may go: anything when not tripped, else only what shrinks the position."""
        if not self.tripped:
            return True
        if position_lots == 0 or qty_lots <= 0:
            return False
        reducing_side = 2 if position_lots > 0 else 1
        return side == reducing_side and open_same_side_lots + qty_lots <= abs(position_lots)

    def events(self) -> list[RiskTrip | RiskReset]:
        out, self._events = self._events, []
        return out
