"""OrderTracker: acks, rejects, partial fills, replaces, cancels, cancel rejects, unsolicited cancels."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fastmm.core.ids import ClOrdIdGen, RecentIds
from fastmm.core.order_tracker import RETIRED_IDS, OrderTracker, OrdState
from fastmm.core.types import (
    CancelOrder,
    CancelRejected,
    MessageRejected,
    NewOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    ReplaceOrder,
    Side,
)

T = 1_000_000_000


def placed(t: OrderTracker, cl: str = "a1", side: Side = Side.BUY, px: int = 100, qty: int = 50) -> None:
    t.on_new(NewOrder(cl, side, px, qty), T)


def test_new_ack_partial_fill_then_full_fill() -> None:
    t = OrderTracker()
    placed(t)
    o = t.get("a1")
    assert o is not None and o.state == OrdState.PENDING_NEW
    assert t.apply(OrderAccepted("a1", "X1"), T)
    assert o.state == OrdState.LIVE and o.order_id == "X1"
    assert t.apply(OrderFilled("a1", "e1", Side.BUY, 100, 20, 30), T)
    assert (o.cum, o.leaves, o.state) == (20, 30, OrdState.LIVE)
    assert not t.apply(OrderFilled("a1", "e1", Side.BUY, 100, 20, 30), T)  # resend: not booked twice
    assert t.apply(OrderFilled("a1", "e2", Side.BUY, 100, 30, 0, fee=Decimal("0.01")), T)
    assert o.state == OrdState.FILLED and "a1" not in t.working


def test_fill_before_ack_makes_the_order_live() -> None:
    t = OrderTracker()
    placed(t)
    t.apply(OrderFilled("a1", "e1", Side.BUY, 100, 10, 40), T)
    assert t.get("a1").state == OrdState.LIVE  # type: ignore[union-attr]


def test_reject_of_a_new_order() -> None:
    t = OrderTracker()
    placed(t)
    assert t.apply(OrderRejected("a1", "Price exceeds current price band"), T)
    assert t.get("a1").state == OrdState.REJECTED and not t.working  # type: ignore[union-attr]
    assert t.counts["rejects"] == 1


def test_replace_moves_the_order_to_its_new_id() -> None:
    t = OrderTracker()
    placed(t)
    t.apply(OrderAccepted("a1"), T)
    t.on_replace(ReplaceOrder("a2", "a1", Side.BUY, 101, 50), T)
    o = t.get("a1")
    assert o is not None and o.state == OrdState.PENDING_REPLACE and t.get("a2") is o
    t.apply(OrderFilled("a1", "e1", Side.BUY, 100, 10, 40), T)  # fill on the old id while in flight
    assert t.apply(OrderReplaced("a2", "a1", 101, 50, 40), T)
    assert (o.cl_ord_id, o.price, o.cum, o.leaves, o.state) == ("a2", 101, 10, 40, OrdState.LIVE)
    assert list(t.working) == ["a2"]


def test_an_order_replaced_all_day_keeps_only_its_recent_ids() -> None:
    t = OrderTracker()
    placed(t, "r0")
    t.apply(OrderAccepted("r0"), T)
    n = RETIRED_IDS * 3
    for i in range(1, n + 1):
        t.on_replace(ReplaceOrder(f"r{i}", f"r{i - 1}", Side.BUY, 100 + i % 7, 50), T)
        assert t.apply(OrderReplaced(f"r{i}", f"r{i - 1}", 100 + i % 7, 50, 50), T)
    o = t.get(f"r{n}")
    assert o is not None and o.state == OrdState.LIVE and list(t.working) == [f"r{n}"]
    assert len(t._by_id) <= RETIRED_IDS + 1          # was every id it ever had (a leak over a day)
    assert t.get(f"r{n - RETIRED_IDS}") is o          # a late report on a recent old id still finds it
    assert t.get("r0") is None and t.get(f"r{n - RETIRED_IDS - 1}") is None


def test_cancel_reject_returns_to_live_or_finishes_a_gone_order() -> None:
    t = OrderTracker()
    placed(t)
    t.apply(OrderAccepted("a1"), T)
    t.on_replace(ReplaceOrder("a2", "a1", Side.BUY, 300, 50), T)
    assert t.apply(CancelRejected("a2", "a1", "0", 8, "Price exceeds current price band"), T)
    o = t.get("a1")
    assert o is not None and o.state == OrdState.LIVE and o.price == 100 and t.get("a2") is None
    t.on_cancel(CancelOrder("a3", "a1", Side.BUY), T)
    assert t.apply(CancelRejected("a3", "a1", "2", 0, "Too late to cancel"), T)
    assert o.state == OrdState.FILLED and not t.working


def test_cancel_reject_unknown_order_finishes_it() -> None:
    t = OrderTracker()
    placed(t)
    t.apply(OrderAccepted("a1"), T)
    t.on_cancel(CancelOrder("a2", "a1", Side.BUY), T)
    assert t.apply(CancelRejected("a2", "a1", "8", 1, "Unknown order"), T)
    assert t.get("a1").state == OrdState.CANCELED  # type: ignore[union-attr]


def test_solicited_and_unsolicited_cancels() -> None:
    t = OrderTracker()
    placed(t, "a1")
    placed(t, "b1", px=99)
    t.apply(OrderAccepted("a1"), T)
    t.apply(OrderAccepted("b1"), T)
    t.on_cancel(CancelOrder("a2", "a1", Side.BUY), T)
    assert t.apply(OrderCanceled("a2", "a1"), T)
    assert t.counts["unsolicited_cancels"] == 0
    assert t.apply(OrderCanceled("b1", "", "Self-trade prevention"), T)
    b = t.get("b1")
    assert b is not None and b.state == OrdState.CANCELED and b.unsolicited
    assert t.counts["unsolicited_cancels"] == 1 and not t.working
    assert not t.apply(OrderCanceled("b1"), T)  # late duplicate: no change


def test_throttle_reject_of_a_cancel_request_keeps_the_order_live() -> None:
    t = OrderTracker()
    placed(t)
    t.apply(OrderAccepted("a1"), T)
    t.on_cancel(CancelOrder("a2", "a1", Side.BUY), T)
    assert t.apply(MessageRejected("a2", 8, "Throttle limit exceeded"), T)
    assert t.get("a1").state == OrdState.LIVE  # type: ignore[union-attr]
    assert t.apply(MessageRejected("a1", 8, "x"), T) is False  # the order itself is live, not pending


def test_unknown_ids_and_bad_fills_are_logged_once_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    t = OrderTracker()
    assert not t.apply(OrderAccepted("zz"), T)
    assert not t.apply(OrderAccepted("zz2"), T)
    assert sum("ack for an unknown" in r.message for r in caplog.records) == 1
    assert t.apply(OrderFilled("zz", "e9", Side.SELL, 100, 5, 0), T)  # booked: position moved at the venue
    assert not t.apply(OrderFilled("zz", "e10", Side.SELL, 0, 5, 0), T)
    assert not t.apply("garbage", T)  # type: ignore[arg-type]


def test_stale_pending_requests_are_reported() -> None:
    t = OrderTracker()
    placed(t)
    assert t.stale(T + 4 * T, 5 * T) == []
    assert [o.cl_ord_id for o in t.stale(T + 5 * T, 5 * T)] == ["a1"]


def test_cl_ord_ids_are_short_unique_and_bounded() -> None:
    g = ClOrdIdGen("fm1x2y3z")
    ids = [g.next() for _ in range(10_000)]
    assert len(set(ids)) == 10_000 and all(len(i) <= 18 for i in ids)
    assert ids[0] == "fm1x2y3z1" and ids[255] == "fm1x2y3z100"
    with pytest.raises(ValueError):
        ClOrdIdGen("a" * 13)
    with pytest.raises(ValueError):
        ClOrdIdGen("has space")
    tight = ClOrdIdGen("p" * 12, start=16**6 - 2)
    assert len(tight.next()) == 18
    with pytest.raises(OverflowError):
        tight.next()
    r = RecentIds(2)
    assert r.add("a") and r.add("b") and not r.add("a") and r.add("c") and r.add("a")
