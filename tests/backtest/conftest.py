"""A slice of the recorded Binance capture, read once per session."""

from __future__ import annotations

import pytest
from bt_helpers import load_slice

from fastmm.backtest.market import MarketData


@pytest.fixture(scope="session")
def capture_slice() -> MarketData:
    return load_slice()
