"""The replay loop: latencies in event time, determinism, exact PnL bookkeeping, exact input reductions."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
from bt_helpers import SLICE_LINES, active_config

from fastmm.backtest.engine import BacktestOptions, BacktestResult, run_backtest
from fastmm.backtest.market import ASK, BID, MarketData, StreamBuilder
from fastmm.backtest.report import metrics
from fastmm.config import Config

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
E8 = 100_000_000


def synthetic(trade_at_ms: float) -> MarketData:
    """Book 60000.00 / 60000.10, tops every 10 ms, and one sale at 59990.00 (through any bid we quote)."""
    b = StreamBuilder()
    bid, ask = 60_000 * E8, 60_000 * E8 + 10_000_000
    b.snapshot(T0, [(bid, E8), (bid - 50_000_000, E8)], [(ask, E8), (ask + 50_000_000, E8)])
    trade_t = T0 + int(trade_at_ms * MS)
    done = False
    for i in range(1, 60):
        t = T0 + i * MS
        if not done and t > trade_t:
            b.trade(trade_t, ASK, 59_990 * E8, E8 // 100)
            done = True
        b.top(t, bid, ask, E8, E8)
    return b.build("synthetic", "test", "btcusd", 60)


def quiet_config() -> Config:
    cfg = Config()
    return replace(cfg, quoting=replace(cfg.quoting, model="ladder", levels=1, base_spread_bps=Decimal(2)))


def run_synthetic(trade_at_ms: float, feed_ms: float, order_ms: float) -> BacktestResult:
    opts = BacktestOptions(feed_latency_ns=int(feed_ms * MS), order_latency_ns=int(order_ms * MS), timer_ns=MS)
    return run_backtest(quiet_config(), synthetic(trade_at_ms), opts)


def test_order_latency_decides_whether_the_order_is_at_the_venue_when_the_market_trades() -> None:
    # first top at 1 ms reaches the core at 1 + feed; the bid reaches the venue one order latency later
    early = run_synthetic(trade_at_ms=5.5, feed_ms=2, order_ms=3)    # bid arrives at 6 ms: too late
    assert early.fills == []
    late = run_synthetic(trade_at_ms=6.5, feed_ms=2, order_ms=3)     # bid rests since 6 ms: filled
    assert len(late.fills) == 1
    t, side, px, lots, liq = late.fills[0]
    assert (t, side, lots, liq) == (T0 + int(6.5 * MS), BID, 1000, 1)
    assert px == 119_988          # floor(mid 120000.1 ticks - 1 bps half spread of 12.0 ticks)
    # the core learns of it one order latency after the venue filled it
    s = late.series
    first_long = int(s["t"][np.argmax(s["position"] > 0)])
    assert T0 + int(9.5 * MS) <= first_long <= T0 + int(10.5 * MS)


def test_feed_latency_delays_the_quotes() -> None:
    assert run_synthetic(trade_at_ms=6.5, feed_ms=2, order_ms=3).fills
    assert not run_synthetic(trade_at_ms=6.5, feed_ms=4, order_ms=3).fills   # bid arrives at 8 ms


def digest(r: BacktestResult) -> str:
    h = hashlib.sha256()
    h.update(repr(r.fills).encode())
    h.update(repr(r.hedges).encode())
    for k in sorted(r.series):
        h.update(k.encode())
        h.update(np.ascontiguousarray(r.series[k]).tobytes())
    h.update(repr((r.summary.total, r.summary.realized, r.summary.fees, r.summary.markouts)).encode())
    h.update(repr((r.core_ledger, r.venue_ledger, r.venue)).encode())
    return h.hexdigest()


def test_same_inputs_give_identical_outputs_also_in_a_fresh_process(capture_slice: MarketData) -> None:
    cfg = active_config()
    first = digest(run_backtest(cfg, capture_slice))
    assert digest(run_backtest(cfg, capture_slice)) == first
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from bt_helpers import active_config, load_slice
        from test_backtest_engine import digest
        from fastmm.backtest.engine import run_backtest
        print(digest(run_backtest(active_config(), load_slice({SLICE_LINES}))))
    """)
    env = dict(os.environ, PYTHONHASHSEED="12345")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == first


@pytest.mark.parametrize("hedge_mode", ["planner", "taker"])
def test_pnl_is_conserved_and_the_venue_books_agree_with_the_core(capture_slice: MarketData,
                                                                   hedge_mode: str) -> None:
    r = run_backtest(active_config(), capture_slice, BacktestOptions(hedge_mode=hedge_mode))  # type: ignore[arg-type]
    led = r.core_ledger
    assert len(r.fills) > 20 and len(r.hedges) > 2, "the slice must trade and hedge for this test to mean much"
    # cash + inventory value == realized + unrealized - fees, exactly (1e-8 PYUSD units)
    assert (led["cash_units"] + led["position_lots"] * led["mark_units_per_lot"]
            == led["realized_units"] + led["unrealized_units"] - led["fees_units"])
    # every fill the venue and Kraken booked reached the core, at the same price and fee
    assert r.venue_ledger["cash_units"] == led["cash_units"]
    assert r.venue_ledger["fees_units"] == led["fees_units"]
    assert r.venue_ledger["position_lots"] == led["position_lots"] == led["inventory_lots"]
    # and the report's totals are the same money
    m = metrics(r)
    assert m["pnl_conserved"] and m["venue_ledger_agrees"]
    assert m["total"] == pytest.approx((led["realized_units"] + led["unrealized_units"] - led["fees_units"]) / 1e8)
    assert m["fees_by_venue"]["kraken"] > 0


@pytest.mark.parametrize("model", ["ladder", "glft"])
def test_input_reductions_change_no_decision(capture_slice: MarketData, model: str) -> None:
    cfg = active_config(model)
    fast = run_backtest(cfg, capture_slice, BacktestOptions())
    full = run_backtest(cfg, capture_slice, BacktestOptions(conflate=False, trades_to_core="always"))
    assert fast.fills, "no fills: the comparison would be empty"
    assert digest(fast) == digest(full)
    assert fast.counts["engine_events"] < full.counts["engine_events"]


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="feed_latency_ns"):
        BacktestOptions(feed_latency_ns=-1).check()
    with pytest.raises(ValueError, match="timer_ns"):
        BacktestOptions(timer_ns=0).check()
