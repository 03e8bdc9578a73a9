"""Venue reports that cannot be true are refused before booking (issue 16, item 7): the pure checks,
and the trading core that refuses, alerts and trips the kill switch."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fastmm.config import Config
from fastmm.core.risk import TripReason
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import CancelOrder, NewOrder, OrderAccepted, OrderFilled, Side
from fastmm.core.vet import OrderTerms, execution_problem, fill_problem, hedge_fill_problem

BUY = OrderTerms(Side.BUY, 200_000, 100, 0)


def fill(qty: int = 10, px: int = 200_000, leaves: int = 90, cl: str = "a", side: Side = Side.BUY,
         exec_id: str = "e1", fee: Decimal | None = None) -> OrderFilled:
    return OrderFilled(cl, exec_id, side, px, qty, leaves, fee=fee)


@pytest.mark.parametrize(("ev", "order", "words"), [
    (fill(qty=101), BUY, "over-fill"),
    (fill(qty=61), OrderTerms(Side.BUY, 200_000, 100, 40), "over-fill"),
    (fill(), None, "never sent"),
    (fill(qty=10**15), BUY, "quantity"),
    (fill(qty=0), BUY, "quantity"),
    (fill(qty=-5), BUY, "quantity"),
    (fill(px=-200), BUY, "price"),
    (fill(px=0), BUY, "price"),
    (fill(leaves=-1), BUY, "leaves"),
    (fill(side=Side.SELL), BUY, "side"),
    (fill(px=200_001), BUY, "limit"),                                   # a buy above its limit
    (fill(px=99_000), BUY, "limit"),                                    # under half the limit: absurd
    (fill(side=Side.SELL, px=199_999), OrderTerms(Side.SELL, 200_000, 100, 0), "limit"),
    (fill(fee=Decimal("1e12")), BUY, "fee"),
])
def test_impossible_fills(ev: OrderFilled, order: OrderTerms | None, words: str) -> None:
    problem = fill_problem(ev, order)
    assert problem is not None and words in problem


@pytest.mark.parametrize(("ev", "order"), [
    (fill(qty=100, leaves=0), BUY),
    (fill(qty=60, leaves=0), OrderTerms(Side.BUY, 200_000, 100, 40)),
    (fill(px=199_990), BUY),                                            # price improvement
    (fill(px=200_100), OrderTerms(Side.BUY, 200_000, 100, 0, 200_100)),  # the pending replace's limit
    (fill(fee=Decimal("-0.01")), BUY),                                  # a rebate
])
def test_possible_fills(ev: OrderFilled, order: OrderTerms) -> None:
    assert fill_problem(ev, order) is None


def test_hedge_fill_and_kraken_execution_checks() -> None:
    assert hedge_fill_problem(10, Decimal("60000")) is None
    assert hedge_fill_problem(10, Decimal("NaN")) is not None
    assert hedge_fill_problem(10**15, Decimal("60000")) is not None
    assert hedge_fill_problem(10, Decimal("-1")) is not None
    assert execution_problem(10**8, 5 * 10**7, 0, Decimal("30000"), Decimal("78")) is None
    assert "above the order volume" in (execution_problem(10**8, 3 * 10**8, 0, Decimal("180000"), Decimal(0))
                                        or "")
    assert "went back" in (execution_problem(10**8, 10**7, 5 * 10**7, Decimal("6000"), Decimal(0)) or "")
    assert execution_problem(10**8, 10**8, 0, Decimal("1e20"), Decimal(0)) is not None


def quoted_core() -> tuple[TradingCore, NewOrder]:
    c = TradingCore(Config(), cl_ord_prefix="v", rate_guard_ms=0)
    t = 1_700_000_000_000_000_000
    acts = c.on_price(t, 100_000.0, 0.9, False)
    for a in acts:
        c.on_order_event(OrderAccepted(a.cl_ord_id, "X" + a.cl_ord_id), t)
    c.engine.resume()
    o = next(a for a in acts if isinstance(a, NewOrder) and a.side == Side.BUY)
    return c, o


def test_the_core_refuses_books_nothing_and_trips_the_kill_switch() -> None:
    c, o = quoted_core()
    t = 1_700_000_001_000_000_000
    for bad in (OrderFilled(o.cl_ord_id, "b1", Side.BUY, o.price_ticks, o.qty_lots * 10, 0),
                OrderFilled("never-sent", "b2", Side.BUY, o.price_ticks, 1, 0),
                OrderFilled(o.cl_ord_id, "b3", Side.BUY, o.price_ticks, 10**15, 0),
                OrderFilled(o.cl_ord_id, "b4", Side.BUY, -200, 1, 0)):
        acts = c.on_order_event(bad, t)
        assert all(isinstance(a, CancelOrder) for a in acts)
    assert c.refused == 4 and c.inventory.position_lots == 0 and c.pnl.position_lots == 0
    assert c.risk.trip_info is not None and c.risk.trip_info.reason == TripReason.BAD_REPORT
    # a real fill is still booked, once (the resend is not a second fill, nor "impossible")
    good = OrderFilled(o.cl_ord_id, "g1", Side.BUY, o.price_ticks, o.qty_lots, 0)
    c.on_order_event(good, t)
    c.on_order_event(good, t)
    assert c.inventory.position_lots == o.qty_lots and c.refused == 4


def test_a_previous_runs_order_is_known_until_adopted() -> None:
    c = TradingCore(Config(), cl_ord_prefix="w")
    c.prior_orders["old1"] = OrderTerms(Side.SELL, 200_000, 50, 20)
    t = 1_700_000_000_000_000_000
    c.on_order_event(OrderFilled("old1", "r1", Side.SELL, 200_000, 30, 0), t)
    assert c.inventory.position_lots == -30 and c.refused == 0
    c.on_order_event(OrderFilled("old1", "r2", Side.SELL, 200_000, 1, 0), t)   # nothing left of it
    assert c.inventory.position_lots == -30 and c.refused == 1
