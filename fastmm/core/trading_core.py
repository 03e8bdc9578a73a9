"""The whole trading core behind one small interface: what the quoter shell, the simulator's strategy
harness and the backtest all drive, so each runs the same decisions.

In: reference tops of book (:meth:`TradingCore.on_reference`, into the core's own PriceAggregator), the
TrueX top of book (:meth:`TradingCore.on_truex_top`), TrueX execution events, hedge fills, market trades,
timer ticks, all with ``now_ns``. Out: order actions for the FIX layer, a hedge signal for the hedger, and
PnL and risk events for the journal and the log.

Every user builds it with :meth:`TradingCore.from_config`, so the quoter, the backtest, the rehearsal,
``ops cancel-orders`` and the benches run the same settings; :meth:`TradingCore.settings` is what a test
compares across them. Shells use the facade methods here, not the parts' internals.

Every fill is checked (fastmm.core.vet) before it is booked: an impossible one (over-fill, an order we
never sent, a price or quantity that cannot be) is refused, counted in ``refused``, and trips the kill
switch; position and PnL never see it.
"""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal
from typing import Any

from fastmm.config import Config, describe
from fastmm.core.basis import BasisEstimator
from fastmm.core.edge import EdgeModel
from fastmm.core.fair_value import FairValue
from fastmm.core.ids import RecentIds
from fastmm.core.inventory import HedgeSignal, InventoryManager
from fastmm.core.order_tracker import TrackedOrder
from fastmm.core.pnl import PnlChange, PnlSummary, PnLTracker
from fastmm.core.price_aggregator import FairPrice, PriceAggregator
from fastmm.core.quote_engine import QuoteEngine
from fastmm.core.risk import RiskManager, RiskReset, RiskTrip, TripReason
from fastmm.core.types import Action, HedgeFilled, OrderEvent, OrderFilled, Side
from fastmm.core.vet import OrderTerms, fill_problem, hedge_fill_problem
from fastmm.instrument import Instrument
from fastmm.logs import OnceLogger

log = logging.getLogger(__name__)

CoreEvent = PnlChange | PnlSummary | RiskTrip | RiskReset


# the config sections the core's parts are built from (a settings snapshot lists these)
_SECTIONS = ("instrument", "quoting", "venue_rules", "inventory", "fees", "pnl", "hedge", "risk", "pricing")
_QUOTING_KNOBS = ("size_tolerance_pct", "widen_mult", "pending_timeout_ms")


