"""Helpers shared by the backtest tests (a plain module: several test folders have a conftest)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from fastmm.backtest.market import MarketData
from fastmm.backtest.readers import load_market_data
from fastmm.config import Config
from fastmm.data.paths import binance_capture_dir

SLICE_LINES = 15_000     # about 135 s of the capture


def load_slice(lines: int = SLICE_LINES) -> MarketData:
    return load_market_data(binance_capture_dir(), max_lines=lines)


def active_config(model: str = "glft") -> Config:
    """A config that trades and hedges within a couple of minutes of data (GLFT as the closed form
    gives it: without the tutorial's wider spread and grid, which trade far less)."""
    cfg = Config()
    return replace(
        cfg,
        quoting=replace(cfg.quoting, model=model, base_size_btc=Decimal("0.01"), base_spread_bps=Decimal(2),
                        model_spread_adj=1.0, model_grid=False),
        inventory=replace(cfg.inventory, hedge_threshold_btc=Decimal("0.03"), max_position_btc=Decimal("0.2"),
                          emergency_position_btc=Decimal("0.3")),
        # hedge by size (no HedgeRisk gate): the slice's quiet minute would not be worth a hedge
        hedge=replace(cfg.hedge, min_hedge_btc=Decimal("0.001"), limit_timeout_s=1.0, risk_horizon_s=0.0),
    )
