"""The TrueX simulator's matching core: price-time priority and TrueX's order-entry rules, sans-I/O.

It knows nothing of FIX bytes or sockets: the FIX acceptor shell turns NewOrderSingle / cancel / replace
messages into calls here and the returned events into ExecutionReport (8), OrderCancelReject (9) and
BusinessMessageReject (j) messages. Time comes in as ``now_ns``. The backtest can use the same core.

Rules enforced (venue facts section 1; the unpublished ones are settings in :class:`ExchangeRules`):

* party id (client id) must match the session's: otherwise ExecutionReport reject ``Invalid client``
  with OrderID ``NONE``;
* ClOrdID is a lowercase UUIDv4 with hyphens or at most 18 ASCII characters, and unique per session;
* price on the instrument's tick (CxlRejReason 18 on a replace), quantity on its lot (BTC-PYUSD: 0.50 and
  0.0001), notional at least 1 PYUSD, price within +/-2.5 % of the reference (CxlRejReason 8 on a replace);
* throttle of 10 messages/s and 300/min per session (BusinessMessageReject 380=8);
* no identical order (side, price, quantity) within 500 ms;
* TimeInForce GTC (1) or IOC (3); OrdType limit (2) or market (1); optional post-only.

Fills are ExecType F with LastLiquidityInd 1 (added) or 2 (removed) and the exchange fee as MiscFeeAmt
(type 4). Prices are integer ticks and quantities integer lots throughout; fees are exact Decimals.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from fastmm.instrument import Instrument, InstrumentError
from fastmm.units import BPS

BUY, SELL = "1", "2"
LIMIT, MARKET = "2", "1"
GTC, IOC = "1", "3"

_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
_SHORT_ID = re.compile(r"[\x21-\x7e]{1,18}\Z")
_FEE_QUANTUM = Decimal("0.00000001")


class ExecType(StrEnum):
    NEW = "0"
    CANCELED = "4"
    REPLACED = "5"
    REJECTED = "8"
    EXPIRED = "C"
    TRADE = "F"


class OrdStatus(StrEnum):
    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    CANCELED = "4"
    REJECTED = "8"
    EXPIRED = "C"


# CxlRejReason (102)
CXL_UNKNOWN_ORDER = 1
CXL_PRICE_BAND = 8
CXL_INVALID_PRICE_INCREMENT = 18
CXL_OTHER = 99
# BusinessRejectReason (380)
BIZ_THROTTLE = 8


@dataclass(frozen=True, slots=True)
class ExchangeRules:
    """TrueX's rules as the simulator enforces them; defaults are the venue facts' values."""

    client_id: str = "SIMCLIENT"
    min_notional: Decimal = Decimal(1)
    price_band_pct: Decimal = Decimal("2.5")
    max_msgs_per_sec: int = 10
    max_msgs_per_min: int = 300
    duplicate_window_ns: int = 500_000_000
    maker_fee_bps: Decimal = Decimal(0)
    taker_fee_bps: Decimal = Decimal(10)
    # a replace of a post-only order that would cross the book: "reject" it (the order stays as it was),
    # or "take" (fill as a taker: what a venue that forgets post-only on a replace does)
    crossing_replace: str = "reject"


@dataclass(slots=True)
class Order:
    owner: str
    cl_ord_id: str
    order_id: str
    side: str
    price: int  # ticks; 0 for a market order
    qty: int  # lots, total
    tif: str
    cum: int = 0
    seq: int = 0  # time priority
    last_cl_ord_id: str = ""
    post_only: bool = False

    @property
    def leaves(self) -> int:
        return self.qty - self.cum


@dataclass(frozen=True, slots=True)
class ExecReport:
    owner: str
    cl_ord_id: str
    order_id: str
    exec_id: str
    exec_type: ExecType
    ord_status: OrdStatus
    side: str
    price: int
    qty: int
    cum: int
    leaves: int
    orig_cl_ord_id: str = ""
    last_px: int = 0
    last_qty: int = 0
    liquidity: int = 0  # 851: 1 added, 2 removed
    fee: Decimal = Decimal(0)
    text: str = ""


@dataclass(frozen=True, slots=True)
class CancelReject:
    owner: str
    cl_ord_id: str
    orig_cl_ord_id: str
    order_id: str
    ord_status: OrdStatus
    reason: int
    response_to: str  # 434: "1" cancel, "2" replace
    text: str


@dataclass(frozen=True, slots=True)
class BusinessReject:
    owner: str
    ref_msg_type: str
    ref_id: str
    reason: int
    text: str


Event = ExecReport | CancelReject | BusinessReject


@dataclass(frozen=True, slots=True)
class LevelChange:
    """A change to the aggregated book for market data: new size at a price (0 = level gone)."""

    side: str
    price: int
    size: int


@dataclass(slots=True)
class _Session:
    client_id: str
    msg_times: deque[int] = field(default_factory=deque)
    recent_orders: deque[tuple[int, str, int, int]] = field(default_factory=deque)
    cl_ord_ids: set[str] = field(default_factory=set)


class MatchingEngine:
    """One instrument's book and rules. ``owner`` names a FIX session (or the replayed takers)."""

    def __init__(self, instrument: Instrument, rules: ExchangeRules | None = None) -> None:
        self.instrument = instrument
        self.rules = rules or ExchangeRules()
        self.reference: int | None = None  # ticks
        self._bids: dict[int, deque[Order]] = {}
        self._asks: dict[int, deque[Order]] = {}
        self._orders: dict[tuple[str, str], Order] = {}  # (owner, current cl_ord_id) -> live order
        self._sessions: dict[str, _Session] = {}
        self._seq = 0
        self._order_ids = 0
        self._exec_ids = 0
        self._level_changes: dict[tuple[str, int], int] = {}
        self.trades: list[tuple[int, int, str]] = []  # (price, lots, aggressor side), for MD trade entries

    # -- sessions and reference -----------------------------------------------------------------
    def add_session(self, owner: str, client_id: str | None = None) -> None:
        self._sessions.setdefault(owner, _Session(client_id or self.rules.client_id))

    def client_id_of(self, owner: str) -> str:
        return self._session(owner).client_id

    def set_reference(self, price_ticks: int) -> None:
        self.reference = price_ticks

    # -- queries --------------------------------------------------------------------------------
    def live_orders(self, owner: str | None = None) -> list[Order]:
        return [o for (w, _), o in self._orders.items() if owner is None or w == owner]

    def best_bid(self) -> int | None:
        return max(self._bids) if self._bids else None

    def best_ask(self) -> int | None:
        return min(self._asks) if self._asks else None

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Top ``levels`` aggregated (price, size) per side, best first."""
        bids = [(p, sum(o.leaves for o in self._bids[p])) for p in sorted(self._bids, reverse=True)[:levels]]
        asks = [(p, sum(o.leaves for o in self._asks[p])) for p in sorted(self._asks)[:levels]]
        return bids, asks

    def drain_level_changes(self) -> list[LevelChange]:
        """Aggregated level sizes changed since the last call (for incremental market data)."""
        out = []
        for (side, price) in self._level_changes:
            book = self._bids if side == BUY else self._asks
            out.append(LevelChange(side, price, sum(o.leaves for o in book.get(price, ()))))
        self._level_changes.clear()
        return out

    # -- order entry ----------------------------------------------------------------------------
    def new_order(self, owner: str, cl_ord_id: str, party_id: str, side: str, ord_type: str,
                  price: str | None, qty: str, tif: str, now_ns: int, post_only: bool = False) -> list[Event]:
        """A NewOrderSingle. Prices and quantities arrive as wire text and are checked here."""
        sess = self._session(owner)
        if not self._admit(sess, now_ns):
            return [BusinessReject(owner, "D", cl_ord_id, BIZ_THROTTLE, "Throttle limit exceeded")]

        def reject(text: str, order_id: str = "") -> list[Event]:
            oid = order_id or self._next_order_id()
            return [ExecReport(owner, cl_ord_id, oid, self._next_exec_id(), ExecType.REJECTED,
                               OrdStatus.REJECTED, side, 0, 0, 0, 0, text=text)]

        if party_id != sess.client_id:
            return reject("Invalid client", "NONE")
        if not _valid_cl_ord_id(cl_ord_id):
            return reject("Invalid ClOrdID")
        if cl_ord_id in sess.cl_ord_ids:
            return reject("Duplicate ClOrdID")
        if side not in (BUY, SELL):
            return reject("Invalid side")
        if ord_type not in (LIMIT, MARKET):
            return reject("Unsupported OrdType")
        if tif not in (GTC, IOC):
            return reject("Unsupported TimeInForce")
        try:
            lots = self.instrument.qty_to_lots(qty)
        except (InstrumentError, ArithmeticError, ValueError):
            return reject("Invalid quantity increment")
        if lots <= 0:
            return reject("Invalid quantity")
        ticks = 0
        if ord_type == LIMIT:
            if price is None:
                return reject("Price required for limit order")
            try:
                ticks = self.instrument.price_to_ticks(price)
            except (InstrumentError, ArithmeticError, ValueError):
                return reject("Invalid price increment")
            if ticks <= 0:
                return reject("Invalid price")
            if self._outside_band(ticks):
                return reject("Price exceeds current price band")
            if self.instrument.notional(ticks, lots) < self.rules.min_notional:
                return reject("Order notional below minimum")
        elif self.reference is None:
            return reject("No reference price for market order")
        elif self.instrument.notional(self.reference, lots) < self.rules.min_notional:
            return reject("Order notional below minimum")
        if self._is_duplicate(sess, side, ticks, lots, now_ns):
            return reject("Duplicate order")
        if post_only and ord_type == LIMIT and self._would_cross(side, ticks):
            return reject("Post-only order would take liquidity")
        sess.cl_ord_ids.add(cl_ord_id)
        sess.recent_orders.append((now_ns, side, ticks, lots))
        order = Order(owner, cl_ord_id, self._next_order_id(), side, ticks, lots, tif,
                      last_cl_ord_id=cl_ord_id, post_only=post_only and ord_type == LIMIT)
        events: list[Event] = [self._report(order, ExecType.NEW, OrdStatus.NEW)]
        events += self._match(order)
        if order.leaves > 0:
            if ord_type == MARKET or tif == IOC:
                events.append(self._report(order, ExecType.CANCELED, OrdStatus.CANCELED,
                                           text="IOC remainder canceled"))
            else:
                self._rest(order)
        return events

    def cancel(self, owner: str, cl_ord_id: str, orig_cl_ord_id: str, party_id: str,
               now_ns: int, throttle: bool = True) -> list[Event]:
        sess = self._session(owner)
        if throttle and not self._admit(sess, now_ns):
            return [BusinessReject(owner, "F", cl_ord_id, BIZ_THROTTLE, "Throttle limit exceeded")]
        order = self._orders.get((owner, orig_cl_ord_id))
        if party_id != sess.client_id:
            return [self._cxl_reject(owner, cl_ord_id, orig_cl_ord_id, order, CXL_OTHER, "1",
                                     "Invalid client")]
        if order is None:
            return [self._cxl_reject(owner, cl_ord_id, orig_cl_ord_id, None, CXL_UNKNOWN_ORDER, "1",
                                     "Unknown order")]
        self._unrest(order)
        del self._orders[(owner, orig_cl_ord_id)]
        sess.cl_ord_ids.add(cl_ord_id)
        return [self._report(order, ExecType.CANCELED, OrdStatus.CANCELED, cl_ord_id=cl_ord_id,
                             orig_cl_ord_id=orig_cl_ord_id)]

    def replace(self, owner: str, cl_ord_id: str, orig_cl_ord_id: str, party_id: str, price: str,
                qty: str, now_ns: int) -> list[Event]:
        sess = self._session(owner)
        if not self._admit(sess, now_ns):
            return [BusinessReject(owner, "G", cl_ord_id, BIZ_THROTTLE, "Throttle limit exceeded")]
        order = self._orders.get((owner, orig_cl_ord_id))

        def reject(reason: int, text: str) -> list[Event]:
            return [self._cxl_reject(owner, cl_ord_id, orig_cl_ord_id, order, reason, "2", text)]

        if party_id != sess.client_id:
            return reject(CXL_OTHER, "Invalid client")
        if order is None:
            return reject(CXL_UNKNOWN_ORDER, "Unknown order")
        if not _valid_cl_ord_id(cl_ord_id) or cl_ord_id in sess.cl_ord_ids:
            return reject(CXL_OTHER, "Invalid or duplicate ClOrdID")
        try:
            ticks = self.instrument.price_to_ticks(price)
        except (InstrumentError, ArithmeticError, ValueError):
            return reject(CXL_INVALID_PRICE_INCREMENT, "Invalid price increment")
        try:
            lots = self.instrument.qty_to_lots(qty)
        except (InstrumentError, ArithmeticError, ValueError):
            return reject(CXL_OTHER, "Invalid quantity increment")
        if ticks <= 0 or lots <= 0:
            return reject(CXL_OTHER, "Invalid price or quantity")
        if self._outside_band(ticks):
            return reject(CXL_PRICE_BAND, "Price exceeds current price band")
        if self.instrument.notional(ticks, lots) < self.rules.min_notional:
            return reject(CXL_OTHER, "Order notional below minimum")
        if lots <= order.cum:
            return reject(CXL_OTHER, "Quantity not above filled quantity")
        if (order.post_only and self.rules.crossing_replace == "reject"
                and self._would_cross(order.side, ticks)):
            return reject(CXL_OTHER, "Post-only order would take liquidity")
        sess.cl_ord_ids.add(cl_ord_id)
        keeps_priority = ticks == order.price and lots <= order.qty
        self._unrest(order)
        del self._orders[(owner, orig_cl_ord_id)]
        order.price, order.qty, order.last_cl_ord_id = ticks, lots, cl_ord_id
        if not keeps_priority:
            self._seq += 1
            order.seq = self._seq
        events: list[Event] = [self._report(order, ExecType.REPLACED, OrdStatus.NEW, cl_ord_id=cl_ord_id,
                                            orig_cl_ord_id=orig_cl_ord_id)]
        events += self._match(order)
        if order.leaves > 0:
            self._rest(order, front=keeps_priority)
        return events

    def place_resting(self, owner: str, side: str, price_ticks: int, lots: int) -> list[Event]:
        """Synthetic liquidity from the simulator itself: no rules, no reports to a session; what it
        crosses trades (its own fills are reported, with ``owner`` as the owner, for the caller to drop)."""
        self._order_ids += 1
        order = Order(owner, f"{owner}{self._order_ids}", self._next_order_id(), side, price_ticks, lots, GTC,
                      last_cl_ord_id=f"{owner}{self._order_ids}")
        events = self._match(order)
        if order.leaves > 0:
            self._rest(order)
        return events

    def withdraw(self, owner: str) -> int:
        """Remove every resting order of ``owner`` silently (synthetic liquidity being refreshed)."""
        mine = [o for (w, _), o in self._orders.items() if w == owner]
        for o in mine:
            self._unrest(o)
            del self._orders[(owner, o.last_cl_ord_id)]
        return len(mine)

    def take(self, side: str, lots: int, limit_ticks: int | None = None, owner: str = "TAKER") -> list[Event]:
        """A taker order from the replayed market: trades against resting orders, the rest vanishes."""
        order = Order(owner, "", "", side, limit_ticks or 0, lots, IOC)
        return self._match(order, report_taker=False)

    # -- internals --------------------------------------------------------------------------------
    def _session(self, owner: str) -> _Session:
        self.add_session(owner)
        return self._sessions[owner]

    def _admit(self, sess: _Session, now_ns: int) -> bool:
        """Throttle: at most max/s and max/min messages in every sliding window."""
        times = sess.msg_times
        while times and times[0] <= now_ns - 60_000_000_000:
            times.popleft()
        if len(times) >= self.rules.max_msgs_per_min:
            return False
        in_last_sec = 0
        for t in reversed(times):
            if t <= now_ns - 1_000_000_000:
                break
            in_last_sec += 1
        if in_last_sec >= self.rules.max_msgs_per_sec:
            return False
        times.append(now_ns)
        return True

    def _is_duplicate(self, sess: _Session, side: str, ticks: int, lots: int, now_ns: int) -> bool:
        recent = sess.recent_orders
        while recent and recent[0][0] <= now_ns - self.rules.duplicate_window_ns:
            recent.popleft()
        return any(s == side and p == ticks and q == lots for _, s, p, q in recent)

    def _outside_band(self, ticks: int) -> bool:
        if self.reference is None:
            return False
        band = self.reference * self.rules.price_band_pct / 100
        return abs(ticks - self.reference) > band

    def _would_cross(self, side: str, ticks: int) -> bool:
        if side == BUY:
            return bool(self._asks) and ticks >= min(self._asks)
        return bool(self._bids) and ticks <= max(self._bids)

    def _match(self, taker: Order, report_taker: bool = True) -> list[Event]:
        events: list[Event] = []
        book = self._asks if taker.side == BUY else self._bids
        while taker.leaves > 0 and book:
            best = min(book) if taker.side == BUY else max(book)
            if taker.price and (best > taker.price if taker.side == BUY else best < taker.price):
                break
            queue = book[best]
            maker = queue[0]
            qty = min(maker.leaves, taker.leaves)
            maker.cum += qty
            taker.cum += qty
            self.trades.append((best, qty, taker.side))
            self._level_changes[(maker.side, best)] = 1
            events.append(self._fill(maker, best, qty, maker=True))
            if report_taker:
                events.append(self._fill(taker, best, qty, maker=False))
            if maker.leaves == 0:
                queue.popleft()
                del self._orders[(maker.owner, maker.last_cl_ord_id)]
                if not queue:
                    del book[best]
        return events

    def _fill(self, order: Order, px: int, qty: int, maker: bool) -> ExecReport:
        bps = self.rules.maker_fee_bps if maker else self.rules.taker_fee_bps
        fee = (self.instrument.notional(px, qty) * bps / BPS).quantize(_FEE_QUANTUM, ROUND_HALF_EVEN)
        status = OrdStatus.FILLED if order.leaves == 0 else OrdStatus.PARTIALLY_FILLED
        return ExecReport(order.owner, order.last_cl_ord_id, order.order_id, self._next_exec_id(),
                          ExecType.TRADE, status, order.side, order.price, order.qty, order.cum, order.leaves,
                          last_px=px, last_qty=qty, liquidity=1 if maker else 2, fee=fee)

    def _rest(self, order: Order, front: bool = False) -> None:
        if not front:
            self._seq += 1
            order.seq = self._seq
        book = self._bids if order.side == BUY else self._asks
        queue = book.setdefault(order.price, deque())
        if front:
            # keep time priority: insert by original sequence
            idx = next((i for i, o in enumerate(queue) if o.seq > order.seq), len(queue))
            queue.insert(idx, order)
        else:
            queue.append(order)
        self._orders[(order.owner, order.last_cl_ord_id)] = order
        self._level_changes[(order.side, order.price)] = 1

    def _unrest(self, order: Order) -> None:
        book = self._bids if order.side == BUY else self._asks
        queue = book.get(order.price)
        if queue is not None:
            queue.remove(order)
            if not queue:
                del book[order.price]
            self._level_changes[(order.side, order.price)] = 1

    def _report(self, order: Order, exec_type: ExecType, status: OrdStatus, cl_ord_id: str = "",
                orig_cl_ord_id: str = "", text: str = "") -> ExecReport:
        if status == OrdStatus.NEW and order.cum:
            status = OrdStatus.PARTIALLY_FILLED
        leaves = 0 if status in (OrdStatus.CANCELED, OrdStatus.FILLED) else order.leaves
        cl = cl_ord_id or order.last_cl_ord_id
        return ExecReport(order.owner, cl, order.order_id, self._next_exec_id(), exec_type, status,
                          order.side, order.price, order.qty, order.cum, leaves,
                          orig_cl_ord_id=orig_cl_ord_id, text=text)

    def _cxl_reject(self, owner: str, cl_ord_id: str, orig: str, order: Order | None, reason: int,
                    response_to: str, text: str) -> CancelReject:
        if order is None:
            return CancelReject(owner, cl_ord_id, orig, "NONE", OrdStatus.REJECTED, reason, response_to, text)
        status = OrdStatus.PARTIALLY_FILLED if order.cum else OrdStatus.NEW
        return CancelReject(owner, cl_ord_id, orig, order.order_id, status, reason, response_to, text)

    def _next_order_id(self) -> str:
        self._order_ids += 1
        return f"O{self._order_ids:010d}"

    def _next_exec_id(self) -> str:
        self._exec_ids += 1
        return f"E{self._exec_ids:012d}"


def _valid_cl_ord_id(cl_ord_id: str) -> bool:
    return bool(_SHORT_ID.match(cl_ord_id) or _UUID4.match(cl_ord_id))
