"""Every user of the trading core builds it from one config the same way (TradingCore.from_config): the
quoter, the backtest, the rehearsal, `ops cancel-orders` and the latency bench run the same settings."""

from __future__ import annotations

from pathlib import Path

from fastmm.backtest.engine import backtest_core
from fastmm.cli.bench import load_bench
from fastmm.config import Config, load_config
from fastmm.core.trading_core import TradingCore
from fastmm.journal import Journal
from fastmm.ops.cancel import cancel_core
from fastmm.procs.quoter import Quoter
from fastmm.procs.rehearsal import Rehearsal
from fastmm.venues.truex.codec import TruexCodec

# none of these is a default, so a user that built its core from anything but the config shows
SETTINGS = {
    "FASTMM_VENUE_RULES__RATE_GUARD_MS": "123",
    "FASTMM_VENUE_RULES__MAX_ORDERS_PER_SEC": "6",
    "FASTMM_QUOTING__SIZE_TOLERANCE_PCT": "33",
    "FASTMM_QUOTING__WIDEN_MULT": "3.5",
    "FASTMM_QUOTING__PENDING_TIMEOUT_MS": "777",
    "FASTMM_QUOTING__LEVELS": "3",
    "FASTMM_PRICING__BASIS_BPS": "1.5",
    "FASTMM_PRICING__MAX_DISPERSION_BPS": "12.0",
    "FASTMM_COINBASE__STALE_AFTER_MS": "1500",
    "FASTMM_RISK__STALE_DATA_MS": "2500",
}
# what a user changes on purpose, and only that: the rehearsal lifts TrueX's message limits (its orders
# never leave), the backtest's recorded book is its only reference source
LIFTED = {"venue_rules.max_orders_per_sec", "venue_rules.max_orders_per_min", "venue_rules.duplicate_window_ms",
          "risk.max_order_rate_per_min"}
ONE_SOURCE = {"aggregator.sources", "aggregator.stale_after_ns"}


def _cores(cfg: Config, tmp_path: Path) -> dict[str, TradingCore]:
    latency = load_bench("latency")
    with Journal(tmp_path / "journal.jsonl", "none", 1 << 20) as journal:
        quoter = Quoter(cfg, None, journal, {}, None, None, None)
        traced = Quoter(cfg, None, journal, {}, None, None, None, trace=latency.LatencyTrace())
    return {
        "quoter": quoter.core,
        "latency bench": traced.core,
        "backtest": backtest_core(cfg),
        "rehearsal": Rehearsal(cfg, TruexCodec(quoter.core.instrument, "C1"), {}, None).core,
        "ops cancel-orders": cancel_core(cfg),
    }


def test_every_user_runs_the_settings_of_one_config(tmp_path: Path) -> None:
    cfg = load_config(None, SETTINGS)
    cores = _cores(cfg, tmp_path)
    live = cores["quoter"].settings()
    # the knobs reached the parts that use them
    assert live["engine.size_tolerance_pct"] == "33" and live["engine.widen_mult"] == "3.5"
    assert live["engine.pending_timeout_ns"] == str(777_000_000)
    assert live["engine.max_input_age_ns"] == str(2_500_000_000)      # risk.stale_data_ms
    assert live["engine.rate_windows_ns"] == f"{1_123_000_000},{60_123_000_000}"
    assert live["aggregator.sources"] == "coinbase,kraken"
    assert live["aggregator.stale_after_ns"] == f"{1_500_000_000},{500_000_000}"     # kraken: its default
    for name, core in cores.items():
        got = core.settings()
        assert got.keys() == live.keys(), name
        differ = {k for k in live if got[k] != live[k]}
        expected = LIFTED if name == "rehearsal" else ONE_SOURCE if name == "backtest" else set()
        assert differ == expected, (name, {k: (live[k], got[k]) for k in differ ^ expected})


def test_the_settings_follow_the_config() -> None:
    default = TradingCore.from_config(Config()).settings()
    changed = TradingCore.from_config(load_config(None, SETTINGS)).settings()
    assert default["engine.rate_windows_ns"] == f"{1_050_000_000},{60_050_000_000}"   # venue_rules' 50 ms
    assert {k for k in default if default[k] != changed[k]} == {
        "venue_rules.rate_guard_ms", "venue_rules.max_orders_per_sec", "quoting.size_tolerance_pct",
        "quoting.widen_mult", "quoting.pending_timeout_ms", "quoting.levels",
        "pricing.basis_bps", "pricing.max_dispersion_bps", "risk.stale_data_ms", "engine.size_tolerance_pct",
        "engine.widen_mult", "engine.pending_timeout_ns", "engine.max_input_age_ns", "engine.rate_windows_ns",
        "aggregator.stale_after_ns", "aggregator.basis", "aggregator.max_dispersion"}
