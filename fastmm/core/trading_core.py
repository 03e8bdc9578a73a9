"""The whole trading core behind one small interface: what the quoter shell, the simulator's strategy
harness and the backtest all drive, so each runs the same decisions.

In: price events (fair mid, confidence, staleness, TrueX top of book), TrueX execution events, hedge
fills, market trades, timer ticks, all with ``now_ns``. Out: order actions for the FIX layer, a hedge
signal for the hedger, and PnL and risk events for the journal and the log.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from fastmm.config import Config
from fastmm.core.edge import EdgeModel
from fastmm.core.fair_value import FairValue
from fastmm.core.ids import RecentIds
from fastmm.core.inventory import HedgeSignal, InventoryManager
from fastmm.core.pnl import PnlChange, PnlSummary, PnLTracker
from fastmm.core.quote_engine import QuoteEngine
from fastmm.core.risk import RiskManager, RiskReset, RiskTrip
from fastmm.core.types import Action, HedgeFilled, OrderEvent, OrderFilled
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
        # the edge model's signals (fastmm/core/fair_value.py): fed on every price, book and trade input
        self.fair = FairValue(cfg.edge)
        self._edge = cfg.quoting.model == "edge"     # the other models read none of it: skip the work
        model = None
        if self._edge:
            inst = self.instrument
            model = EdgeModel(cfg.edge, cfg.fees, self.fair,
                              base_lots=max(1, inst.qty_floor_lots(cfg.quoting.base_size_btc)),
                              max_lots=self.inventory.max_lots,
                              hedge_threshold_lots=inst.qty_floor_lots(cfg.inventory.hedge_threshold_btc))
        self.engine = QuoteEngine(cfg.quoting, cfg.venue_rules, self.instrument, self.inventory, self.risk,
                                  cl_ord_prefix=cl_ord_prefix, model=model,
                                  **engine_options)  # type: ignore[arg-type]
        self._hedge_exec_ids = RecentIds()
        self._bad = OnceLogger(log)

    def on_price(self, now_ns: int, mid: float, confidence: float, stale: bool, best_bid: int = 0,
                 best_ask: int = 0) -> list[Action]:
        self.pnl.on_mark(now_ns, mid)
        if self._edge:
            self.fair.on_mid(now_ns, mid)
        risk = self.risk
        risk.on_data(now_ns, stale)
        risk.on_pnl(now_ns, self.pnl.total_units)
        return self.engine.on_price(now_ns, mid, confidence, stale, best_bid, best_ask)

    def on_order_event(self, ev: OrderEvent, now_ns: int) -> list[Action]:
        changed = self.engine.on_event(ev, now_ns)
        if not changed:
            return []
        if isinstance(ev, OrderFilled):
            self.inventory.on_truex_fill(ev.side, ev.last_px_ticks, ev.last_qty_lots)
            self.pnl.on_truex_fill(now_ns, ev)
            self._after_fill(now_ns)
        return self.engine.requote(now_ns)

    def on_hedge_fill(self, ev: HedgeFilled, now_ns: int) -> list[Action]:
        price = ev.price
        if (not isinstance(price, Decimal) or not price.is_finite() or price <= 0
                or not isinstance(ev.qty_lots, int) or ev.qty_lots <= 0):
            self._bad("core: ignored a hedge fill with a bad quantity or price", repr(ev))
            return []
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
            self.fair.on_trade(now_ns, taker_side, qty_e8)

    def on_reference(self, now_ns: int, source: str, bid_e8: int, ask_e8: int, bid_sz_e8: int,
                     ask_sz_e8: int) -> None:
        """A reference venue's top of book with sizes (the microprice); the price path follows in
        :meth:`on_price` with the fused mid."""
        if self._edge:
            self.fair.on_book(now_ns, source, bid_e8, ask_e8, bid_sz_e8, ask_sz_e8)

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