class TradingCore:
    def __init__(self, cfg: Config, *, cl_ord_prefix: str = "fm", **overrides: int | float) -> None:
        """``overrides`` (tests only) replace settings by name: ``rate_guard_ms`` (venue_rules) and the
        quote engine's ``size_tolerance_pct``, ``widen_mult``, ``pending_timeout_ms`` (quoting); the
        effective config is ``self.cfg``. Shells use :meth:`from_config`."""
        cfg = _with_overrides(cfg, overrides)
        self.cfg = cfg
        self.instrument = Instrument.from_config(cfg.instrument)
        self.aggregator = PriceAggregator.from_config(cfg)
        self.inventory = InventoryManager(cfg.inventory, cfg.hedge, self.instrument)
        self.pnl = PnLTracker(cfg.pnl, cfg.fees, self.instrument)
        self.risk = RiskManager(cfg.risk, cfg.inventory, self.instrument)
        # the edge model's signals (fastmm/core/fair_value.py): fed on every price, book and trade input
        self.fair_value = FairValue(cfg.edge)
        self._edge = cfg.quoting.model == "edge"     # the other models read none of it: skip the work
        model = None
        if self._edge:
            inst = self.instrument
            model = EdgeModel(cfg.edge, cfg.fees, self.fair_value,
                              base_lots=max(1, inst.qty_floor_lots(cfg.quoting.base_size_btc)),
                              max_lots=self.inventory.max_lots,
                              hedge_threshold_lots=inst.qty_floor_lots(cfg.inventory.hedge_threshold_btc))
        # a stale reference pulls the quotes (the engine's input age), it never trips the kill switch
        self.engine = QuoteEngine(cfg.quoting, cfg.venue_rules, self.instrument, self.inventory, self.risk,
                                  cl_ord_prefix=cl_ord_prefix, max_input_age_ms=cfg.risk.stale_data_ms,
                                  model=model)
        self._hedge_exec_ids = RecentIds()
        self._bad = OnceLogger(log)
        self._bb = self._ba = 0      # TrueX top in ticks (0: none)
        self._fair_ns = -1           # when the aggregator last computed
        self.basis: BasisEstimator | None = None     # venue over references, when estimated online
        # orders a previous run sent, from its journal (start-up recovery): a fill the venue resends for
        # one of them is checked against these terms until the order is adopted into the tracker
        self.prior_orders: dict[str, OrderTerms] = {}
        self.refused = 0          # venue reports refused as impossible (never booked)

    @classmethod
    def from_config(cls, cfg: Config, *, cl_ord_prefix: str = "fm") -> TradingCore:
        """The one way shells build a core: every setting from ``cfg``; ``cl_ord_prefix`` is the run's
        identity on the venue, not a setting."""
        return cls(cfg, cl_ord_prefix=cl_ord_prefix)

    # -- prices -----------------------------------------------------------------------------------
    def on_reference(self, now_ns: int, source: str, bid_e8: int, ask_e8: int, t_recv_ns: int,
                     stale: bool = False, bid_sz_e8: int = 0, ask_sz_e8: int = 0) -> bool:
        """A reference venue's top of book (1e-8 units) into the aggregator, which computes once; True
        when the fair price changed (then :meth:`decide`; a shell that read several channels in one wake
        decides once after all of them). The sizes feed the edge model's microprice."""
        if self._edge and bid_sz_e8 and not stale:
            self.fair_value.on_book(now_ns, source, bid_e8, ask_e8, bid_sz_e8, ask_sz_e8)
        self._fair_ns = now_ns
        return self.aggregator.update(source, bid_e8, ask_e8, t_recv_ns, now_ns, stale) is not None

    def estimate_basis(self, basis: BasisEstimator, aggregator: PriceAggregator | None = None) -> None:
        """Quote a venue that trades at a drifting basis to the references (PYUSD vs USD, a future vs
        spot): every fair price is moved onto the venue by ``basis``, fed by :meth:`on_venue_mid`.
        ``aggregator`` replaces the configured one (references other than Coinbase and Kraken)."""
        self.basis = basis
        if aggregator is not None:
            self.aggregator = aggregator
            self._fair_ns = -1

    def on_venue_mid(self, now_ns: int, venue_mid: float) -> None:
        """The quoted venue's own mid (price units), one sample of the basis against the fair price."""
        if self.basis is not None:
            f = self.aggregator.last
            if f.mid_e8 > 0:
                self.basis.update(now_ns, venue_mid, f.mid)

    def on_truex_top(self, bid_ticks: int, ask_ticks: int) -> None:
        """The TrueX best bid and ask in ticks (0: that side empty), for post-only; the next
        :meth:`decide` uses them."""
        self._bb = bid_ticks
        self._ba = ask_ticks

    def decide(self, now_ns: int) -> list[Action]:
        """One decision on the latest fair price and TrueX top. The aggregator computes only if no
        reference update did at ``now_ns`` (a TrueX-only change still ages the sources)."""
        agg = self.aggregator
        if self._fair_ns != now_ns:
            self._fair_ns = now_ns
            agg.on_timer(now_ns)
        f = agg.last
        mid = f.mid if self.basis is None else self.basis.apply(f.mid)
        stale = f.mid_e8 <= 0
        # on_price inlined (one frame less right after a wake, issue 21 item 3); keep the two alike
        if mid != 0.0 or not stale:
            self.pnl.on_mark(now_ns, mid)
            if self._edge:
                self.fair_value.on_mid(now_ns, mid)
        self.risk.on_pnl(now_ns, self.pnl.total_units)
        return self.engine.on_price(now_ns, mid, f.confidence, stale, self._bb, self._ba)

    @property
    def fair(self) -> FairPrice:
        """The aggregator's latest fair price (mid 0: none)."""
        return self.aggregator.last

    @property
    def venue_fair_mid(self) -> float:
        """The fair mid the quotes are built around: the references' moved onto the venue by the basis."""
        mid = self.aggregator.last.mid
        return mid if self.basis is None else self.basis.apply(mid)

    def on_price(self, now_ns: int, mid: float, confidence: float, stale: bool, best_bid: int = 0,
                 best_ask: int = 0) -> list[Action]:
        """A fair price into the mark, the edge model's signals, the risk limits and the quote engine:
        :meth:`decide` calls it with the aggregator's; tests and harnesses with a price of their own call
        it directly. No fair price yet (mid 0, stale) marks nothing and pulls the quotes: a normal state
        at the start and after every reference went away, not a bad number."""
        if mid != 0.0 or not stale:
            self.pnl.on_mark(now_ns, mid)
            if self._edge:
                self.fair_value.on_mid(now_ns, mid)
        self.risk.on_pnl(now_ns, self.pnl.total_units)
        return self.engine.on_price(now_ns, mid, confidence, stale, best_bid, best_ask)

    def on_order_event(self, ev: OrderEvent, now_ns: int) -> list[Action]:
        if isinstance(ev, OrderFilled):
            if self.engine.tracker.fill_seen(ev.exec_id):
                return []           # a resend of a fill booked already
            problem = self.fill_problem(ev)
            if problem is not None:
                self.refuse(now_ns, problem, repr(ev))
                return self.engine.requote(now_ns)       # the kill switch pulls every quote
            prior = self.prior_orders.get(ev.cl_ord_id)
            if prior is not None and self.engine.tracker.get(ev.cl_ord_id) is None:
                self.prior_orders[ev.cl_ord_id] = prior._replace(cum_lots=prior.cum_lots + ev.last_qty_lots)
        changed = self.engine.on_event(ev, now_ns)
        if not changed:
            return []
        if isinstance(ev, OrderFilled):
            self.inventory.on_truex_fill(ev.side, ev.last_px_ticks, ev.last_qty_lots)
            self.pnl.on_truex_fill(now_ns, ev)
            self._after_fill(now_ns)
        return self.engine.requote(now_ns)

    def fill_problem(self, ev: OrderFilled) -> str | None:
        """Why this fill cannot be true (None: book it), against the order as we know it."""
        terms = self.engine.tracker.terms(ev.cl_ord_id)
        return fill_problem(ev, terms if terms is not None else self.prior_orders.get(ev.cl_ord_id))

    def refuse(self, now_ns: int, problem: str, detail: str = "") -> None:
        """An impossible venue report: never booked; an alert, and the kill switch."""
        self.refused += 1
        if self.refused <= 10:
            log.error("ALERT: refused an impossible venue report: %s (%s)", problem, detail)
        self.risk.trip(now_ns, TripReason.BAD_REPORT, problem)

    def replay_fill(self, ev: OrderFilled, order: OrderTerms | None, now_ns: int) -> str | None:
        """Book a fill from the journal (start-up recovery) if it passes the checks against the order as
        the journal has it; else return the problem and book nothing."""
        problem = fill_problem(ev, order)
        if problem is not None:
            return problem
        self.inventory.on_truex_fill(ev.side, ev.last_px_ticks, ev.last_qty_lots)
        self.pnl.on_truex_fill(now_ns, ev)
        self._after_fill(now_ns)
        return None

    def hedge_fill_booked(self, exec_id: str) -> bool:
        """This hedge fill is in the position already (a ring record delivered again after a restart)."""
        return exec_id in self._hedge_exec_ids

    def on_hedge_fill(self, ev: HedgeFilled, now_ns: int) -> list[Action]:
        problem = hedge_fill_problem(ev.qty_lots, ev.price, ev.fee)
        if problem is not None:
            self.refuse(now_ns, problem, repr(ev))
            return self.engine.requote(now_ns)
        if not self._hedge_exec_ids.add(ev.exec_id):
            return []
        self.inventory.on_hedge_fill(ev.side, ev.price, ev.qty_lots)
        self.pnl.on_hedge_fill(now_ns, ev)
        self._after_fill(now_ns)
        return self.engine.requote(now_ns)

    def _after_fill(self, now_ns: int) -> None:
        self.risk.on_position(now_ns, self.inventory.position_lots)
        self.risk.on_pnl(now_ns, self.pnl.total_units)

    def on_trade(self, now_ns: int, price_ticks: int, taker_side: int = 0, qty_e8: int = 0) -> None:
        """A market trade: the intensity fit takes its price, the fair value its side and size."""
        self.engine.on_trade(now_ns, price_ticks)
        if qty_e8 and self._edge:
            self.fair_value.on_trade(now_ns, taker_side, qty_e8)

    def on_timer(self, now_ns: int) -> list[Action]:
        """Age the reference sources (a decision when that changed the fair price), then the timers of
        PnL, risk and the engine (stuck requests, old inputs)."""
        self._fair_ns = now_ns
        out = self.decide(now_ns) if self.aggregator.on_timer(now_ns) is not None else []
        self.pnl.on_timer(now_ns)
        self.risk.on_pnl(now_ns, self.pnl.total_units)
        out += self.engine.on_timer(now_ns)
        return out

    def hedge_signal(self) -> HedgeSignal | None:
        return self.inventory.hedge_signal() if self.cfg.hedge.enabled else None

    def stop(self, now_ns: int) -> list[Action]:
        """Cancel every quote (more follow from on_timer while the rate limit holds some back)."""
        return self.engine.halt(now_ns)

    def resume(self, now_ns: int) -> list[Action]:
        """Quote again after :meth:`stop`: a decision on the current (aged) fair price."""
        self.engine.resume()
        self._fair_ns = -1
        return self.decide(now_ns)

    def requote(self, now_ns: int) -> list[Action]:
        """Re-run the last decision's inputs (after orders were adopted, or a risk change)."""
        return self.engine.requote(now_ns)

    def reset_risk(self, now_ns: int, operator: str) -> RiskReset | None:
        return self.risk.reset(now_ns, operator)

    def events(self) -> list[CoreEvent]:
        return [*self.pnl.events(), *self.risk.events()]

    def total_pnl(self) -> Decimal:
        return self.pnl.summary(0).total

    # -- orders: what shells read and do without reaching into the engine -------------------------
    @property
    def live_orders(self) -> int:
        """Orders working or in flight on TrueX."""
        return len(self.engine.tracker.working)

    def best_quotes(self) -> tuple[int, int]:
        """Our best bid and ask in ticks among working orders (0: none on that side)."""
        bid = ask = 0
        for o in self.engine.tracker.working.values():
            if o.side == Side.BUY:
                bid = o.price if o.price > bid else bid
            elif ask == 0 or o.price < ask:
                ask = o.price
        return bid, ask

    def adopt_order(self, cl_ord_id: str, side: Side, price_ticks: int, qty_lots: int, cum_lots: int,
                    now_ns: int) -> None:
        """An order a previous run may have left live (recovery): tracked, so the engine cancels it."""
        self.engine.tracker.adopt(cl_ord_id, side, price_ticks, qty_lots, cum_lots, now_ns)

    def order(self, cl_ord_id: str) -> TrackedOrder | None:
        """Our order under ``cl_ord_id`` while tracked."""
        return self.engine.tracker.get(cl_ord_id)

    def track_only(self, ev: OrderEvent, now_ns: int) -> bool:
        """An execution event into the order state alone: no fill booked, no decision (the rehearsal's
        shadow venue answering at once); live events go to :meth:`on_order_event`."""
        return self.engine.tracker.apply(ev, now_ns)

    def preload_sent(self, sent_ns: list[int]) -> None:
        """Messages a previous run sent recently (on this clock): the rate limiter counts them."""
        self.engine.limiter.preload(sent_ns)

    def try_acquire_message(self, now_ns: int, cancel: bool = False) -> bool:
        """One message's room in the rate limit, for a message the engine did not plan (an operator's
        cancel: ``cancel`` may use TrueX's own budget); False: wait. Name it with :meth:`sent_as`."""
        return self.engine.limiter.try_acquire(now_ns, cancel=cancel)

    def sent_as(self, cl_ord_id: str) -> None:
        """The message just acquired went out with ``cl_ord_id``: its slot frees from TrueX's answer."""
        self.engine.limiter.name((cl_ord_id,))

    def on_venue_answer(self, cl_ord_id: str, now_ns: int) -> None:
        """A report naming ``cl_ord_id`` arrived (for messages not sent through the quote engine)."""
        self.engine.limiter.on_ack(cl_ord_id, now_ns)

    def next_cl_ord_id(self) -> str:
        """A fresh ClOrdID of this core's run."""
        return self.engine.ids.next()

    # -- settings -------------------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        """Every setting the core's parts run with, as text (the config sections they are built from,
        the aggregator's sources, what the quote engine resolved): equal for two cores built alike."""
        rows: dict[str, str] = {}
        for name in _SECTIONS:
            rows.update(describe(getattr(self.cfg, name), name + "."))
        agg = self.aggregator
        rows["aggregator.sources"] = ",".join(agg.source_names)
        rows["aggregator.stale_after_ns"] = ",".join(str(s) for s in agg.stale_after_ns)
        rows["aggregator.basis"] = repr(agg.basis)
        rows["aggregator.max_dispersion"] = repr(agg.max_dispersion)
        e = self.engine
        rows["engine.size_tolerance_pct"] = str(e._tol)
        rows["engine.widen_mult"] = repr(e._widen + 1.0)
        rows["engine.pending_timeout_ns"] = str(e._pending_ns)
        rows["engine.max_input_age_ns"] = str(e._max_age_ns)
        rows["engine.rate_windows_ns"] = f"{e.limiter._w_sec},{e.limiter._w_min}"
        return rows


def _with_overrides(cfg: Config, overrides: dict[str, int | float]) -> Config:
    if not overrides:
        return cfg
    unknown = set(overrides) - {"rate_guard_ms", *_QUOTING_KNOBS}
    if unknown:
        raise TypeError(f"unknown core setting(s): {', '.join(sorted(unknown))}")
    quoting: dict[str, Any] = {k: v for k, v in overrides.items() if k in _QUOTING_KNOBS}
    if quoting:
        cfg = dataclasses.replace(cfg, quoting=dataclasses.replace(cfg.quoting, **quoting))
    if "rate_guard_ms" in overrides:
        cfg = dataclasses.replace(cfg, venue_rules=dataclasses.replace(
            cfg.venue_rules, rate_guard_ms=int(overrides["rate_guard_ms"])))
    return cfg
