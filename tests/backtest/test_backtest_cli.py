"""``fastmm backtest`` end to end on a slice of the capture, and the hftbacktest reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fastmm.backtest import hftbt
from fastmm.backtest.market import DEPTH, MarketData
from fastmm.cli import main
from fastmm.config import Config
from fastmm.data.book import L2Book
from fastmm.data.paths import binance_capture_dir

ACTIVE = """
[quoting]
base_size_btc = "0.01"
base_spread_bps = "4"
[inventory]
hedge_threshold_btc = "0.03"
max_position_btc = "0.2"
emergency_position_btc = "0.3"
"""


def test_backtest_with_baselines_json_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(ACTIVE)
    out = tmp_path / "r.json"
    rc = main(["backtest", "--data", str(binance_capture_dir()), "--config", str(cfg), "--max-lines", "8000",
               "--json", str(out), "--plots", str(tmp_path / "plots"), "--order-latency", "2000000"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    doc = json.loads(out.read_text())
    names = [r["strategy"] for r in doc["runs"]]
    assert names[:4] == ["configured", "naive_ladder", "avellaneda_stoikov", "glft"]
    reason = hftbt.unavailable_reason()
    if reason is None:                 # the reference row is there exactly when hftbacktest imports
        assert names[4:] == ["hftbacktest_glft"] and doc["hftbacktest"]["included"]
        assert doc["runs"][4]["engine"] == "hftbacktest" and doc["runs"][4]["compile_s"] > 0
    else:
        assert names[4:] == [] and doc["hftbacktest"] == {"included": False, "reason": reason}
    assert doc["options"]["order_latency_ns"] == 2_000_000 and doc["data"]["lines"] == 8000
    assert set(doc["definitions"]) >= {"sharpe_per_sample", "fill_ratio", "markout_bps"}
    for r in doc["runs"][:4]:
        assert r["pnl_conserved"] and r["venue_ledger_agrees"]
        assert set(r["markouts"]) == {"1s", "5s", "30s"}
    assert sum(r["fills"] for r in doc["runs"][:4]) > 0
    s = doc["series"]["configured"]
    assert len(s["t_s"]) == len(s["pnl"]) == len(s["position_btc"]) > 30
    for name in ("pnl.png", "inventory.png", "quotes.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the table on stdout has one line per run
    assert sum(line.startswith(("configured", "naive_ladder", "glft")) for line in cap.out.splitlines()) == 3


def test_backtest_sweep_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(ACTIVE)
    out = tmp_path / "s.json"
    rc = main(["backtest", "--data", str(binance_capture_dir()), "-c", str(cfg), "--max-lines", "5000",
               "--sweep", "spread=2,8", "levels=1,2", "--workers", "2", "--json", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "sweep: 4 runs on 2 worker(s)" in cap.err and "4/4" in cap.err
    doc = json.loads(out.read_text())
    rows = doc["sweep"]["rows"]
    assert len(rows) == 4 and [r["total"] for r in rows] == sorted((r["total"] for r in rows), reverse=True)
    assert "ranked by total" in cap.out


@pytest.mark.parametrize(("argv", "needle"), [
    (["--data", "/nonexistent/capture.gz"], "data error"),
    (["--sweep", "levels=0"], "config error"),
    (["--timer-ms", "0"], "config error"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--max-lines", "10", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_hftbacktest_rebuilds_the_same_book_from_our_events(capture_slice: MarketData) -> None:
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    md = capture_slice.head(60.0)
    data, snap = hftbt.to_events(md, feed_latency_ns=1_000_000)
    assert np.all(data["local_ts"] - data["exch_ts"] == 1_000_000)
    asset = (BacktestAsset().data(data).initial_snapshot(snap).linear_asset(1.0).constant_order_latency(0, 0)
             .partial_fill_exchange().power_prob_queue_model(1.0).trading_value_fee_model(0.0, 0.0)
             .tick_size(0.01).lot_size(0.00001))
    hbt = HashMapMarketDepthBacktest([asset])
    try:
        assert hbt._goto_end() in (0, 1)
        depth = hbt.depth(0)
        got = (round(depth.best_bid * 100), round(depth.best_ask * 100))
        got_qty = (round(depth.best_bid_qty * 1e5), round(depth.best_ask_qty * 1e5))
    finally:
        hbt.close()
    book = L2Book()
    book.load([tuple(r) for r in md.snap_bids.tolist()], [tuple(r) for r in md.snap_asks.tolist()])
    for i in np.flatnonzero(md.kind == DEPTH):
        book.set_level("bid" if md.a[i] == 1 else "ask", int(md.b[i]), int(md.c[i]))
    bb, ba = book.best_bid(), book.best_ask()
    assert bb is not None and ba is not None
    assert got == (bb[0] // 1_000_000, ba[0] // 1_000_000)
    assert got_qty == (bb[1] // 1_000, ba[1] // 1_000)


def test_hftbacktest_glft_reference_run(capture_slice: MarketData) -> None:
    md = capture_slice
    r = hftbt.run_hftbacktest(Config(), md, feed_latency_ns=1_000_000, order_latency_ns=5_000_000)
    steps = len(r.series["t"])
    assert abs(steps - (md.end_ns - md.start_ns) // hftbt.STEP_NS) <= 2
    assert np.all(np.diff(r.series["t"]) == hftbt.STEP_NS)
    eq = r.series["equity"]
    assert np.isfinite(eq).all()
    # quotes start once the 60 s calibration window is full; by then it has traded, and the equity it
    # reports is its cash plus its position at the mid, less fees
    assert r.final["trades"] > 0 and r.params["window"] == 600
    assert eq[-1] == pytest.approx(r.final["balance"] + r.final["position"] * r.series["mid"][-1] - r.final["fee"])


def test_fill_model_agrees_with_hftbacktest_on_the_same_orders(capture_slice: MarketData) -> None:
    # a bid and an ask 1 PYUSD outside the touch, moved every 100 ms, through both exchanges' queue models
    r = hftbt.crosscheck(capture_slice, offset=1.0, qty_btc=0.01, latency_ns=5_000_000)
    theirs, ours = r["hftbacktest"], r["fastmm"]
    assert theirs["fills"] > 50, "too few fills for a comparison"
    assert ours["volume_btc"] == pytest.approx(theirs["volume_btc"], rel=0.05)
    assert ours["fills"] == pytest.approx(theirs["fills"], rel=0.10)
    assert ours["position_btc"] == pytest.approx(theirs["position_btc"], abs=0.03)
    assert ours["value"] == pytest.approx(theirs["value"], rel=0.05)
