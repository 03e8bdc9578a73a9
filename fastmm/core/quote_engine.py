"""From fair mid and confidence to order actions: model -> ladder -> reconcile -> rate limit -> actions.

Inputs are the fused fair mid (float PYUSD), its confidence in [0, 1] and a staleness flag (from the
price aggregator, owned elsewhere), the TrueX best bid/ask in ticks (for post-only), the position (from
:class:`~fastmm.core.inventory.InventoryManager`) and the kill switch (from
:class:`~fastmm.core.risk.RiskManager`). Outputs are typed actions for the FIX layer.

All quotes are pulled (the desired ladder is empty, so reconcile cancels everything working) when the
confidence is under ``confidence_threshold``, the reference is stale or older than ``max_input_age_ms``,
the mid is not a positive finite number, the inventory is past its emergency size, the kill switch is
tripped, or the engine was halted. Every new or replaced order is checked once more against the price
band, the tick grid (ints) and the minimum notional just before it becomes an action.

The hot path (:meth:`QuoteEngine.on_price`) uses ints, floats and tuples only; it returns at once when
the desired ladder and the order state are unchanged since the last event, or when the rate limiter
has no message to spare (the plan is made again on the next event or timer tick).
"""

from __future__ import annotations

import logging
import math

from fastmm.config import QuotingConfig, VenueRulesConfig
from fastmm.core.ids import ClOrdIdGen
from fastmm.core.inventory import InventoryManager, SideMode
from fastmm.core.ladder import EMPTY, LadderBuilder
from fastmm.core.models import IntensityEstimator, SpreadModel, VolatilityEstimator, make_model
from fastmm.core.order_tracker import OrderTracker
from fastmm.core.rate_limit import RateLimiter
from fastmm.core.reconcile import CANCEL, MOVE, BookView, Intent, book_view, plan
from fastmm.core.risk import RiskManager
from fastmm.core.types import (
    Action,
    CancelOrder,
    CancelRejected,
    MessageRejected,
    NewOrder,
    OrderEvent,
    OrderRejected,
    ReplaceOrder,
    Side,
)
from fastmm.instrument import Instrument
from fastmm.logs import OnceLogger

log = logging.getLogger(__name__)

_SIDES = {1: Side.BUY, 2: Side.SELL}
_tnew = tuple.__new__
# enum members as globals: read off the class they cost ~75 ns each on CPython 3.11 (every price event)
_WIDEN = SideMode.WIDEN
_PULL = SideMode.PULL
_INF = 1 << 62
_DEPTH_STEP_NS = 100_000_000   # the intensity fit's step (IntensityEstimator.step_ns)


