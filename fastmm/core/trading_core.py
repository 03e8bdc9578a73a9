"""The whole trading core behind one small interface: what the quoter shell, the simulator's strategy
harness and the backtest all drive, so each runs the same decisions.

In: price events (fair mid, confidence, staleness, TrueX top of book), TrueX execution events, hedge
fills, market trades, timer ticks, all with ``now_ns``. Out: order actions for the FIX layer, a hedge
signal for the hedger, and PnL and risk events for the journal and the log.

Every fill is checked (fastmm.core.vet) before it is booked: an impossible one (over-fill, an order we
never sent, a price or quantity that cannot be) is refused, counted in ``refused``, and trips the kill
switch; position and PnL never see it.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from fastmm.config import Config
from fastmm.core.ids import RecentIds
from fastmm.core.inventory import HedgeSignal, InventoryManager
from fastmm.core.pnl import PnlChange, PnlSummary, PnLTracker
from fastmm.core.quote_engine import QuoteEngine
from fastmm.core.risk import RiskManager, RiskReset, RiskTrip, TripReason
from fastmm.core.types import Action, HedgeFilled, OrderEvent, OrderFilled
from fastmm.core.vet import OrderTerms, fill_problem, hedge_fill_problem
from fastmm.instrument import Instrument
from fastmm.logs import OnceLogger

log = logging.getLogger(__name__)

CoreEvent = PnlChange | PnlSummary | RiskTrip | RiskReset


class TradingCore:
    def __init__(self, cfg: Config, *, cl_ord_prefix: str = "fm", **engine_options: int | float) -> None:
        self.cfg = cfg
        self.instrument = Instrument.from_config(cfg.instrument)
        self.inventory = InventoryManager(cfg.inventory, cfg.hedge, self.instrument)
        self.pnl = PnLTracker(cfg.pnl, cfg.fees, self.instrument)
        self.risk = RiskManager(cfg.risk, cfg.inventory, self.instrument)
        self.engine = QuoteEngine(cfg.quoting, cfg.venue_rules, self.instrument, self.inventory, self.risk,
                                  cl_ord_prefix=cl_ord_prefix, **engine_options)  # type: ignore[arg-type]
        self._hedge_exec_ids = RecentIds()
        self._bad = OnceLogger(log)
        # orders a previous run sent, from its journal (start-up recovery): a fill the venue resends for
        # one of them is checked against these terms until the order is adopted into the tracker
        self.prior_orders: dict[str, OrderTerms] = {}
        self.refused = 0          # venue reports refused as impossible (never booked)

    def on_price(self, now_ns: int, mid: float, confidence: float, stale: bool, best_bid: int = 0,
                 best_ask: int = 0) -> list[Action]:
        self.pnl.on_mark(now_ns, mid)
        risk = self.risk
        risk.on_data(now_ns, stale)
        risk.on_pnl(now_ns, self.pnl.total_units)
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

    def on_trade(self, now_ns: int, price_ticks: int) -> None:
        self.engine.on_trade(now_ns, price_ticks)

    def on_timer(self, now_ns: int) -> list[Action]:
        self.pnl.on_timer(now_ns)
        self.risk.on_timer(now_ns)
        self.risk.on_pnl(now_ns, self.pnl.total_units)
        return self.engine.on_timer(now_ns)

    def hedge_signal(self) -> HedgeSignal | None:
        return self.inventory.hedge_signal() if self.cfg.hedge.enabled else None

    def stop(self, now_ns: int) -> list[Action]:
        """Cancel every quote (more follow from on_timer while the rate limit holds some back)."""
        return self.engine.halt(now_ns)

    def reset_risk(self, now_ns: int, operator: str) -> RiskReset | None:
        return self.risk.reset(now_ns, operator)

    def events(self) -> list[CoreEvent]:
        return [*self.pnl.events(), *self.risk.events()]

    def total_pnl(self) -> Decimal:
        return self.pnl.summary(0).total
