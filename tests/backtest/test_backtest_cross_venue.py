"""Cross-venue backtests: quote on one recording, the fair price from another, an online basis."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from bt_helpers import active_config

from fastmm.backtest.engine import run_backtest
from fastmm.backtest.instruments import asset_of, for_recording
from fastmm.backtest.market import TOP, MarketData
from fastmm.backtest.readers import load_market_data
from fastmm.cli import main
from fastmm.config import Config
from fastmm.core.basis import BasisEstimator
from fastmm.data.paths import data_dir

S = 1_000_000_000
SPOT = data_dir() / "binance-spot-btcusdt-20240808"
USDM = data_dir() / "binance-usdm-btcusdt-20240808"
ETH = data_dir() / "binance-spot-ethusdt-20240808"


def test_basis_follows_a_ratio_with_its_half_life() -> None:
    b = BasisEstimator(halflife_s=10.0)
    b.update(0, 100.5, 100.0)
    assert b.bps == pytest.approx(50.0)
    b.update(10 * S, 100.0, 100.0)          # one half-life later the new level has half the weight
    assert b.bps == pytest.approx(25.0)
    for i in range(2, 200):
        b.update(i * 10 * S, 101.0, 100.0)
    assert b.bps == pytest.approx(100.0, abs=1e-6) and b.apply(50_000.0) == pytest.approx(50_500.0)
    b.update(3000 * S, 0.0, 100.0)          # no book: ignored
    assert b.samples == 200
    with pytest.raises(ValueError):
        BasisEstimator(0.0)


def shifted(md: MarketData, bps: int) -> MarketData:
    """The same recording with every top's prices ``bps`` higher: a reference at a constant premium."""
    a, b = md.a.copy(), md.b.copy()
    top = md.kind == TOP
    a[top] = a[top] * (10_000 + bps) // 10_000
    b[top] = b[top] * (10_000 + bps) // 10_000
    return MarketData(md.source + "+shift", md.fmt, md.symbol, md.start_ns, md.snap_bids, md.snap_asks, md.kind,
                      md.t, a, b, md.c, md.d, md.lines)