class QuoteEngine:
    """One instrument's quoting on TrueX. Drive it with on_price, on_event, on_timer; it never blocks."""

    def __init__(self, quoting: QuotingConfig, rules: VenueRulesConfig, instrument: Instrument,
                 inventory: InventoryManager, risk: RiskManager | None = None, *,
                 cl_ord_prefix: str = "fm", max_input_age_ms: int = 1000,
                 model: SpreadModel | None = None) -> None:
        """Every setting comes from config (``quoting``: size_tolerance_pct, widen_mult, pending_timeout_ms;
        ``max_input_age_ms`` is ``risk.stale_data_ms``: no price for that long pulls the quotes; ``rules``:
        the rate limits, rate_guard_ms and TrueX's own venue_max_orders_per_sec, which cancels may use up)
        so each user of the engine runs the same one; ``cl_ord_prefix`` is not a setting but an identity
        (unique per run, made by the shell); ``model`` a spread model built by the caller (the ``edge``
        model, which needs more than the quoting section)."""
        self.cfg = quoting
        self.instrument = instrument
        self.inventory = inventory
        self.risk = risk
        self.builder = LadderBuilder(quoting, rules, instrument)
        self.tracker = OrderTracker()
        self.limiter = RateLimiter(rules.max_orders_per_sec, rules.max_orders_per_min,
                                   rules.duplicate_window_ms * 1_000_000, rules.rate_guard_ms * 1_000_000,
                                   venue_per_sec=rules.venue_max_orders_per_sec,
                                   unacked_timeout_ns=quoting.pending_timeout_ms * 1_000_000)
        self.ids = ClOrdIdGen(cl_ord_prefix)
        self.vol = VolatilityEstimator(quoting.volatility_window_s)
        self.intensity = IntensityEstimator(quoting.volatility_window_s, bin_ticks=0.5, bins=140)
        self.model = model or make_model(quoting, self.builder.sizes[0] if self.builder.sizes else 1,
                                         self.vol, self.intensity)
        self._inv_ticks = 1.0 / float(instrument.tick_size)
        self._min_tl = self.builder.min_tick_lots
        self._conf_min = quoting.confidence_threshold
        self._threshold = quoting.reprice_threshold_ticks
        self._tol = quoting.size_tolerance_pct
        self._widen = quoting.widen_mult - 1.0
        self._post_only = quoting.post_only
        self._pending_ns = quoting.pending_timeout_ms * 1_000_000
        self._max_age_ns = max_input_age_ms * 1_000_000
        self._bad = OnceLogger(log)
        # last inputs
        self._mid_ticks = 0.0
        self._depth_step = -1          # trade depths count from the mid before their 100 ms step began,
        self._depth_mid = 0.0          # as hftbacktest's GLFT tutorial measures them
        self._conf = 0.0
        self._stale = True
        self._bb = 0
        self._ba = 0
        self._in_ns: int | None = None
        # state
        # (largest long, largest short) position under the firm-wide cap, or None; set by the shell from
        # the firm view (fastmm.core.firm_limit): desired() quotes within it, _emit() keeps the position
        # plus every working order of a side inside it
        self.firm_bounds: tuple[int, int] | None = None
        self.halted = False
        self.pull_reason = "no price yet"
        self._deferred = False
        self._last_key: tuple[object, ...] | None = None
        self.band = (0, _INF)
        self._view = BookView([], [], set(), set(), (), ())
        self._view_version = 0

    # -- inputs -----------------------------------------------------------------------------------
    def on_price(self, now_ns: int, mid: float, confidence: float, stale: bool, best_bid: int = 0,
                 best_ask: int = 0) -> list[Action]:
        """A new fair mid (PYUSD, float) with its confidence and staleness, and the TrueX top of book."""
        if mid > 0.0 and mid < math.inf:
            x = mid * self._inv_ticks
            step = now_ns // _DEPTH_STEP_NS
            if step != self._depth_step:        # the mid the next step's trade depths count from
                self._depth_step, self._depth_mid = step, self._mid_ticks or x
            self._mid_ticks = x
            self.vol.update(now_ns, x)
        else:
            if mid != 0.0 or not stale:     # mid 0 with stale: no fair price yet, pulled without a word
                self._bad("quote engine: fair mid is not a positive finite number; quotes pulled", repr(mid))
            self._mid_ticks = 0.0
        self._conf = confidence if confidence == confidence else 0.0  # NaN -> 0
        self._stale = stale
        self._bb = best_bid if best_bid > 0 else 0
        self._ba = best_ask if best_ask > 0 else 0
        self._in_ns = now_ns
        return self._quote(now_ns)

    def on_trade(self, now_ns: int, price_ticks: int) -> None:
        """A market trade on TrueX (or the reference venue, in ticks): feeds the fill-intensity fit."""
        if self._depth_mid > 0 and price_ticks > 0:
            self.intensity.on_trade(now_ns, abs(price_ticks - self._depth_mid))

    def on_event(self, ev: OrderEvent, now_ns: int) -> bool:
        """An execution event; True for a new fill (book it) or a state change. Actions follow on the
        next :meth:`requote`, price event or timer."""
        # any report naming one of our requests frees its rate slot (and those sent before it)
        ref = ev.ref_id if isinstance(ev, MessageRejected) else getattr(ev, "cl_ord_id", None)
        if isinstance(ref, str):
            self.limiter.on_ack(ref, now_ns)
        tracker = self.tracker
        race = tracker.fill_race(ev)
        changed = tracker.apply(ev, now_ns)
        self._prepare()
        if race:
            tracker.counts["fill_races"] += 1   # a reject of a request that crossed a fill: not a fault
        elif self.risk is not None and isinstance(ev, OrderRejected | CancelRejected | MessageRejected):
            self.risk.on_reject(now_ns)
        return changed

    def on_timer(self, now_ns: int) -> list[Action]:
        """Cancel orders stuck in flight, and re-quote (pulls quotes when the inputs got old)."""
        out: list[Action] = []
        for o in self.tracker.stale(now_ns, self._pending_ns):
            if not self.limiter.try_acquire(now_ns, cancel=True):
                break
            self._bad("quote engine: request unanswered past the timeout; canceling the order", o.cl_ord_id)
            a = CancelOrder(self.ids.next(), o.cl_ord_id, o.side)
            self.limiter.name((a.cl_ord_id,))
            self.tracker.on_cancel(a, now_ns)
            out.append(a)
        if out and self.risk is not None:
            self.risk.on_orders_sent(now_ns, len(out))
        out.extend(self._quote(now_ns))
        return out

    def requote(self, now_ns: int) -> list[Action]:
        """Re-run with the last inputs (after a fill changed the skew, or a risk change)."""
        return self._quote(now_ns)

    def halt(self, now_ns: int) -> list[Action]:
        """Stop quoting and cancel everything working (stop, operator); :meth:`resume` undoes it."""
        self.halted = True
        return self._quote(now_ns)

    def resume(self) -> None:
        self.halted = False

    # -- the decision ----------------------------------------------------------------------------
    def _prepare(self) -> BookView:
        """Our orders split and sorted for reconcile, redone only when the order state changed; done on
        the event path already, so a price event finds it ready."""
        tracker = self.tracker
        if self._view_version != tracker.version:
            self._view = book_view(tracker.working.values())
            self._view_version = tracker.version
        return self._view

    def _pull_reason(self, now_ns: int) -> str:
        if self.halted:
            return "halted"
        if self.risk is not None and self.risk.tripped:
            return "kill switch"
        if self._mid_ticks <= 0.0:
            return "no valid fair mid"
        if self._stale:
            return "reference stale"
        if self._in_ns is None or now_ns - self._in_ns > self._max_age_ns:
            return "no price input"
        if not self._conf >= self._conf_min:
            return "low confidence"
        if self.inventory.emergency:
            return "inventory emergency"
        return ""

    def desired(self, now_ns: int) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        """The ladder we want now (both sides, best first); empty sides when quotes are pulled."""
        risk = self.risk
        # _pull_reason's tests, inlined for the usual case (quoting): one frame less per price event
        if (self.halted or (risk is not None and risk.tripped) or self._mid_ticks <= 0.0 or self._stale
                or self._in_ns is None or now_ns - self._in_ns > self._max_age_ns
                or not self._conf >= self._conf_min or self.inventory.emergency):
            reason = self._pull_reason(now_ns)
        else:
            reason = ""
        if reason:
            if reason != self.pull_reason:
                log.info("quotes pulled: %s", reason)
            self.pull_reason = reason
            return EMPTY, EMPTY
        if self.pull_reason:
            log.info("quoting (was pulled: %s)", self.pull_reason)
            self.pull_reason = ""
        inv = self.inventory
        x = self._mid_ticks
        pos = inv.position_lots
        bid_off, ask_off = self.model.offsets(x, pos, inv.skew_ticks)
        bm, am = inv.bid_mode, inv.ask_mode
        # a model may pull one side (the edge model's fade): inf = no quotes there
        if bid_off == math.inf:
            if ask_off == math.inf:
                return EMPTY, EMPTY
            bm, bid_off = _PULL, ask_off
        elif ask_off == math.inf:
            am, ask_off = _PULL, bid_off
        if bm or am:
            extra = self._widen * abs(bid_off + ask_off) * 0.5
            if bm == _WIDEN:
                bid_off += extra
            if am == _WIDEN:
                ask_off += extra
        mx = inv.max_lots
        bid_room = 0 if bm == _PULL else (mx - pos if pos < mx else 0)
        ask_room = 0 if am == _PULL else (mx + pos if pos > -mx else 0)
        fb = self.firm_bounds
        if fb is not None:      # the firm-wide cap (fastmm.core.firm_limit), set from outside
            bid_room, ask_room = min(bid_room, fb[0] - pos), min(ask_room, fb[1] + pos)
            bid_room, ask_room = max(0, bid_room), max(0, ask_room)
        if self._post_only:
            return self.builder.build(x, bid_off, ask_off, self._bb, self._ba, bid_room, ask_room)
        return self.builder.build(x, bid_off, ask_off, 0, 0, bid_room, ask_room)

    def _quote(self, now_ns: int) -> list[Action]:
        bids, asks = self.desired(now_ns)
        tracker = self.tracker
        key = (bids, asks, tracker.version)
        if key == self._last_key and not self._deferred:
            return []
        limiter = self.limiter
        # Pulling (nothing wanted), the cancels may use the venue's whole budget; quoting, only ours. When
        # nothing could go out now, skip the planning and try again on the next event or timer.
        if (limiter.available(now_ns) if bids or asks else limiter.available_for_cancels(now_ns)) <= 0:
            self._deferred = True
            self._last_key = key
            return []
        x = self._mid_ticks
        if x > 0:
            b = self.builder
            # desired() has usually just built the ladder, and with it the band, for this very mid
            self.band = b.last_band if b.last_band_ref == x else b.band(x)
        else:
            self.band = (0, _INF)
        todo = plan(bids, asks, self._prepare(), self._threshold, self._tol, self.band)
        if not todo:
            self._last_key = key
            self._deferred = False
            return []
        sent, waiting = limiter.admit(todo, now_ns)
        actions = self._emit(sent, now_ns)
        if len(actions) < len(sent):     # held back by the band, the notional or the kill switch
            limiter.retract(len(sent) - len(actions))
        self._deferred = waiting > 0
        if actions:
            limiter.name([a[0] for a in actions])
        self._last_key = (bids, asks, tracker.version)
        if actions and self.risk is not None:
            self.risk.on_orders_sent(now_ns, len(actions))
        return actions

    def _emit(self, intents: list[Intent], now_ns: int) -> list[Action]:
        out: list[Action] = []
        tracker = self.tracker
        next_id = self.ids.next
        lo, hi = self.band
        min_tl = self._min_tl
        risk = self.risk
        if risk is not None and not risk.tripped:
            risk = None
        post_only = self._post_only
        bb, ba = self._bb, self._ba
        if bb and ba and bb >= ba:
            bb = ba = 0      # a locked or crossed view (stale, or our own orders mid-change): no judge
        held = False
        # actions are built with tuple.__new__: the named tuples' own __new__ is a Python function that
        # does just that, one frame more per action
        for kind, o, side, px, qty in intents:
            if kind == CANCEL:
                assert o is not None
                c = _tnew(CancelOrder, (next_id(), o.cl_ord_id, o.side))
                tracker.on_cancel(c, now_ns)
                out.append(c)
                continue
            rest = qty - o.cum if o is not None else qty
            if not (lo <= px <= hi) or rest <= 0 or px * rest < min_tl:
                self._bad("quote engine: held back an order outside the band or under the minimum notional",
                          f"side={side} px={px} qty={qty}")
                break
            if risk is not None and not risk.allows(side, rest, self.inventory.position_lots,
                                                    tracker.open_lots(_SIDES[side])):
                break  # tripped: only what shrinks the position may go
            # post-only everywhere: a replace carries no ExecInst on TrueX, so it must never cross the
            # last book we have (a new order only when post-only); the ladder is clamped already, this
            # is the last check: a crossing move becomes a cancel, a crossing new order is held back
            crosses = (ba > 0 and px >= ba) if side == 1 else (bb > 0 and px <= bb)
            if crosses and (kind == MOVE or post_only):
                self._bad("quote engine: an order would cross the TrueX book; canceled or held back",
                          f"side={side} px={px} book={bb}/{ba}")
                held = True
                if kind == MOVE:
                    assert o is not None
                    c = _tnew(CancelOrder, (next_id(), o.cl_ord_id, o.side))
                    tracker.on_cancel(c, now_ns)
                    out.append(c)
                continue
            fb = self.firm_bounds
            if fb is not None:
                # position + this side's working lots (this order's new size instead of its old one)
                # stay within the firm bound, so even every working order filling keeps the cap
                pos = self.inventory.position_lots
                exposure = tracker.open_lots(_SIDES[side]) - (o.leaves if o is not None else 0) + rest
                if exposure + (pos if side == 1 else -pos) > fb[0 if side == 1 else 1]:
                    continue
            if kind == MOVE:
                assert o is not None
                r = _tnew(ReplaceOrder, (next_id(), o.cl_ord_id, o.side, px, qty))
                tracker.on_replace(r, now_ns)
                out.append(r)
            else:
                n = _tnew(NewOrder, (next_id(), _SIDES[side], px, qty, post_only))
                tracker.on_new(n, now_ns)
                out.append(n)
        if held:
            self._deferred = True    # plan again on the next event or timer, with a newer book
        return out

    # -- reads ------------------------------------------------------------------------------------
    def working(self) -> list[tuple[Side, int, int, str]]:
        """(side, price ticks, leaves lots, state name) of every working order."""
        return [(o.side, o.price, o.leaves, o.state.name) for o in self.tracker.working.values()]
