"""The edge model on recorded data: calibration (CLI and fits), the default config trading, the PnL split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bt_helpers import active_config

from fastmm.backtest import report
from fastmm.backtest.engine import BacktestOptions, run_backtest
from fastmm.backtest.market import TOP, TRADE, MarketData
from fastmm.backtest.readers import load_market_data
from fastmm.cli import main
from fastmm.config import Config, load_config
from fastmm.core.calibrate import calibrate, fit_exponential, volatility_bps
from fastmm.core.money import to_units
from fastmm.data.paths import binance_capture_dir


@pytest.fixture(scope="module")
def full_capture() -> MarketData:
    return load_market_data(binance_capture_dir())


def test_fit_exponential_recovers_a_and_k() -> None:
    d = np.arange(0.0, 10.0, 0.5)
    a, k = fit_exponential(d, 0.3 * np.exp(-0.7 * d))
    assert a == pytest.approx(0.3) and k == pytest.approx(0.7)


def test_volatility_of_a_known_walk() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(0, 2000, dtype=np.int64) * 1_000_000_000
    mid = 60_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, len(t))))     # 2 bps per 1 s step
    assert volatility_bps(t, mid) == pytest.approx(2.0, rel=0.1)


def test_calibration_on_the_recording(capture_slice: MarketData) -> None:
    md = capture_slice
    top, tr = md.kind == TOP, md.kind == TRADE
    c = calibrate(md.t[top], md.a[top], md.b[top], md.t[tr], md.a[tr], md.b[tr], window_s=1.0)
    assert 0.1 < c.sigma_bps < 10 and c.intensity_a > 0 and c.intensity_k > 0
    assert all(b <= a + 1e-12 for a, b in zip(c.rate, c.rate[1:], strict=False))   # reach falls with depth
    assert set(c.markout_bps) == {"1s", "5s", "30s"}
    # at the touch, the takers are informed on this data: the 5 s markout there is negative
    assert c.markout_bps["5s"][0] is not None and c.markout_bps["5s"][0] < 0
    # two minutes show no depth whose fills pay with evidence: no fit, said in a note
    assert c.best_depth_bps is None and c.adverse_bps is None and "no fit" in c.notes[0]


def test_the_depth_rule_wants_evidence(full_capture: MarketData) -> None:
    """On the whole BTC spot recording the mean 5 s markout first pays at 5 bps (the old rule's fit,
    adverse_bps 2.28), but by less than one standard error: the shipped rule (z = 1) does not fit."""
    from fastmm.backtest.suite import fit_edge

    md = full_capture
    top, tr = md.kind == TOP, md.kind == TRADE
    args = (md.t[top], md.a[top], md.b[top], md.t[tr], md.a[tr], md.b[tr])
    loose = calibrate(*args, z=0.0)
    assert loose.best_depth_bps == 5.0 and loose.adverse_bps == pytest.approx(2.28, abs=0.01)
    strict = calibrate(*args)
    assert strict.best_depth_bps is None and strict.adverse_bps is None
    assert fit_edge(md, Config(), z=0.0).edge.adverse_bps == pytest.approx(loose.adverse_bps)
    assert fit_edge(md, Config()).edge.adverse_bps == Config().edge.adverse_bps


def test_calibrate_cli_writes_a_fragment_the_config_reads(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out, js = tmp_path / "edge.toml", tmp_path / "cal.json"
    assert main(["calibrate", "--data", str(binance_capture_dir()), "--fit-fraction", "0.5", "-o", str(out),
                 "--json", str(js)]) == 0
    text = out.read_text()
    assert "[edge]" in text and "first 0.5" in text and js.stat().st_size > 0
    # half the recording shows no depth that pays with evidence: the fragment leaves adverse_bps alone
    assert "no fit" in text and "adverse_bps" not in text.split("[edge]")[1]
    cfg = load_config(out, environ={})
    assert cfg.edge.sigma_prior_bps > 0 and cfg.edge.adverse_bps == Config().edge.adverse_bps
    assert main(["calibrate", "--data", str(tmp_path / "nothing")]) == 2


def test_default_config_trades_on_the_recording_without_trips(full_capture: MarketData) -> None:
    cfg = Config()
    assert cfg.quoting.model == "edge"
    r = run_backtest(cfg, full_capture, BacktestOptions())
    m = report.metrics(r)
    assert m["fills"] > 0 and m["taker_fills"] == 0 and m["risk_events"] == []


@pytest.mark.parametrize("model", ["edge", "glft"])
def test_pnl_split_adds_up_to_the_total_to_the_unit(full_capture: MarketData, model: str) -> None:
    r = run_backtest(active_config(model), full_capture, BacktestOptions())
    assert len(r.hedges) > 0, "the slice must hedge for the hedge cost to be tested"
    s = report.pnl_split(r)
    fees = r.summary.fees_by_venue
    assert s["truex_fees"] == float(fees["truex"])
    assert s["hedge_cost"] >= float(fees["kraken"]) * 0.5          # fees plus (mostly) paying the spread
    units = [to_units(str(v)) for v in (s["spread_capture"], s["inventory"], s["truex_fees"], s["hedge_cost"])]
    assert units[0] + units[1] - units[2] - units[3] == to_units(r.summary.total)
