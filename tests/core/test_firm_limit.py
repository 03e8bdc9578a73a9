"""The firm-wide cap as room per side (fastmm.core.firm_limit) and the quote engine taking it."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from fastmm.config import Config, InventoryConfig, QuotingConfig
from fastmm.core.firm_limit import FirmView, firm_bounds, room, view_from_record
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import (
    CancelOrder,
    Liquidity,
    NewOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderReplaced,
    ReplaceOrder,
    Side,
)
from fastmm.shm.records import FIRM

LOT = 10_000            # 0.0001 BTC in 1e-8
BTC = 100_000_000
S = 1_000_000_000
T0 = 1_700_000_000 * S


def test_bounds_are_the_cap_less_the_others_position() -> None:
    view = FirmView(others_position_e8=3 * BTC, others_live=2, current=True)
    # others +3 BTC under a cap of 5: this instance may be at most 2 BTC long and 8 BTC short
    assert firm_bounds(10_000, LOT, 5 * BTC, view, False) == (20_000, 80_000)
    assert room((20_000, 80_000), 10_000) == (10_000, 90_000)
    assert room((20_000, 80_000), 30_000) == (0, 110_000)          # over the cap: nothing more to buy
    assert firm_bounds(0, LOT, 5 * BTC, FirmView(-6 * BTC, 1, True), False) == (110_000, 0)
    assert firm_bounds(0, LOT, 0, view, False) is None              # no cap configured


def test_without_a_current_view_own_limits_or_only_reducing() -> None:
    stale = FirmView(0, 0, current=False)
    assert firm_bounds(2_500, LOT, 5 * BTC, stale, False) is None
    assert firm_bounds(2_500, LOT, 5 * BTC, None, False) is None
    assert room(firm_bounds(2_500, LOT, 5 * BTC, stale, True), 2_500) == (0, 2_500)
    assert room(firm_bounds(-700, LOT, 5 * BTC, None, True), -700) == (700, 0)
    assert firm_bounds(0, LOT, 0, None, True) == (0, 0)


def test_view_from_the_shared_memory_record_ages_out() -> None:
    rec = np.zeros(1, FIRM)[0]
    rec["redis_up"], rec["t_ok"], rec["others_position_e8"], rec["others_live"] = 1, 10 * S, -5, 1
    assert view_from_record(rec, 12 * S, 3 * S) == FirmView(-5, 1, True)
    assert not view_from_record(rec, 14 * S, 3 * S).current
    rec["redis_up"] = 0
    assert not view_from_record(rec, 10 * S, 3 * S).current


def _core() -> TradingCore:
    cfg = Config(quoting=QuotingConfig(levels=3, base_size_btc=Decimal("0.1"), size_decay=1.0),
                 inventory=InventoryConfig())
    return TradingCore(cfg, cl_ord_prefix="f", rate_guard_ms=0)


def _sides(core: TradingCore, now: int) -> tuple[int, int]:
    bids, asks = core.engine.desired(now)
    return sum(q for _, q in bids), sum(q for _, q in asks)


def test_quote_engine_takes_the_smaller_of_own_and_firm_room() -> None:
    c = _core()
    c.engine.resume()
    c.on_price(T0, 100_000.0, 0.9, False)
    full = _sides(c, T0)
    assert full == (3000, 3000)                       # 3 levels of 0.1 BTC each side
    c.engine.firm_bounds = (1500, 10**9)             # at most 0.15 BTC long
    bid, ask = _sides(c, T0)
    assert 0 < bid <= 1500 and ask == 3000
    c.engine.firm_bounds = (0, 0)                    # Redis down, stop opening, flat: nothing
    assert _sides(c, T0) == (0, 0)
    c.engine.firm_bounds = None
    assert _sides(c, T0) == full


def test_a_fill_shrinks_the_firm_room_at_once() -> None:
    """The room is the bound less the live position: after a fill the next price event quotes less,
    without waiting for the shell to refresh the bound (the firm view is read every 50 ms)."""
    c = _core()
    c.engine.resume()
    c.engine.firm_bounds = (2000, 10**9)
    t = T0
    acts = c.on_price(t, 100_000.0, 0.9, False)
    _ack(c, acts, t)
    assert c.engine.tracker.open_lots(Side.BUY) == 2000
    best = max((o for o in c.engine.tracker.working.values() if o.side == Side.BUY), key=lambda o: o.price)
    _ack(c, c.on_order_event(OrderFilled(best.cl_ord_id, "E1", Side.BUY, best.price, best.leaves, 0,
                                         Liquidity.MAKER, Decimal(0)), t), t)
    assert c.inventory.position_lots == 1000
    bid, _ = _sides(c, t)
    assert bid == 1000
    for i in range(20):
        t += S // 5
        _ack(c, c.on_price(t, 100_000.0 + 3 * i, 0.9, False) + c.on_timer(t), t)
        assert c.inventory.position_lots + c.engine.tracker.open_lots(Side.BUY) <= 2000


def test_an_order_that_would_pass_the_firm_bound_is_held_back() -> None:
    """The last guard, where orders are emitted: position + the side's working lots + the new order
    must stay within the bound (a replace counts its new size instead of its old one)."""
    from fastmm.core.reconcile import NEW

    c = _core()
    c.engine.resume()
    t = T0
    _ack(c, c.on_price(t, 100_000.0, 0.9, False), t)
    assert c.engine.tracker.open_lots(Side.BUY) == 3000
    px = max(o.price for o in c.engine.tracker.working.values() if o.side == Side.BUY)
    c.engine.firm_bounds = (3500, 10**9)
    assert c.engine._emit([(NEW, None, 1, px, 1000)], t) == []          # 3000 + 1000 > 3500
    sent = c.engine._emit([(NEW, None, 1, px, 500)], t)                 # 3000 + 500 fits
    assert [(a.side, a.qty_lots) for a in sent] == [(Side.BUY, 500)]
    assert c.engine._emit([(NEW, None, 2, px + 40, 1000)], t) != []     # the other side is not bound


def _ack(c: TradingCore, acts: list, t: int, cancels: bool = True) -> None:
    for a in acts:
        if isinstance(a, NewOrder):
            _ack(c, c.on_order_event(OrderAccepted(a.cl_ord_id, "X" + a.cl_ord_id), t), t, cancels)
        elif isinstance(a, CancelOrder) and cancels:
            _ack(c, c.on_order_event(OrderCanceled(a.cl_ord_id, a.orig_cl_ord_id), t), t, cancels)
        elif isinstance(a, ReplaceOrder):
            o = c.engine.tracker.get(a.orig_cl_ord_id)
            assert o is not None
            _ack(c, c.on_order_event(OrderReplaced(a.cl_ord_id, a.orig_cl_ord_id, a.price_ticks, a.qty_lots,
                                                   a.qty_lots - o.cum), t), t, cancels)
