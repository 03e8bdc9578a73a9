"""InventoryManager: position from fills, average entry, skew math, limit modes, hedge signal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fastmm.config import HedgeConfig, InstrumentConfig, InventoryConfig
from fastmm.core.inventory import InventoryManager, SideMode
from fastmm.core.types import Side
from fastmm.instrument import Instrument

INSTR = Instrument.from_config(InstrumentConfig())
BTC = 10_000  # lots per BTC


def inv(**kw: object) -> InventoryManager:
    return InventoryManager(InventoryConfig(**kw), HedgeConfig(), INSTR)  # type: ignore[arg-type]


def test_buys_add_sells_subtract_partial_fills_accumulate() -> None:
    m = inv()
    m.on_truex_fill(Side.BUY, 200_000, 300)
    m.on_truex_fill(Side.BUY, 200_000, 200)  # second partial of the same order
    assert m.position_lots == 500
    m.on_truex_fill(Side.SELL, 200_010, 700)
    assert m.position_lots == -200
    m.on_hedge_fill(Side.BUY, Decimal("100001.5"), 200)
    assert m.position_lots == 0
    assert m.avg_entry_per_lot() is None


def test_average_entry_is_vwap_and_holds_while_reducing() -> None:
    m = inv()
    m.on_truex_fill(Side.BUY, 200_000, 1000)  # 100000 PYUSD
    m.on_truex_fill(Side.BUY, 200_200, 3000)  # 100100 PYUSD
    s = m.summary(100_000.0)
    assert s.avg_entry == Decimal("100075")
    m.on_truex_fill(Side.SELL, 210_000, 2000)
    s = m.summary(100_000.0)
    assert s.net_lots == 2000 and s.avg_entry == Decimal("100075")
    # unrealized at 100000: 0.2 BTC x -75 = -15 PYUSD
    assert s.unrealized == Decimal("-15")
    assert s.use_pct == pytest.approx(2000 * 100 / (5 * BTC))


def test_flip_opens_the_rest_at_the_fill_price() -> None:
    m = inv()
    m.on_truex_fill(Side.BUY, 200_000, 1000)
    m.on_truex_fill(Side.SELL, 201_000, 1500)
    s = m.summary()
    assert s.net_lots == -500 and s.avg_entry == Decimal("100500")
    assert s.unrealized is None


@pytest.mark.parametrize(("lots", "expect"), [
    (0, 0.0),
    (5 * BTC, 3.0),                       # at the limit: the full max skew
    (-5 * BTC, -3.0),
    (int(2.5 * BTC), 3.0 * 0.5 ** 1.5),   # half the limit: 3 x 0.5^1.5 = 1.0607
    (-1 * BTC, -3.0 * 0.2 ** 1.5),
    (7 * BTC, 3.0),                       # past the limit: capped
])
def test_skew_formula(lots: int, expect: float) -> None:
    m = inv()
    assert m.skew_for(lots) == pytest.approx(expect)
    if lots:
        m.on_truex_fill(Side.BUY if lots > 0 else Side.SELL, 200_000, abs(lots))
    assert m.skew_ticks == pytest.approx(expect)


def test_limit_modes_widen_pull_and_emergency() -> None:
    m = inv()
    m.on_truex_fill(Side.BUY, 200_000, int(3.9 * BTC))
    assert (m.bid_mode, m.ask_mode, m.emergency) == (SideMode.NORMAL, SideMode.NORMAL, False)
    m.on_truex_fill(Side.BUY, 200_000, int(0.1 * BTC))  # 4 BTC = 80 %
    assert (m.bid_mode, m.ask_mode) == (SideMode.WIDEN, SideMode.NORMAL)
    m.on_truex_fill(Side.BUY, 200_000, 1 * BTC)  # 5 BTC = 100 %
    assert (m.bid_mode, m.ask_mode) == (SideMode.PULL, SideMode.NORMAL)
    m.on_truex_fill(Side.BUY, 200_000, 1 * BTC)  # 6 BTC = 120 %: not above yet
    assert not m.emergency
    m.on_truex_fill(Side.BUY, 200_000, 1)
    assert m.emergency and (m.bid_mode, m.ask_mode) == (SideMode.PULL, SideMode.PULL)
    # short side mirrors
    s = inv()
    s.on_truex_fill(Side.SELL, 200_000, 4 * BTC)
    assert (s.bid_mode, s.ask_mode) == (SideMode.NORMAL, SideMode.WIDEN)
    s.on_truex_fill(Side.SELL, 200_000, 1 * BTC)
    assert (s.bid_mode, s.ask_mode) == (SideMode.NORMAL, SideMode.PULL)


def test_hedge_signal_passes_threshold_and_is_bounded() -> None:
    m = inv()
    m.on_truex_fill(Side.BUY, 200_000, 2 * BTC)
    assert m.hedge_signal() is None  # at the threshold, not past it
    m.on_truex_fill(Side.BUY, 200_000, 1)
    sig = m.hedge_signal()
    assert sig is not None and sig.side == Side.SELL and sig.qty_lots == 1 * BTC  # max_hedge 1 BTC
    m.on_truex_fill(Side.SELL, 200_000, 4 * BTC)  # now short 2 BTC + 1 lot... -1.9999 BTC
    assert m.position_lots == -2 * BTC + 1
    assert m.hedge_signal() is None
    m.on_truex_fill(Side.SELL, 200_000, 2)
    sig = m.hedge_signal()
    assert sig is not None and sig.side == Side.BUY and sig.qty_lots == 1 * BTC


def test_hedge_target_and_min_hedge() -> None:
    m = InventoryManager(InventoryConfig(hedge_threshold_btc=Decimal(0)), HedgeConfig(), INSTR,
                         hedge_target_btc=Decimal("0.5"))
    m.on_truex_fill(Side.BUY, 200_000, 5005)  # 0.5005 BTC: 5 lots over target < min hedge (10 lots)
    assert m.hedge_signal() is None
    m.on_truex_fill(Side.BUY, 200_000, 5)
    sig = m.hedge_signal()
    assert sig is not None and sig.qty_lots == 10


def test_bad_fill_quantity_is_refused() -> None:
    m = inv()
    with pytest.raises(ValueError, match="positive"):
        m.on_truex_fill(Side.BUY, 200_000, 0)
    assert m.position_lots == 0