def test_a_reference_at_a_premium_is_moved_onto_the_venue_by_the_basis(capture_slice: MarketData) -> None:
    md = capture_slice.head(60)
    ref = shifted(md, 20)                    # the reference trades 20 bps above the venue
    res = run_backtest(active_config(), md, references=(ref,), name="cross")
    assert res.counts["references"] == 1
    assert res.counts["basis_bps_x100"] / 100 == pytest.approx(-20.0, abs=0.3)
    # the fair price the engine used is the venue's, not the reference's
    tops = md.kind == TOP
    venue_mid = float(np.median((md.a[tops] + md.b[tops]) / 2e8))
    used = res.series["mid"][len(res.series["mid"]) // 2:]
    assert abs(float(np.median(used)) / venue_mid - 1) < 5e-4
    assert res.venue.fills > 0 and not [e for e in res.risk_events if "Trip" in e]
    # and without the basis (the reference as is) the quotes would sit 20 bps off
    single = run_backtest(active_config(), md, name="single")
    assert abs(float(np.median(single.series["mid"])) / venue_mid - 1) < 5e-4


def test_cross_venue_cli_futures_priced_from_spot(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    rc = main(["backtest", "--venue", str(USDM), "--reference", str(SPOT), "--max-lines", "20000",
               "--no-hftbacktest", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["data"]["format"] == "binance-raw/futures" and doc["data"]["references"][0]["format"] == \
        "binance-raw/spot"
    names = [r["strategy"] for r in doc["runs"]]
    assert names[:2] == ["configured", "naive_ladder"] and "hftbacktest_glft" not in names
    basis = {r["strategy"]: r["events"]["basis_bps_x100"] / 100 for r in doc["runs"]}
    assert all(abs(b) < 30 and b != 0 for b in basis.values())      # futures within a few bps of spot
    assert doc["options"]["feed_latency_ns"] == 1_000_000 and doc["options"]["order_latency_ns"] == 5_000_000


def test_leg_latencies_come_from_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[backtest]\nreference_latency_us = 250\nvenue_latency_us = 12000\n")
    out = tmp_path / "x.json"
    assert main(["backtest", "-c", str(cfg), "--data", str(SPOT), "--max-lines", "3000", "--no-baselines",
                 "--json", str(out)]) == 0
    opts = json.loads(out.read_text())["options"]
    assert opts["feed_latency_ns"] == 250_000 and opts["order_latency_ns"] == 12_000_000


def test_a_reference_of_another_instrument_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["backtest", "--venue", str(SPOT), "--reference", str(ETH), "--max-lines", "3000"])
    assert rc == 2 and "not the venue's instrument" in capsys.readouterr().err


def test_eth_is_quoted_with_its_own_tick_lot_and_sizes() -> None:
    assert asset_of("ethusdt") == "eth" and asset_of("BTC-PYUSD") == "btc" and asset_of("solusdt") == ""
    cfg = for_recording(Config(), "ethusdt")
    assert cfg.instrument.tick_size == Decimal("0.01") and cfg.instrument.lot_size == Decimal("0.001")
    assert cfg.quoting.base_size_btc == Decimal("2.000")        # 0.1 BTC ~ 2 ETH of notional
    assert for_recording(Config(), "btcusdt") == Config()
    assert for_recording(Config(), "btcusdt", tick=Decimal("0.1")).instrument.tick_size == Decimal("0.1")
    md = load_market_data(ETH, max_lines=20_000)
    res = run_backtest(for_recording(active_config("glft"), md.symbol), md)
    assert res.cfg.instrument.tick_size == Decimal("0.01")
    fills = res.fills
    assert fills, "the ETH run trades"
    px = fills[0][2] * 0.01
    assert math.isclose(px, float(np.median(md.a[md.kind == TOP])) / 1e8, rel_tol=0.01)


def _renamed_recording(tmp_path: Path, src: Path, old: str, new: str, lines: int) -> Path:
    """The first ``lines`` of a real recording with its symbol renamed: an asset the table does not know."""
    import gzip

    out = tmp_path / f"binance-spot-{new}-20240808"
    out.mkdir()
    got = []
    for f in sorted(src.glob("*.gz")):
        with gzip.open(f, "rb") as fh:
            for line in fh:
                got.append(line.replace(old.encode(), new.encode()).replace(old.upper().encode(),
                                                                            new.upper().encode()))
                if len(got) >= lines:
                    break
        if len(got) >= lines:
            break
    with gzip.open(out / f"{new}_20240808.gz", "wb") as fh:
        fh.writelines(got)
    return out


def test_an_unknown_asset_is_quoted_with_the_tick_lot_and_notional_of_its_own_recording(
        tmp_path: Path) -> None:
    from fastmm.backtest.instruments import BTC_NOTIONAL, base_of, scale_from_data

    path = _renamed_recording(tmp_path, ETH, "ethusdt", "solusdt", 20_000)
    md = load_market_data(path)
    assert md.symbol == "solusdt" and asset_of(md.symbol) == "" and base_of(md.symbol) == "sol"
    scale = scale_from_data(md)
    top = md.kind == TOP
    prices = np.concatenate([md.a[top], md.b[top], md.b[md.kind != TOP]])
    assert scale.tick == Decimal("0.01")                    # ETHUSDT's tick, read from its prices
    assert all(p % int(scale.tick * 100_000_000) == 0 for p in prices.tolist())
    assert all(s % int(scale.lot * 100_000_000) == 0 for s in md.c[md.c > 0].tolist())
    mid = float(np.median((md.a[top] + md.b[top]) / 2e8))
    assert math.isclose(float(scale.per_btc), float(BTC_NOTIONAL) / mid, rel_tol=1e-3)
    cfg = for_recording(Config(), md.symbol, data=md)
    assert cfg.instrument.symbol == "SOL-PYUSD" and cfg.instrument.tick_size == scale.tick
    notional = float(cfg.quoting.base_size_btc) * mid       # about 0.1 BTC of notional, as configured
    assert math.isclose(notional, 0.1 * float(BTC_NOTIONAL), rel_tol=0.01)
    assert for_recording(Config(), md.symbol) == Config()   # no data: quoted as configured, as before
    out = tmp_path / "x.json"
    assert main(["backtest", "--data", str(path), "--no-baselines", "--json", str(out)]) == 0
    run = json.loads(out.read_text())["runs"][0]
    assert run["fills"] > 0, "the unknown asset trades at its own tick"
    import io

    from fastmm.backtest.suite import load_cases
    said = io.StringIO()
    assert [c.name for c in load_cases(tmp_path, progress=said)] == ["spot-solusdt"]
    assert "not in the asset table: quoted with the tick 0.01" in said.getvalue()
