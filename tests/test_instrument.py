"""Integer ticks and lots, and their wire text."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastmm.config import InstrumentConfig
from fastmm.instrument import Instrument, InstrumentError

BTC_PYUSD = Instrument.from_config(InstrumentConfig())


def test_price_and_qty_conversions() -> None:
    assert BTC_PYUSD.price_to_ticks("60000.50") == 120001
    assert BTC_PYUSD.price_text(120001) == "60000.5"
    assert BTC_PYUSD.price_text(120000) == "60000"
    assert BTC_PYUSD.qty_to_lots("0.1") == 1000
    assert BTC_PYUSD.qty_text(1000) == "0.1"
    assert BTC_PYUSD.qty_text(1) == "0.0001"
    assert BTC_PYUSD.price_floor_ticks(60000.74) == 120001
    assert BTC_PYUSD.price_ceil_ticks(60000.26) == 120001
    assert BTC_PYUSD.notional(120000, 1) == Decimal("6")


def test_off_grid_values_are_errors() -> None:
    with pytest.raises(InstrumentError, match="not a multiple of tick"):
        BTC_PYUSD.price_to_ticks("60000.25")
    with pytest.raises(InstrumentError, match="not a multiple of lot"):
        BTC_PYUSD.qty_to_lots("0.00005")


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=1, max_value=10**8))
def test_text_round_trips(ticks: int, lots: int) -> None:
    assert BTC_PYUSD.price_to_ticks(BTC_PYUSD.price_text(ticks)) == ticks
    assert BTC_PYUSD.qty_to_lots(BTC_PYUSD.qty_text(lots)) == lots
    assert "E" not in BTC_PYUSD.price_text(ticks) + BTC_PYUSD.qty_text(lots)
