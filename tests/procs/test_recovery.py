"""Start-up recovery from the journal: possibly-live orders are tracked, the rate window is remembered."""

from __future__ import annotations

import time
from pathlib import Path

from fastmm.config import Config
from fastmm.core.order_tracker import OrdState
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import CancelOrder, Side
from fastmm.journal import Journal
from fastmm.procs.recovery import recover


def _journal(path: Path, old_s: float = 0.0) -> None:
    j = Journal(path, "flush", 1 << 30)
    t = time.time_ns() - int(old_s * 1e9)
    j.append("order", t, cl_ord_id="a1", side="1", price_ticks=1000, qty_lots=50)
    j.append("order", t, cl_ord_id="a2", side="2", price_ticks=1010, qty_lots=50)
    j.append("order", t, cl_ord_id="a3", side="2", price_ticks=1011, qty_lots=40)
    j.append("fill", t, cl_ord_id="a1", exec_id="e1", side="1", px_ticks=1000, qty_lots=20, leaves_lots=30,
             liquidity=1, fee="0")
    j.append("cancel", t, cl_ord_id="c1", orig_cl_ord_id="a3", side="2")
    j.append("canceled", t, cl_ord_id="c1", orig_cl_ord_id="a3")
    j.append("replace", t, cl_ord_id="a4", orig_cl_ord_id="a2", side="2", price_ticks=1012, qty_lots=50)
    j.close()


