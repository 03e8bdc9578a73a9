"""The backtest's fill model: queue ahead, partial fills, cancels ahead, trade-throughs, takers, replaces."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from fastmm.backtest.queue import FullBook, QueueVenue
from fastmm.config import InstrumentConfig
from fastmm.core.money import FeeRate, MoneyScale, from_units
from fastmm.core.types import (
    CancelOrder,
    CancelRejected,
    Liquidity,
    NewOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    ReplaceOrder,
    Side,
)
from fastmm.instrument import Instrument

INST = Instrument.from_config(InstrumentConfig())
TICK = 50_000_000          # 0.50 in 1e-8
LOT = 10_000               # 0.0001 BTC in 1e-8
BTC = 100_000_000
PX = 120_000               # 60000.00 in ticks
BID, ASK = 1, 2            # resting sides; for trades, the taker's side
T = 1_000


def venue(cancels: str = "prorata", bid_px: int = PX, bid_qty: int = BTC // 2, maker_bps: str = "0",
          taker_bps: str = "10", full_book: FullBook | None = None) -> QueueVenue:
    v = QueueVenue(INST, maker_bps=Decimal(maker_bps), taker_bps=Decimal(taker_bps), cancels=cancels,  # type: ignore[arg-type]
                   full_book=full_book)
    bids = np.array([[bid_px * TICK, bid_qty], [(bid_px - 1) * TICK, BTC]], dtype=np.int64)
    asks = np.array([[(PX + 1) * TICK, BTC], [(PX + 2) * TICK, BTC]], dtype=np.int64)
    v.load_levels(bids, asks)
    return v


def buy(v: QueueVenue, cl: str = "b1", px: int = PX, lots: int = 1000, post_only: bool = True) -> list:
    return v.on_action(T, NewOrder(cl, Side.BUY, px, lots, post_only))


def fills(events: list | None) -> list[OrderFilled]:
    return [e for e in events or [] if isinstance(e, OrderFilled)]


def test_new_order_joins_the_back_and_fills_only_once_the_queue_ahead_traded() -> None:
    v = venue(bid_qty=BTC // 2)                           # 0.5 BTC resting at our price
    evs = buy(v, lots=1000)                               # 0.1 BTC
    assert [type(e) for e in evs] == [OrderAccepted]
    assert v.orders["b1"].ahead == BTC // 2
    assert not v.on_trade(T, ASK, PX * TICK, 30 * BTC // 100)        # 0.3 traded: 0.2 still ahead
    assert v.orders["b1"].ahead == 20 * BTC // 100
    f = fills(v.on_trade(T, ASK, PX * TICK, 25 * BTC // 100))          # 0.25: 0.05 reaches us
    assert [(e.last_px_ticks, e.last_qty_lots, e.leaves_lots, e.liquidity) for e in f] == [
        (PX, 500, 500, Liquidity.MAKER)]
    assert f[0].fee == Decimal(0) and f[0].side == Side.BUY and f[0].cl_ord_id == "b1"
    f = fills(v.on_trade(T, ASK, PX * TICK, BTC))                      # more than the rest: filled, gone
    assert [(e.last_qty_lots, e.leaves_lots) for e in f] == [(500, 0)]
    assert "b1" not in v.orders and v.best_bid_e8 == -1
    assert v.position_lots == 1000 and v.stats.fills == 2 and v.stats.orders_filled == 1


def test_buy_trades_and_trades_away_from_our_price_do_not_touch_the_queue() -> None:
    v = venue()
    buy(v)
    assert not v.on_trade(T, BID, PX * TICK, BTC)                       # a buyer lifts asks, not our bid
    assert not v.on_trade(T, ASK, (PX * TICK) + 1_000_000, BTC)         # a sale 0.01 above our bid
    assert v.orders["b1"].ahead == BTC // 2


def test_partial_fills_are_whole_lots_and_the_remainder_is_carried() -> None:
    v = venue(bid_qty=0)                                  # empty level: nobody ahead
    buy(v, lots=10)
    f = fills(v.on_trade(T, ASK, PX * TICK, 15_000))      # 0.00015 BTC: one lot, half a lot carried
    assert [e.last_qty_lots for e in f] == [1] and v.orders["b1"].ahead == -5_000
    f = fills(v.on_trade(T, ASK, PX * TICK, 5_000))       # the carried half and this half make a lot
    assert [e.last_qty_lots for e in f] == [1] and v.orders["b1"].ahead == 0


@pytest.mark.parametrize(("model", "ahead"), [("prorata", 30), ("all", 10), ("none", 50)])
def test_cancels_ahead_per_model(model: str, ahead: int) -> None:
    v = venue(model, bid_qty=60 * BTC // 100)             # we join behind 0.6
    buy(v)
    v.on_depth(T, BID, PX * TICK, BTC)                    # +0.4 joins behind us
    assert v.orders["b1"].ahead == 60 * BTC // 100
    v.on_depth(T, BID, PX * TICK, BTC // 2)               # 0.5 canceled, no trades: where were they?
    assert v.orders["b1"].ahead == ahead * BTC // 100


def test_a_decrease_the_trades_explain_is_not_counted_again_as_cancels() -> None:
    v = venue("all", bid_qty=BTC)
    buy(v)
    v.on_trade(T, ASK, PX * TICK, 20 * BTC // 100)        # 0.2 traded: 0.8 ahead
    v.on_depth(T, BID, PX * TICK, 80 * BTC // 100)        # the level shows the trade: no cancel
    assert v.orders["b1"].ahead == 80 * BTC // 100
    v.on_depth(T, BID, PX * TICK, 70 * BTC // 100)        # now a 0.1 cancel ("all": ahead of us)
    assert v.orders["b1"].ahead == 70 * BTC // 100


def test_ahead_never_exceeds_the_level_and_cancels_never_fill() -> None:
    v = venue("all", bid_qty=BTC)
    buy(v)
    v.on_depth(T, BID, PX * TICK, 0)                      # the whole level canceled
    o = v.orders["b1"]
    assert o.ahead == 0 and o.cum == 0 and v.stats.fills == 0
    v2 = venue("none", bid_qty=BTC)
    buy(v2)
    v2.on_depth(T, BID, PX * TICK, BTC // 10)
    assert v2.orders["b1"].ahead == BTC // 10


def test_a_trade_through_our_price_fills_the_whole_order_at_our_price() -> None:
    v = venue(bid_qty=10 * BTC)                           # a long queue ahead does not matter
    buy(v, lots=3000)
    f = fills(v.on_trade(T, ASK, PX * TICK - 1_000_000, LOT))   # a tiny sale 0.01 below our bid
    assert [(e.last_px_ticks, e.last_qty_lots, e.leaves_lots) for e in f] == [(PX, 3000, 0)]


def test_the_touch_reaching_our_order_fills_it() -> None:
    v = venue()
    v.on_action(T, NewOrder("a1", Side.SELL, PX + 2, 100, True))
    assert not v.on_top(T, PX * TICK, (PX + 1) * TICK)
    f = fills(v.on_top(T, (PX + 2) * TICK, (PX + 3) * TICK))
    assert [(e.side, e.last_px_ticks, e.last_qty_lots, e.liquidity) for e in f] == [
        (Side.SELL, PX + 2, 100, Liquidity.MAKER)]


def test_post_only_order_that_would_cross_is_rejected() -> None:
    v = venue()
    v.on_top(T, PX * TICK, (PX + 1) * TICK)
    evs = buy(v, px=PX + 1)
    assert len(evs) == 1 and isinstance(evs[0], OrderRejected) and "Post-only" in evs[0].text
    assert v.stats.rejects == 1 and not v.orders


def test_crossing_order_takes_the_recorded_levels_as_taker_and_rests_the_rest() -> None:
    asks = np.array([[60_000_01_000_000, 5 * BTC // 100], [60_000_40_000_000, 10 * BTC // 100],
                     [60_000_60_000_000, BTC]], dtype=np.int64)
    bids = np.array([[59_999_99_000_000, BTC]], dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    book = FullBook(bids, asks, empty, empty, empty, empty)
    v = venue(full_book=book, taker_bps="10")
    v.on_top(T, 59_999_99_000_000, 60_000_01_000_000)
    evs = buy(v, px=PX + 1, lots=2000, post_only=False)   # 0.2 BTC up to 60000.50
    f = fills(evs)
    assert isinstance(evs[0], OrderAccepted)
    # 60000.01 and 60000.40 both round up to our tick 60000.50; 60000.60 is beyond the limit
    assert [(e.last_px_ticks, e.last_qty_lots, e.liquidity) for e in f] == [
        (PX + 1, 500, Liquidity.TAKER), (PX + 1, 1000, Liquidity.TAKER)]
    tick_lot = MoneyScale(INST).tick_lot
    assert f[0].fee == from_units(FeeRate(Decimal(10)).fee((PX + 1) * 500 * tick_lot))
    o = v.orders["b1"]
    assert o.leaves == 500 and o.px == PX + 1 and v.stats.taker_fills == 2
    assert v.fees_units == sum(FeeRate(Decimal(10)).fee((PX + 1) * q * tick_lot) for q in (500, 1000))


def test_replace_keeps_its_place_only_for_the_same_price_and_no_more_size() -> None:
    v = venue(bid_qty=BTC // 2)
    buy(v, lots=1000)
    v.on_trade(T, ASK, PX * TICK, BTC // 10)              # 0.4 ahead now
    evs = v.on_action(T, ReplaceOrder("b2", "b1", Side.BUY, PX, 800))
    assert isinstance(evs[0], OrderReplaced) and evs[0].leaves_lots == 800
    assert v.orders["b2"].ahead == 40 * BTC // 100       # size down: kept
    v.on_action(T, ReplaceOrder("b3", "b2", Side.BUY, PX, 900))
    assert v.orders["b3"].ahead == BTC // 2              # size up: back of the queue (recorded level)
    v.on_action(T, ReplaceOrder("b4", "b3", Side.BUY, PX - 1, 900))
    assert v.orders["b4"].ahead == BTC and v.best_bid_e8 == (PX - 1) * TICK


def test_replace_and_cancel_rejects() -> None:
    v = venue(bid_qty=0)
    buy(v, lots=10)
    fills(v.on_trade(T, ASK, PX * TICK, 4 * LOT))         # 4 lots filled
    evs = v.on_action(T, ReplaceOrder("b2", "b1", Side.BUY, PX, 4))
    assert isinstance(evs[0], CancelRejected) and evs[0].reason == 99 and evs[0].ord_status == "1"
    evs = v.on_action(T, CancelOrder("c1", "nope", Side.BUY))
    assert isinstance(evs[0], CancelRejected) and evs[0].reason == 1
    assert isinstance(v.on_action(T, CancelOrder("c2", "b1", Side.BUY))[0], OrderCanceled)
    evs = v.on_action(T, CancelOrder("c3", "b1", Side.BUY))   # already canceled
    assert isinstance(evs[0], CancelRejected) and evs[0].ord_status == "4" and evs[0].reason == 1


def test_cancel_of_a_replaced_id_is_rejected_without_killing_the_order() -> None:
    v = venue()
    buy(v)
    v.on_action(T, ReplaceOrder("b2", "b1", Side.BUY, PX - 1, 1000))
    evs = v.on_action(T, CancelOrder("c1", "b1", Side.BUY))
    assert isinstance(evs[0], CancelRejected) and evs[0].reason != 1 and "b2" in v.orders


def test_venue_ledger_is_exact() -> None:
    v = venue(bid_qty=0, maker_bps="-1")                  # a maker rebate
    buy(v, lots=1000)
    v.on_trade(T, ASK, PX * TICK, BTC)
    value = PX * 1000 * MoneyScale(INST).tick_lot
    rebate = FeeRate(Decimal(-1)).fee(value)
    assert rebate < 0
    assert v.cash_units == -(value + rebate) and v.fees_units == rebate and v.position_lots == 1000


@pytest.mark.parametrize("mode", ["reject", "take"])
def test_a_crossing_replace_of_a_post_only_order_follows_the_setting(mode: str) -> None:
    v = QueueVenue(INST, maker_bps=Decimal(0), taker_bps=Decimal(10), crossing_replace=mode)  # type: ignore[arg-type]
    v.load_levels(np.array([[PX * TICK, BTC]], dtype=np.int64), np.array([[(PX + 1) * TICK, BTC]], dtype=np.int64))
    v.on_top(T, PX * TICK, (PX + 1) * TICK)
    assert isinstance(buy(v, px=PX - 2)[0], OrderAccepted)
    evs = v.on_action(T, ReplaceOrder("b2", "b1", Side.BUY, PX + 1, 1000))
    assert v.stats.crossing_replaces == 1
    if mode == "reject":
        assert len(evs) == 1 and isinstance(evs[0], CancelRejected)
        assert "Post-only" in evs[0].text and evs[0].ord_status == "0"
        assert v.orders["b1"].px == PX - 2 and not fills(evs)    # still resting where it was
    else:
        f = fills(evs)
        assert isinstance(evs[0], OrderReplaced) and f and f[0].liquidity == Liquidity.TAKER
    # not post-only: a crossing replace takes in either mode
    buy(v, cl="g1", px=PX - 3, post_only=False)
    g = fills(v.on_action(T, ReplaceOrder("g2", "g1", Side.BUY, PX + 1, 1000)))
    assert g and g[0].liquidity == Liquidity.TAKER


def test_the_crossing_replace_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="crossing_replace"):
        QueueVenue(INST, maker_bps=Decimal(0), taker_bps=Decimal(10), crossing_replace="maybe")  # type: ignore[arg-type]
