"""The trading core on an instrument other than BTC-PYUSD (an ETH-like 0.01 tick and 0.001 lot): nothing in
it may know TrueX's 0.50 tick or 0.0001 BTC lot. Quotes land on the configured tick grid around the fair
mid, sizes on the configured lot grid, and inventory and PnL count that lot: fills, a hedge fill and the
mark are checked against the same money worked out by hand in Decimals."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from fastmm.config import Config, FeesConfig, InstrumentConfig, QuotingConfig
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import HedgeFilled, Liquidity, NewOrder, OrderAccepted, OrderFilled, ReplaceOrder, Side
from fastmm.instrument import Instrument
from fastmm.units import BPS, E8, to_e8

S = 1_000_000_000
MS = 1_000_000
T0 = 1_000 * S
TICK = Decimal("0.01")
LOT = Decimal("0.001")
ETH = InstrumentConfig(symbol="ETH-PYUSD", tick_size=TICK, lot_size=LOT)
MID = Decimal("3000.00")
SIZE = Decimal("0.0135")       # not a whole number of lots: the quote is the lots below it
MAKER_BPS = Decimal("-1")      # a rebate, so the fee on a TrueX fill is not zero
KRAKEN_TAKER_BPS = Decimal(26)


def _units(pyusd: Decimal) -> int:
    return int((pyusd * E8).to_integral_value(ROUND_HALF_EVEN))


def _core(model: str) -> TradingCore:
    cfg = Config(instrument=ETH,
                 quoting=QuotingConfig(model=model, levels=3, base_size_btc=SIZE),  # type: ignore[arg-type]
                 fees=FeesConfig(truex_maker_bps=MAKER_BPS, kraken_taker_bps=KRAKEN_TAKER_BPS))
    return TradingCore.from_config(cfg, cl_ord_prefix="e")


def _reference(core: TradingCore, now: int, mid: Decimal) -> None:
    half = to_e8(TICK)
    for name in ("coinbase", "kraken"):
        core.on_reference(now, name, to_e8(mid) - half, to_e8(mid) + half, now)


def _orders(actions: list) -> list[NewOrder | ReplaceOrder]:
    return [a for a in actions if isinstance(a, NewOrder | ReplaceOrder)]


def test_the_instrument_carries_its_increments_in_units() -> None:
    ins = Instrument.from_config(ETH)
    assert (ins.tick_e8, ins.lot_e8) == (1_000_000, 100_000)
    btc = Instrument.from_config(InstrumentConfig())
    assert (btc.tick_e8, btc.lot_e8) == (50_000_000, 10_000)


@pytest.mark.parametrize("model", ["ladder", "edge"])
def test_quotes_sizes_and_money_follow_the_configured_tick_and_lot(model: str) -> None:
    core = _core(model)
    ins = core.instrument
    assert (ins.tick_e8, ins.lot_e8) == (1_000_000, 100_000)

    _reference(core, T0, MID)
    actions = core.decide(T0)
    orders = _orders(actions)
    assert orders, actions
    bids = [o for o in orders if o.side == Side.BUY]
    asks = [o for o in orders if o.side == Side.SELL]
    assert bids and asks
    want_lots = int(SIZE / LOT)                      # 13 lots of 0.001 (135 lots of a 0.0001 lot: wrong)
    for o in orders:
        price = ins.ticks_to_price(o.price_ticks)
        # on the 0.01 grid and near the 3000.00 mid: ticks of 0.50 would put it at 1/50 of that
        assert price == price.quantize(TICK) and abs(price - MID) < MID * Decimal("0.025"), o
        assert ins.price_text(o.price_ticks) == format(price.normalize(), "f")
        qty = ins.lots_to_qty(o.qty_lots)
        assert 1 <= o.qty_lots <= want_lots and qty == qty.quantize(LOT), o
    assert max(b.price_ticks for b in bids) < ins.price_to_ticks(MID) < min(a.price_ticks for a in asks)
    assert any(o.qty_lots == want_lots for o in orders)
    for o in orders:
        core.on_order_event(OrderAccepted(o.cl_ord_id, "X" + o.cl_ord_id), T0)

    # a whole bid fills (maker, the configured rebate)
    bid = max(bids, key=lambda o: o.price_ticks)
    bid_px = ins.ticks_to_price(bid.price_ticks)
    t1 = T0 + 10 * MS
    core.on_order_event(OrderFilled(bid.cl_ord_id, "F1", Side.BUY, bid.price_ticks, bid.qty_lots, 0,
                                    Liquidity.MAKER), t1)
    pos = bid.qty_lots
    assert core.inventory.position_lots == core.pnl.position_lots == pos
    held = core.inventory.summary()
    assert held.net_btc == pos * LOT and held.avg_entry == bid_px
    assert core.pnl.avg_entry() == bid_px
    fee1 = _units(bid_px * pos * LOT * MAKER_BPS / BPS)
    assert fee1 < 0
    assert core.pnl.fees_units == fee1
    assert core.pnl.realized_units == 0

    # the mid moves up 10.00: the open lots are marked at the new mid, per lot of 0.001
    mid2 = MID + 10
    t2 = t1 + 10 * MS
    _reference(core, t2, mid2)
    for o in _orders(core.decide(t2)):
        assert ins.ticks_to_price(o.price_ticks) == ins.ticks_to_price(o.price_ticks).quantize(TICK)
        assert 1 <= o.qty_lots <= want_lots
    mark = Decimal(str(core.venue_fair_mid))
    assert abs(mark - mid2) < 1
    assert core.pnl.mark == _units(mark * LOT)
    assert core.pnl.unrealized_units == pos * _units(mark * LOT) - _units(bid_px * pos * LOT)

    # part of the position sold on TrueX at an ask, the rest hedged on Kraken (taker, configured fee)
    ask = min(asks, key=lambda o: o.price_ticks)
    ask_px = ins.ticks_to_price(ask.price_ticks)
    sold = min(5, ask.qty_lots)
    t3 = t2 + 10 * MS
    core.on_order_event(OrderFilled(ask.cl_ord_id, "F2", Side.SELL, ask.price_ticks, sold,
                                    ask.qty_lots - sold, Liquidity.MAKER), t3)
    fee2 = _units(ask_px * sold * LOT * MAKER_BPS / BPS)
    hedge_px = Decimal("3005.50")
    rest = pos - sold
    core.on_hedge_fill(HedgeFilled("K1", Side.SELL, rest, hedge_px, Liquidity.TAKER), t3 + MS)
    fee3 = _units(hedge_px * rest * LOT * KRAKEN_TAKER_BPS / BPS)
    assert core.inventory.position_lots == core.pnl.position_lots == 0
    assert core.pnl.unrealized_units == 0
    assert core.pnl.fees_units == fee1 + fee2 + fee3
    realized = (ask_px - bid_px) * sold * LOT + (hedge_px - bid_px) * rest * LOT
    assert core.pnl.realized_units == _units(realized)
    assert core.pnl.total_units == _units(realized) - (fee1 + fee2 + fee3)
