"""The venue in a backtest: our orders against the recorded book, with a queue-position fill model.

Sans-I/O: the engine calls :meth:`QueueVenue.on_action` when one of our messages reaches the venue and
``on_depth`` / ``on_trade`` / ``on_top`` as recorded market data happens there, each with the venue
time; every call returns the execution events the venue sends back (the engine delays them by the
response latency). Our orders never change the recorded market (the usual no-impact assumption).

Queue model, per resting order (sizes in 1e-8 of the base asset, prices in 1e-8 as recorded):

* a new order joins the back of its price level: ``ahead`` = the recorded size there now (0 when the
  level is empty or the price is inside the spread);
* a recorded trade at our price shrinks ``ahead`` by its size; once ``ahead`` goes below zero the order
  fills by that much (whole lots, the rest carried), so a large trade fills partially or fully;
* a recorded trade *through* our price (a sell below our bid), or the recorded opposite touch reaching
  our price, fills the whole order at our price: the taker would have met us first;
* a size decrease of our level that trades do not explain is cancels: ``cancels`` says how much of it
  was ahead of us: ``prorata`` (the share ahead/level, as hftbacktest's PowerProbQueueModel(1)), ``all``
  (optimistic), ``none`` (only the level's new size caps ``ahead``: hftbacktest's RiskAdverseQueueModel).
  Increases join behind us. ``ahead`` never exceeds the level's size; cancels never fill us.

Orders that cross the book on arrival: a post-only one is rejected (as TrueX does for a post-only order
that would take liquidity); any other takes the recorded levels up to its limit, each at its price
rounded to our tick against us, with the taker fee, and the rest rests. A replace keeps its queue place
only when the price is unchanged and the size does not grow (as the TrueX simulator's matching core).
Fills carry TrueX's fee (``FeesConfig``) as MiscFeeAmt, exact to 1e-8 PYUSD; the venue keeps its own
ledger of cash and position, which a test checks against the core's PnL.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import numpy as np

from fastmm.core.money import FeeRate, MoneyScale, from_units
from fastmm.core.types import (
    Action,
    CancelOrder,
    CancelRejected,
    Liquidity,
    NewOrder,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    ReplaceOrder,
    Side,
)
from fastmm.instrument import Instrument

CancelModel = Literal["prorata", "all", "none"]
CANCEL_MODELS: tuple[str, ...] = ("prorata", "all", "none")
CrossingReplace = Literal["reject", "take"]
CROSSING_REPLACE: tuple[str, ...] = ("reject", "take")

_INF = 1 << 62
_CXL_UNKNOWN = 1
_CXL_BAND = 8
_CXL_OTHER = 99
_REPLACED = "replaced"   # marks an id an order had before a replace (not an OrdStatus)


class SimOrder:
    """One of our orders at the venue: integer ticks and lots, queue ahead in 1e-8 base units."""

    __slots__ = ("ahead", "cl", "cum", "filled_any", "order_id", "post_only", "px", "px_e8", "qty", "side")

    def __init__(self, cl: str, order_id: str, side: int, px: int, px_e8: int, qty: int,
                 post_only: bool = False) -> None:
        self.cl = cl
        self.order_id = order_id
        self.side = side
        self.px = px
        self.px_e8 = px_e8
        self.qty = qty
        self.cum = 0
        self.ahead = 0
        self.filled_any = False
        self.post_only = post_only

    @property
    def leaves(self) -> int:
        return self.qty - self.cum

    def __repr__(self) -> str:
        return f"SimOrder({self.cl} {self.side} {self.px}x{self.qty} cum={self.cum} ahead={self.ahead})"


@dataclass(slots=True)
class VenueStats:
    orders: int = 0           # new orders accepted
    orders_filled: int = 0    # of those, orders that had at least one fill
    replaces: int = 0
    cancels: int = 0
    rejects: int = 0
    cancel_rejects: int = 0
    crossing_replaces: int = 0   # replaces that would cross the book (rejected, or filled as taker)
    fills: int = 0
    maker_fills: int = 0
    taker_fills: int = 0
    filled_lots: int = 0
    quoted_lots: int = 0      # size of every order placed or replaced to a new price or size


class FullBook:
    """Every recorded level, brought up to date only when an order takes liquidity (rare): the
    queue model needs only the levels on our tick grid, which the venue keeps itself."""

    __slots__ = ("_a", "_b", "_c", "_i", "_t", "asks", "bids")

    def __init__(self, snap_bids: np.ndarray, snap_asks: np.ndarray, t: np.ndarray, side: np.ndarray,
                 px: np.ndarray, qty: np.ndarray) -> None:
        self.bids: dict[int, int] = {int(p): int(q) for p, q in snap_bids}
        self.asks: dict[int, int] = {int(p): int(q) for p, q in snap_asks}
        self._t, self._a, self._b, self._c = t, side, px, qty
        self._i = 0

    def sync(self, now_ns: int) -> None:
        j = int(np.searchsorted(self._t, now_ns, side="right"))
        if j <= self._i:
            return
        side = self._a[self._i:j].tolist()
        px = self._b[self._i:j].tolist()
        qty = self._c[self._i:j].tolist()
        bids, asks = self.bids, self.asks
        for s, p, q in zip(side, px, qty, strict=True):
            (bids if s == 1 else asks)[p] = q
        self._i = j

    def asks_up_to(self, limit_e8: int) -> list[tuple[int, int]]:
        return sorted((p, q) for p, q in self.asks.items() if q > 0 and p <= limit_e8)

    def bids_down_to(self, limit_e8: int) -> list[tuple[int, int]]:
        return sorted(((p, q) for p, q in self.bids.items() if q > 0 and p >= limit_e8), reverse=True)


class QueueVenue:
    """TrueX as the backtest sees it: our orders, the recorded levels on our tick grid, the touch."""

    def __init__(self, instrument: Instrument, *, maker_bps: Decimal, taker_bps: Decimal,
                 cancels: CancelModel = "prorata", min_notional: Decimal = Decimal(1),
                 price_band_pct: Decimal = Decimal("2.5"), full_book: FullBook | None = None,
                 crossing_replace: CrossingReplace = "reject") -> None:
        """``crossing_replace``: a replace of a post-only order that would cross the book is rejected
        (the order stays as it was) or filled as a taker (``take``: a venue that forgets post-only on a
        replace, to show the danger)."""
        if cancels not in CANCEL_MODELS:
            raise ValueError(f"cancel model must be one of {', '.join(CANCEL_MODELS)}, not {cancels!r}")
        if crossing_replace not in CROSSING_REPLACE:
            raise ValueError(f"crossing_replace must be one of {', '.join(CROSSING_REPLACE)}, "
                             f"not {crossing_replace!r}")
        self._crossing_replace = crossing_replace
        self.instrument = instrument
        self.tick_e8 = instrument.tick_e8
        self.lot_e8 = instrument.lot_e8
        self.scale = MoneyScale(instrument)
        self._maker = FeeRate(maker_bps)
        self._taker = FeeRate(taker_bps)
        self._cancels = cancels
        per = instrument.tick_size * instrument.lot_size
        self._min_tl = int(-(-min_notional // per))   # minimum notional in ticks x lots, rounded up
        self._band = float(price_band_pct) / 100.0
        self.full_book = full_book
        # recorded sizes of the levels on our tick grid, and trades seen there since their last update
        self.levels_b: dict[int, int] = {}
        self.levels_a: dict[int, int] = {}
        self.traded_b: dict[int, int] = {}
        self.traded_a: dict[int, int] = {}
        self.top_bid = 0
        self.top_ask = _INF
        # our orders
        self.orders: dict[str, SimOrder] = {}       # by current ClOrdID
        self.bids: dict[int, list[SimOrder]] = {}   # by price e8
        self.asks: dict[int, list[SimOrder]] = {}
        self.best_bid_e8 = -1                       # our best bid / ask at the venue (e8), -1 / INF if none
        self.best_ask_e8 = _INF
        self._gone: dict[str, str] = {}             # ClOrdID of a finished order -> OrdStatus ("2", "4")
        self._next_order = 0
        self._next_exec = 0
        # the venue's own ledger (integer money units, lots)
        self.cash_units = 0
        self.fees_units = 0
        self.position_lots = 0
        self.stats = VenueStats()
        self.fill_log: list[tuple[int, int, int, int, int]] = []   # t, side, px ticks, lots, liquidity

    # -- setup ------------------------------------------------------------------------------------
    def load_levels(self, bids: np.ndarray, asks: np.ndarray) -> None:
        """The snapshot's levels on our tick grid."""
        tick = self.tick_e8
        self.levels_b = {int(p): int(q) for p, q in bids if p % tick == 0}
        self.levels_a = {int(p): int(q) for p, q in asks if p % tick == 0}
        if len(bids):
            self.top_bid = int(bids[0][0])
        if len(asks):
            self.top_ask = int(asks[0][0])

    # -- our messages -----------------------------------------------------------------------------
    def on_action(self, now_ns: int, a: Action) -> list[OrderEvent]:
        if isinstance(a, NewOrder):
            return self._new(now_ns, a)
        if isinstance(a, CancelOrder):
            return self._cancel(a)
        return self._replace(now_ns, a)

    def _band_ok(self, px: int) -> bool:
        bid, ask = self.top_bid, self.top_ask
        if bid <= 0 or ask >= _INF:
            return True
        ref = (bid + ask) / 2.0 / self.tick_e8
        return abs(px - ref) <= ref * self._band

    def _new(self, now_ns: int, a: NewOrder) -> list[OrderEvent]:
        cl, side, px, qty = a.cl_ord_id, int(a.side), a.price_ticks, a.qty_lots
        if cl in self.orders or cl in self._gone:
            return self._reject(OrderRejected(cl, "Duplicate ClOrdID"))
        if px <= 0 or qty <= 0 or side not in (1, 2):
            return self._reject(OrderRejected(cl, "Invalid price or quantity"))
        if px * qty < self._min_tl:
            return self._reject(OrderRejected(cl, "Order notional below minimum"))
        if not self._band_ok(px):
            return self._reject(OrderRejected(cl, "Price exceeds current price band"))
        px_e8 = px * self.tick_e8
        crosses = px_e8 >= self.top_ask if side == 1 else px_e8 <= self.top_bid
        if crosses and a.post_only:
            return self._reject(OrderRejected(cl, "Post-only order would take liquidity"))
        self._next_order += 1
        o = SimOrder(cl, f"O{self._next_order}", side, px, px_e8, qty, a.post_only)
        self.stats.orders += 1
        self.stats.quoted_lots += qty
        out: list[OrderEvent] = [OrderAccepted(cl, o.order_id)]
        self._enter(now_ns, o, crosses, out)
        return out

    def _cancel(self, a: CancelOrder) -> list[OrderEvent]:
        o = self.orders.get(a.orig_cl_ord_id)
        if o is None:
            self.stats.cancel_rejects += 1
            status = self._gone.get(a.orig_cl_ord_id, "4")
            if status == _REPLACED:   # the order lives on under the replace's id: not gone
                return [CancelRejected(a.cl_ord_id, a.orig_cl_ord_id, "0", _CXL_OTHER, "Order was replaced")]
            return [CancelRejected(a.cl_ord_id, a.orig_cl_ord_id, status, _CXL_UNKNOWN, "Unknown order")]
        self._unrest(o)
        del self.orders[o.cl]
        self._gone[o.cl] = "4"
        self._gone[a.cl_ord_id] = "4"
        self.stats.cancels += 1
        return [OrderCanceled(a.cl_ord_id, a.orig_cl_ord_id)]

    def _replace(self, now_ns: int, a: ReplaceOrder) -> list[OrderEvent]:
        o = self.orders.get(a.orig_cl_ord_id)
        cl, px, qty = a.cl_ord_id, a.price_ticks, a.qty_lots

        def reject(reason: int, text: str) -> list[OrderEvent]:
            self.stats.cancel_rejects += 1
            status = "1" if o is not None and o.cum else "0"
            return [CancelRejected(cl, a.orig_cl_ord_id, status, reason, text)]

        if o is None:
            status = self._gone.get(a.orig_cl_ord_id, "4")
            if status == _REPLACED:
                return reject(_CXL_OTHER, "Order was replaced")
            self.stats.cancel_rejects += 1
            return [CancelRejected(cl, a.orig_cl_ord_id, status, _CXL_UNKNOWN, "Unknown order")]
        if cl in self.orders or cl in self._gone:
            return reject(_CXL_OTHER, "Invalid or duplicate ClOrdID")
        if px <= 0 or qty <= 0:
            return reject(_CXL_OTHER, "Invalid price or quantity")
        if not self._band_ok(px):
            return reject(_CXL_BAND, "Price exceeds current price band")
        if px * qty < self._min_tl:
            return reject(_CXL_OTHER, "Order notional below minimum")
        if qty <= o.cum:
            return reject(_CXL_OTHER, "Quantity not above filled quantity")
        px_e8 = px * self.tick_e8
        crosses = px_e8 >= self.top_ask if o.side == 1 else px_e8 <= self.top_bid
        if crosses and o.post_only and self._crossing_replace == "reject":
            self.stats.crossing_replaces += 1
            return reject(_CXL_OTHER, "Post-only order would take liquidity")
        keeps_priority = px == o.px and qty <= o.qty
        self._unrest(o)
        del self.orders[o.cl]
        self._gone[o.cl] = _REPLACED
        o.cl = cl
        self.stats.replaces += 1
        if not keeps_priority:
            self.stats.quoted_lots += qty - o.cum
        o.qty = qty
        out: list[OrderEvent] = []
        if keeps_priority:
            out.append(OrderReplaced(cl, a.orig_cl_ord_id, px, qty, o.leaves))
            self._rest(o, keep_ahead=True)
            return out
        o.px = px
        o.px_e8 = px_e8
        out.append(OrderReplaced(cl, a.orig_cl_ord_id, px, qty, o.leaves))
        if crosses:
            self.stats.crossing_replaces += 1
        self._enter(now_ns, o, crosses, out)
        return out

    def _enter(self, now_ns: int, o: SimOrder, crosses: bool, out: list[OrderEvent]) -> None:
        """An order at a new price: it takes what it crosses, and what is left rests at the back."""
        if crosses:
            self._take(now_ns, o, out)
            if o.leaves <= 0:
                self._gone[o.cl] = "2"
                return
        self._rest(o)

    def _reject(self, ev: OrderEvent) -> list[OrderEvent]:
        self.stats.rejects += 1
        return [ev]

    # -- book keeping of our orders -----------------------------------------------------------------
    def _rest(self, o: SimOrder, keep_ahead: bool = False) -> None:
        if not keep_ahead:
            levels = self.levels_b if o.side == 1 else self.levels_a
            o.ahead = levels.get(o.px_e8, 0)
        book = self.bids if o.side == 1 else self.asks
        book.setdefault(o.px_e8, []).append(o)
        self.orders[o.cl] = o
        if o.side == 1:
            if o.px_e8 > self.best_bid_e8:
                self.best_bid_e8 = o.px_e8
        elif o.px_e8 < self.best_ask_e8:
            self.best_ask_e8 = o.px_e8

    def _unrest(self, o: SimOrder) -> None:
        book = self.bids if o.side == 1 else self.asks
        q = book.get(o.px_e8)
        if q is None:
            return
        q.remove(o)
        if not q:
            del book[o.px_e8]
            if o.side == 1:
                if o.px_e8 == self.best_bid_e8:
                    self.best_bid_e8 = max(book) if book else -1
            elif o.px_e8 == self.best_ask_e8:
                self.best_ask_e8 = min(book) if book else _INF

    # -- fills ------------------------------------------------------------------------------------
    def _fill(self, now_ns: int, o: SimOrder, px: int, lots: int, liq: Liquidity,
              out: list[OrderEvent]) -> None:
        """Book a fill of ``lots`` at ``px`` ticks; the caller removes a completed order from the book."""
        o.cum += lots
        value = px * lots * self.scale.tick_lot
        fee = (self._maker if liq == Liquidity.MAKER else self._taker).fee(value)
        sign = 1 if o.side == 1 else -1
        self.cash_units -= sign * value + fee
        self.fees_units += fee
        self.position_lots += sign * lots
        st = self.stats
        st.fills += 1
        st.filled_lots += lots
        if liq == Liquidity.MAKER:
            st.maker_fills += 1
        else:
            st.taker_fills += 1
        if not o.filled_any:
            o.filled_any = True
            st.orders_filled += 1
        self._next_exec += 1
        self.fill_log.append((now_ns, o.side, px, lots, int(liq)))
        out.append(OrderFilled(o.cl, f"E{self._next_exec}", Side(o.side), px, lots, o.leaves, liq,
                               from_units(fee)))

    def _done(self, o: SimOrder) -> None:
        self._unrest(o)
        self.orders.pop(o.cl, None)
        self._gone[o.cl] = "2"

    def _take(self, now_ns: int, o: SimOrder, out: list[OrderEvent]) -> None:
        """Our order crossed the recorded book: take its levels up to our limit (taker)."""
        book = self.full_book
        tick, lot = self.tick_e8, self.lot_e8
        if book is not None:
            book.sync(now_ns)
            levels = book.asks_up_to(o.px_e8) if o.side == 1 else book.bids_down_to(o.px_e8)
        else:   # no depth beyond the touch: the touch's price, size unknown -> the whole order there
            levels = [(self.top_ask, _INF)] if o.side == 1 else [(self.top_bid, _INF)]
        for p, q in levels:
            if o.leaves <= 0:
                break
            lots = min(o.leaves, q // lot)
            if lots <= 0:
                continue
            px = -(-p // tick) if o.side == 1 else p // tick   # our tick, rounded against us
            self._fill(now_ns, o, px, lots, Liquidity.TAKER, out)

    # -- recorded market data -----------------------------------------------------------------------
    def on_depth(self, now_ns: int, side: int, px_e8: int, qty: int) -> None:
        """A recorded level on our tick grid changed to ``qty``. Never fills; adjusts queues."""
        if side == 1:
            levels, traded, book = self.levels_b, self.traded_b, self.bids
        else:
            levels, traded, book = self.levels_a, self.traded_a, self.asks
        prev = levels.get(px_e8, 0)
        levels[px_e8] = qty
        done = traded.pop(px_e8, 0)
        orders = book.get(px_e8)
        if not orders:
            return
        base = prev - done           # the level after the trades we already applied to the queue
        dec = base - qty             # the rest of the decrease: cancels
        model = self._cancels
        for o in orders:
            ahead = o.ahead
            if dec > 0 and ahead > 0:
                if model == "prorata":
                    ahead -= dec * ahead // base
                elif model == "all":
                    ahead -= dec
                if ahead < 0:
                    ahead = 0       # cancels move us forward, they never fill us
            if ahead > qty:
                ahead = qty
            o.ahead = ahead

    def on_trade(self, now_ns: int, taker_side: int, px_e8: int, qty: int) -> list[OrderEvent] | None:
        """A recorded trade; returns fills of our orders it reaches, or None."""
        if taker_side == 2:                    # a sell: reaches our bids at or above its price
            if px_e8 > self.best_bid_e8:
                if px_e8 % self.tick_e8 == 0:
                    self.traded_b[px_e8] = self.traded_b.get(px_e8, 0) + qty
                return None
            if px_e8 % self.tick_e8 == 0:
                self.traded_b[px_e8] = self.traded_b.get(px_e8, 0) + qty
            book = self.bids
            prices = sorted((p for p in book if p >= px_e8), reverse=True)
        else:
            if px_e8 < self.best_ask_e8:
                if px_e8 % self.tick_e8 == 0:
                    self.traded_a[px_e8] = self.traded_a.get(px_e8, 0) + qty
                return None
            if px_e8 % self.tick_e8 == 0:
                self.traded_a[px_e8] = self.traded_a.get(px_e8, 0) + qty
            book = self.asks
            prices = sorted(p for p in book if p <= px_e8)
        out: list[OrderEvent] = []
        lot = self.lot_e8
        for p in prices:
            for o in list(book[p]):
                if p != px_e8:                      # traded through our price
                    self._fill(now_ns, o, o.px, o.leaves, Liquidity.MAKER, out)
                    self._done(o)
                    continue
                ahead = o.ahead - qty
                if ahead < 0:
                    lots = min(o.leaves, -ahead // lot)
                    if lots > 0:
                        ahead += lots * lot
                        self._fill(now_ns, o, o.px, lots, Liquidity.MAKER, out)
                        if o.leaves <= 0:
                            self._done(o)
                            continue
                o.ahead = ahead
        return out

    def on_top(self, now_ns: int, bid_e8: int, ask_e8: int) -> list[OrderEvent] | None:
        """A new recorded touch; a touch at or through our price fills our order there."""
        self.top_bid = bid_e8
        self.top_ask = ask_e8
        out: list[OrderEvent] | None = None
        if bid_e8 >= self.best_ask_e8:
            out = []
            for p in sorted(p for p in self.asks if p <= bid_e8):
                for o in list(self.asks[p]):
                    self._fill(now_ns, o, o.px, o.leaves, Liquidity.MAKER, out)
                    self._done(o)
        if ask_e8 <= self.best_bid_e8:
            out = out if out is not None else []
            for p in sorted((p for p in self.bids if p >= ask_e8), reverse=True):
                for o in list(self.bids[p]):
                    self._fill(now_ns, o, o.px, o.leaves, Liquidity.MAKER, out)
                    self._done(o)
        return out

    # -- reads ------------------------------------------------------------------------------------
    def quotes(self) -> tuple[int, int]:
        """Our best bid and ask at the venue in ticks (0 when none)."""
        b = self.best_bid_e8 // self.tick_e8 if self.best_bid_e8 > 0 else 0
        a = self.best_ask_e8 // self.tick_e8 if self.best_ask_e8 < _INF else 0
        return b, a
