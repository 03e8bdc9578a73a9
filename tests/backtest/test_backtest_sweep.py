"""Parameter sweeps: grid parsing and validation, two worker processes, ranking, progress."""

from __future__ import annotations

import io
import multiprocessing
import os
from dataclasses import replace
from pathlib import Path

import pytest
from bt_helpers import active_config

from fastmm.backtest.engine import BacktestOptions, run_backtest
from fastmm.backtest.market import MarketData
from fastmm.backtest.report import metrics
from fastmm.backtest.sweep import combinations, configs, parse_sweep, rank, ranked_table, run_sweep
from fastmm.config import ConfigError


def test_parse_and_expand_the_grid() -> None:
    grid = parse_sweep(["spread=20,50,80", "levels=3,5", "inventory.max_skew_ticks=0"])
    assert grid == [("quoting.base_spread_bps", ["20", "50", "80"]), ("quoting.levels", ["3", "5"]),
                    ("inventory.max_skew_ticks", ["0"])]
    combos = combinations(grid)
    assert len(combos) == 6 and combos[0] == {"quoting.base_spread_bps": "20", "quoting.levels": "3",
                                              "inventory.max_skew_ticks": "0"}


@pytest.mark.parametrize(("specs", "match"), [
    (["spread"], "expected KEY=V1,V2"),
    (["spread="], "expected KEY=V1,V2"),
    (["nonsense=1"], "not an alias"),
    (["spread=1", "quoting.base_spread_bps=2"], "given twice"),
])
def test_bad_grids_are_config_errors(specs: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_sweep(specs)


def test_every_combination_is_validated_like_a_config_file(tmp_path: Path) -> None:
    good = configs(None, combinations(parse_sweep(["spread=20,50", "model=glft"])), environ={})
    assert [str(c.quoting.base_spread_bps) for c in good] == ["20", "50"]
    assert all(c.quoting.model == "glft" for c in good)
    with pytest.raises(ConfigError, match=r"sweep quoting.levels=99: quoting.levels: 99 is above the maximum 50"):
        configs(None, combinations(parse_sweep(["levels=3,99"])), environ={})
    with pytest.raises(ConfigError, match=r"quoting\.nope: unknown setting"):
        configs(None, combinations(parse_sweep(["quoting.nope=1"])), environ={})
    f = tmp_path / "c.toml"
    f.write_text("[quoting]\nmodel = \"glft\"\nlevels = 2\n")
    (c,) = configs(f, combinations(parse_sweep(["spread=7"])), environ={})
    assert c.quoting.model == "glft" and c.quoting.levels == 2 and str(c.quoting.base_spread_bps) == "7"


ACTIVE_TOML = """
[quoting]
model = "ladder"
base_size_btc = "0.01"
model_spread_adj = 1.0
model_grid = false
[inventory]
hedge_threshold_btc = "0.03"
max_position_btc = "0.2"
emergency_position_btc = "0.3"
[hedge]
min_hedge_btc = "0.001"
limit_timeout_s = 1.0
risk_horizon_s = 0.0
"""


def test_two_workers_run_every_combination_and_leave_no_process(capture_slice: MarketData,
                                                                  tmp_path: Path) -> None:
    md = capture_slice.head(40.0)
    f = tmp_path / "active.toml"
    f.write_text(ACTIVE_TOML)
    combos = combinations(parse_sweep(["spread=2,4", "levels=1,3"]))
    cfgs = configs(f, combos, environ={})
    want = active_config("ladder")                        # spread 2 bps, the first combination's
    assert cfgs[0] == replace(want, quoting=replace(want.quoting, levels=1))
    out = io.StringIO()
    rows = run_sweep(cfgs, combos, md, BacktestOptions(), workers=2, progress=out)
    assert multiprocessing.active_children() == []
    pids = {r["worker_pid"] for r in rows}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)          # reaped, not left running
    assert [r["params"] for r in rows] == combos
    # each row is what a run in this process gives
    for r, c in zip(rows, cfgs, strict=True):
        assert r["total"] == metrics(run_backtest(c, md))["total"]
    assert "4/4" in out.getvalue()
    ranked = rank(rows, "total")
    assert [r["total"] for r in ranked] == sorted((r["total"] for r in rows), reverse=True)
    by_dd = rank(rows, "drawdown")
    assert [r["max_drawdown"] for r in by_dd] == sorted(r["max_drawdown"] for r in rows)
    text = ranked_table(ranked)
    assert text.splitlines()[0].split()[:3] == ["#", "base_spread_bps", "levels"] and len(text.splitlines()) == 6


def test_rank_puts_runs_without_a_value_last() -> None:
    rows = [{"sharpe_per_sample": None, "total": 1.0}, {"sharpe_per_sample": 0.5, "total": 0.0},
            {"sharpe_per_sample": -0.1, "total": 2.0}]
    assert [r["sharpe_per_sample"] for r in rank(rows, "sharpe")] == [0.5, -0.1, None]
    with pytest.raises(ConfigError, match="rank by"):
        rank(rows, "luck")