def test_possibly_live_orders_are_adopted_as_live_with_their_terms(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _journal(path, old_s=120)
    core = TradingCore(Config())
    rec = recover(path, core, Config())
    # a3 was canceled; a replace whose answer never came leaves both a2 and a4 possibly live
    assert rec.possibly_live == {"a1": Side.BUY, "a2": Side.SELL, "a4": Side.SELL}
    assert core.inventory.position_lots == 20 and rec.truex_fills == 1
    assert rec.adopt(core, time.monotonic_ns()) == 3
    tracker = core.engine.tracker
    a1, a4 = tracker.get("a1"), tracker.get("a4")
    assert a1 is not None and a4 is not None
    assert (a1.state, a1.price, a1.qty, a1.cum, a1.leaves) == (OrdState.LIVE, 1000, 50, 20, 30)
    assert (a4.state, a4.price, a4.leaves) == (OrdState.LIVE, 1012, 50)
    assert set(tracker.working) == {"a1", "a2", "a4"}
    # the halted engine cancels what it adopted (every order, as the rate limit allows)
    now = time.monotonic_ns()
    core.engine.halted = True
    actions = core.engine.requote(now)
    assert {a.orig_cl_ord_id for a in actions if isinstance(a, CancelOrder)} == {"a1", "a2", "a4"}


def test_the_previous_runs_messages_count_against_the_rate_window(tmp_path: Path) -> None:
    fresh = TradingCore(Config())
    budget = fresh.engine.limiter.available(time.monotonic_ns())
    recent, old = tmp_path / "recent.jsonl", tmp_path / "old.jsonl"
    _journal(recent, old_s=0.1)
    _journal(old, old_s=120)
    core = TradingCore(Config())
    recover(recent, core, Config())
    assert core.engine.limiter.available(time.monotonic_ns()) == budget - 5   # 3 orders, a cancel, a replace
    core = TradingCore(Config())
    recover(old, core, Config())
    assert core.engine.limiter.available(time.monotonic_ns()) == budget       # outside every window


def test_hedge_fills_only_the_hedger_journalled_are_booked_once(tmp_path: Path) -> None:
    """The hedger journals a fill before it publishes it; one it published after the quoter stopped taking
    from the ring is only in ``hedger.jsonl``. Recovery books it (with the slice's price and fee, as the
    ring would carry them), skips a sub-lot slice the hedger never published, and books nothing twice."""
    from decimal import Decimal

    from fastmm.config import load_config
    from fastmm.procs.recovery import HEDGER_JOURNAL

    cfg = load_config(None, {"FASTMM_INSTANCE__STATE_DIR": str(tmp_path)})
    state = cfg.state_path
    state.mkdir(parents=True, exist_ok=True)
    t = time.time_ns()
    h = Journal(state / HEDGER_JOURNAL, "flush", 1 << 30)
    h.append("hedge", t, cl_ord_id="h1m", hedge_id=1, side="sell", volume_e8=300_000, price_e8=0)
    h.append("hedge_fill", t, cl_ord_id="h1m", exec_id="TX1:5000", lots=0, vol_exec_e8=5000, cost="3.35",
             fee="0.00871", carry_e8=5000, price="67000.00000000")
    h.append("hedge_fill", t, cl_ord_id="h1m", exec_id="TX1:200000", lots=20, vol_exec_e8=200000,
             cost="134.00", fee="0.34840", carry_e8=5000, price="67000.00000000")
    h.append("hedge_fill", t, cl_ord_id="h1m", exec_id="TX1:300000", lots=10, vol_exec_e8=300000,
             cost="201.10", fee="0.52286", carry_e8=0, price="67100.00000000")
    h.close()
    q = Journal(state / cfg.journal.file, "flush", 1 << 30)
    q.append("hedge_fill", t, exec_id="TX1:200000", side="SELL", qty_lots=20, price="67000", fee="0.33969",
             source="quoter")
    q.close()
    core = TradingCore(cfg)
    rec = recover(state / cfg.journal.file, core, cfg)
    assert [f.exec_id for f in rec.unbooked_hedge_fills] == ["TX1:300000"]
    late = rec.unbooked_hedge_fills[0]
    assert (late.side, late.qty_lots, late.price, late.fee) == (Side.SELL, 10, Decimal("67100"), Decimal("0.17446"))
    assert core.inventory.position_lots == -30 and rec.hedge_fills == 2
    # once the quoter has journalled it (as it does at start), the next recovery books it from there, once
    q = Journal(state / cfg.journal.file, "flush", 1 << 30)
    q.append("hedge_fill", t, exec_id="TX1:300000", side="SELL", qty_lots=10, price=str(late.price),
             fee=str(late.fee), source="quoter", recovered=True)
    q.close()
    core2 = TradingCore(cfg)
    rec2 = recover(state / cfg.journal.file, core2, cfg)
    assert rec2.unbooked_hedge_fills == [] and core2.inventory.position_lots == -30 and rec2.hedge_fills == 2


def test_any_record_ever_written_is_survived_and_impossible_fills_are_not_booked(
        tmp_path: Path, caplog) -> None:
    """Issue 16: a 1e11 BTC fill that an older version booked crash-looped the quoter at every start."""
    path = tmp_path / "journal.jsonl"
    j = Journal(path, "flush", 1 << 30)
    t = time.time_ns() - 3600 * 10**9
    j.append("order", t, cl_ord_id="a1", side="1", price_ticks=1000, qty_lots=50)
    j.append("fill", t, cl_ord_id="a1", exec_id="ok1", side="1", px_ticks=1000, qty_lots=20, leaves_lots=30,
             liquidity=1, fee="0")
    j.append("fill", t, cl_ord_id="a1", exec_id="huge", side="1", px_ticks=1000, qty_lots=10**15,
             leaves_lots=0, liquidity=1, fee="0")
    j.append("fill", t, cl_ord_id="a1", exec_id="over", side="1", px_ticks=1000, qty_lots=500, leaves_lots=0)
    j.append("fill", t, cl_ord_id="nobody", exec_id="unknown", side="1", px_ticks=1000, qty_lots=10,
             leaves_lots=0)
    j.append("fill", t, cl_ord_id="a1", exec_id="negpx", side="1", px_ticks=-2, qty_lots=1, leaves_lots=29)
    j.append("fill", t, cl_ord_id="a1", exec_id="junk", side="1", px_ticks="x", qty_lots=None)
    j.append("fill", t, cl_ord_id="a1", exec_id="nofields")
    j.append("fill", t, cl_ord_id="a1", exec_id="badfee", side="1", px_ticks=1000, qty_lots=1,
             leaves_lots=29, fee="not a number")
    j.append("hedge_fill", t, exec_id="h-huge", side="SELL", qty_lots=10**15, price="60000", fee="0",
             source="quoter")
    j.append("hedge_fill", t, exec_id="h-nan", side="SELL", qty_lots=5, price="NaN", fee="0", source="quoter")
    j.append("hedge_fill", t, exec_id="h-ok", side="SELL", qty_lots=5, price="60000", fee="0", source="quoter")
    j.append("order", t, cl_ord_id=None, side=None, price_ticks="?", qty_lots=[])
    j.close()
    with path.open("ab") as f:
        f.write(b"this line is not json\n")
    core = TradingCore(Config())
    rec = recover(path, core, Config())
    assert core.inventory.position_lots == 20 - 5 and rec.truex_fills == 1 and rec.hedge_fills == 1
    assert rec.fill_ids == {"ok1"} and rec.skipped == 10
    assert not core.risk.tripped          # skipped at recovery, not a kill-switch trip at every start
    assert "not booked: over-fill" in caplog.text and "never sent" in caplog.text
    # the order a1 is still possibly live; a fill the venue resends for it is checked against its terms
    assert rec.possibly_live == {"a1": Side.BUY}
    assert core.prior_orders["a1"].cum_lots == 20 and core.prior_orders["a1"].qty_lots == 50
