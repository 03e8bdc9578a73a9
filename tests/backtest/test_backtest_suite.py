"""``fastmm backtest --suite``: every strategy on every recording and pair, pooled rows, intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fastmm.backtest import suite
from fastmm.backtest.market import DEPTH, MarketData, after
from fastmm.cli import main
from fastmm.config import Config
from fastmm.data.paths import data_dir

SPOT = data_dir() / "binance-spot-btcusdt-20240808"
USDM = data_dir() / "binance-usdm-btcusdt-20240808"


def two_recordings(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    for src in (SPOT, USDM):             # links, not copies: the recordings stay in ../shared/data
        (root / src.name).symlink_to(src)
    return root


def test_suite_cli_rows_pairs_pooled_and_fee_stress(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    conf = tmp_path / "tight.toml"       # GLFT's closed-form spread: fills within the 30 s on every case
    conf.write_text("[quoting]\nmodel_spread_adj = 1.0\nmodel_grid = false\n")
    rc = main(["backtest", "--suite", str(two_recordings(tmp_path)), "--seconds", "30", "--max-lines", "15000",
               "--no-hftbacktest", "--fee-bps", "1,2", "--workers", "1", "--json", str(out), "--config", str(conf)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["cases"] == ["spot-btcusdt", "usdm-btcusdt", "spot-btcusdt <- usdm-btcusdt",
                            "usdm-btcusdt <- spot-btcusdt"]
    rows = doc["rows"]
    base = ["configured", "naive_ladder", "avellaneda_stoikov", "glft"]
    strategies = base + [f"{b} maker+{x}bps" for b in base for x in (1, 2)]   # every one fee-stressed
    for case in doc["cases"]:
        assert sorted(r["strategy"] for r in rows if r["case"] == case) == sorted(strategies)
    pooled = {r["strategy"]: r for r in rows if r["case"] == "POOLED"}
    assert sorted(pooled) == sorted(strategies)
    for name, p in pooled.items():
        per_case = [r for r in rows if r["strategy"] == name and r["case"] != "POOLED"]
        assert p["total"] == pytest.approx(sum(r["total"] for r in per_case))
        assert p["fills"] == sum(r["fills"] for r in per_case) and p["cases"] == 4
        assert p["truex_fees"] == pytest.approx(sum(r["truex_fees"] for r in per_case))
        assert p["hedges"] == sum(r["hedges"] for r in per_case)
        if "maker+" in name and p["fills"]:
            assert p["truex_fees"] > 0, name             # the stressed fee is charged on every fill
        lo, hi = p["ci"]
        assert lo <= hi
    # the ranking: one entry per strategy (stress rows rank with it), ordered by the robust rule
    ranked = doc["ranking"]
    assert sorted(r["strategy"] for r in ranked) == sorted(base)
    for r in ranked:
        assert sorted(r["stress"]) == [f"{r['strategy']} maker+1bps", f"{r['strategy']} maker+2bps"]
        assert r["robust"] == (r["pooled"] > 0 and all(v > 0 for v in r["stress"].values()))
        assert r["pooled"] == pytest.approx(pooled[r["strategy"]]["total"])
    keys = [(not r["robust"], -r["positive_cases"] / r["cases"], -r["worst_case"], -r["pooled"]) for r in ranked]
    assert keys == sorted(keys)
    glft = [r for r in rows if r["strategy"] == "glft" and r["case"] != "POOLED"]
    assert all(r["fills"] > 0 and r["mk5"] is not None for r in glft)
    assert all(r["basis_bps"] is not None for r in glft if "<-" in r["case"])


def test_walk_forward_calibrates_on_the_first_half_and_trades_the_second(tmp_path: Path) -> None:
    out = tmp_path / "wf.json"
    root = tmp_path / "data"
    root.mkdir()
    (root / SPOT.name).symlink_to(SPOT)
    assert main(["backtest", "--suite", str(root), "--seconds", "60", "--max-lines", "15000", "--no-hftbacktest",
                 "--walk-forward", "--workers", "1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["walk_forward"] is True and doc["cases"] == ["spot-btcusdt"]
    # the pieces: the second half starts from the book as it stood at the split
    md = suite.load_cases(root, max_lines=15_000, seconds=60)[0].venue
    first, second = suite.split(suite.Case("x", md))
    assert first.venue.end_ns <= second.venue.start_ns <= second.venue.t[0]
    assert len(first.venue.t) + len(second.venue.t) == len(md.t)
    cal = suite.fit_ladder_spread(first.venue, Config())
    assert 0 < cal.quoting.base_spread_bps < Config().quoting.base_spread_bps
    # 30 s is too short for the edge fit (no depth reached often enough): its settings stay
    assert suite.fit_all(first.venue, Config()) == cal


def test_walk_forward_fits_the_edge_model_as_fastmm_calibrate_does(capture_slice: MarketData) -> None:
    from fastmm.backtest.market import TOP, TRADE
    from fastmm.core.calibrate import calibrate

    v = capture_slice
    top, tr = v.kind == TOP, v.kind == TRADE
    want = calibrate(v.t[top], v.a[top], v.b[top], v.t[tr], v.a[tr], v.b[tr])
    both = suite.fit_all(v, Config())
    assert both.quoting == suite.fit_ladder_spread(v, Config()).quoting
    assert both.edge.sigma_prior_bps == pytest.approx(want.sigma_bps) != Config().edge.sigma_prior_bps
    # two minutes show no depth that pays with evidence: the adverse term stays as configured
    assert want.adverse_bps is None and both.edge.adverse_bps == Config().edge.adverse_bps


def test_after_rebuilds_the_book_at_the_split(capture_slice: MarketData) -> None:
    md = capture_slice
    t_split = int(md.t[len(md.t) // 2])
    tail = after(md, t_split)
    book: dict[int, int] = {int(p): int(q) for p, q in md.snap_bids}
    dk = (md.kind == DEPTH) & (md.t < t_split) & (md.a == 1)
    for p, q in zip(md.b[dk].tolist(), md.c[dk].tolist(), strict=True):
        if q:
            book[p] = q
        else:
            book.pop(p, None)
    assert tail.snap_bids.tolist() == sorted(([p, q] for p, q in book.items()), reverse=True)
    assert tail.start_ns == t_split and tail.t[0] >= t_split


def test_block_bootstrap_interval() -> None:
    rng = np.random.default_rng(1)
    flat = suite.block_bootstrap_totals(np.full(100, 0.5), 30, 500, rng)
    assert np.allclose(flat, 50.0)                       # no variation: the interval is the total
    noisy = suite.block_bootstrap_totals(rng.normal(0.0, 1.0, 600), 30, 2000, rng)
    lo, hi = np.percentile(noisy, [2.5, 97.5])
    assert lo < 0 < hi and 20 < hi - lo < 200            # about 2 x 1.96 x sqrt(600) = 96


def test_ranking_prefers_a_result_that_holds_to_a_bigger_one() -> None:
    def row(case: str, strategy: str, total: float) -> dict[str, object]:
        return {"case": case, "strategy": strategy, "total": total, "fills": 1}

    rows = [row("a", "steady", 5.0), row("b", "steady", 4.0), row("POOLED", "steady", 9.0),
            row("POOLED", "steady maker+1bps", 2.0),
            row("a", "lucky", 90.0), row("b", "lucky", -1.0), row("POOLED", "lucky", 89.0),
            row("POOLED", "lucky maker+1bps", 60.0),
            row("a", "fragile", 50.0), row("b", "fragile", 40.0), row("POOLED", "fragile", 90.0),
            row("POOLED", "fragile maker+1bps", -3.0)]
    ranked = suite.ranking(rows)
    assert [r["strategy"] for r in ranked] == ["steady", "lucky", "fragile"]
    assert [r["positive_cases"] for r in ranked] == [2, 1, 2] and ranked[2]["robust"] is False
    assert "| 1 | steady | yes | 2/2 | 4.00 | 9.00 | maker+1bps 2.00 | 1 |" in suite.ranking_table(ranked)
