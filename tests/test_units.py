"""fastmm.units: the one 1e-8 scale, its exact parser and formatters, and the increments of an instrument."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from fastmm.config import ConfigError, load_config
from fastmm.core.hedge import HedgePlanner
from fastmm.core.money import from_units, to_units
from fastmm.instrument import Instrument, InstrumentError
from fastmm.units import (
    BPS,
    E8,
    DataError,
    e8_to_decimal,
    fixed_e8,
    format_e8,
    number_e8,
    parse_e8,
    round_e8,
    step_e8,
    to_e8,
)


def test_scale_and_bps() -> None:
    assert E8 == 10**8 and BPS == 10**4


@pytest.mark.parametrize(("text", "units"), [
    ("61837.63000000", 6183763000000), ("0.1", 10_000_000), ("7", 7 * E8), ("-1.5", -150_000_000),
    (".5", 50_000_000), ("0.00000001", 1), ("1.000000000", E8), ("000.10", 10_000_000),
])
def test_parse_e8_is_exact(text: str, units: int) -> None:
    assert parse_e8(text) == units == to_e8(text)


@pytest.mark.parametrize("bad", ["", ".", "1.2.3", "1e5", " 1", "0.000000001", "abc", "１.5", "+1"])
def test_parse_e8_refuses_what_is_not_an_exact_amount(bad: str) -> None:
    with pytest.raises(DataError):
        parse_e8(bad)


def test_parse_e8_refuses_a_non_string() -> None:
    with pytest.raises(DataError):
        parse_e8(1.5)  # type: ignore[arg-type]


def test_to_e8_takes_decimals_exactly() -> None:
    assert to_e8(Decimal("60123.45")) == 6012345000000 and to_e8(3) == 3 * E8
    for bad in (Decimal("0.000000001"), Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises(ValueError):
            to_e8(bad)


def test_round_e8_rounds_half_even_like_money() -> None:
    assert round_e8(Decimal("0.000000005")) == 0 and round_e8(Decimal("0.000000015")) == 2
    assert round_e8("1.234567895") == to_units("1.234567895") == 123456790
    assert from_units(150_000_000) == e8_to_decimal(150_000_000) == Decimal("1.5")
    assert str(from_units(150_000_000)) == "1.50000000"


def test_number_e8_rounds_a_json_number() -> None:
    assert number_e8(60123.4) == 6012340000000 and number_e8(0.00012345) == 12345 and number_e8(2) == 2 * E8
    for bad in (True, "1.5", None):
        with pytest.raises(DataError):
            number_e8(bad)


def test_formatting() -> None:
    assert format_e8(6183763000000) == "61837.63" and format_e8(E8) == "1" and format_e8(0) == "0"
    assert format_e8(-150_000_000, 2) == "-1.50"
    assert fixed_e8(6012340000000, 1) == "60123.4" and fixed_e8(12345, 8) == "0.00012345"
    assert fixed_e8(E8, 10) == "1.0000000000"
    with pytest.raises(DataError):
        fixed_e8(6012345000000, 1)


def test_step_e8_wants_whole_units() -> None:
    assert step_e8(Decimal("0.50")) == 50_000_000 and step_e8(Decimal("0.0001")) == 10_000
    for bad in (Decimal("0.000000015"), Decimal(0), Decimal(-1)):
        with pytest.raises(ValueError):
            step_e8(bad)


def test_instrument_increments_in_units() -> None:
    eth = Instrument("ETH-PYUSD", "CSPOT", Decimal("0.01"), Decimal("0.001"))
    assert (eth.tick_e8, eth.lot_e8) == (1_000_000, 100_000)
    assert eth == Instrument("ETH-PYUSD", "CSPOT", Decimal("0.010"), Decimal("0.0010"))
    with pytest.raises(InstrumentError):
        Instrument("X", "CSPOT", Decimal("0.000000001"), Decimal("0.001"))


def test_the_hedge_planner_sizes_in_the_instruments_lot() -> None:
    eth_lot = Instrument("ETH-PYUSD", "CSPOT", Decimal("0.01"), Decimal("0.001")).lot_e8
    p = HedgePlanner(threshold_lots=10, min_e8=100_000, max_e8=100 * E8, limit_timeout_ns=1, lot_e8=eth_lot)
    assert p.wanted_e8(25) == ("sell", 25 * eth_lot) and p.wanted_e8(-11) == ("buy", 11 * eth_lot)
    assert p.wanted_e8(10) is None


def test_the_config_wants_increments_of_whole_units(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[instrument]\ntick_size = 0.000000015\n")
    with pytest.raises(ConfigError, match=r"instrument.tick_size: .*not a positive multiple of 1e-8"):
        load_config(p, environ={})
    p.write_text("[instrument]\ntick_size = 0.01\nlot_size = 0.001\n[quoting]\nbase_size_btc = 0.013\n")
    ins = Instrument.from_config(load_config(p, environ={}).instrument)
    assert (ins.tick_e8, ins.lot_e8) == (1_000_000, 100_000)
