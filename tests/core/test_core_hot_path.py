"""The price path's shortcuts give what the long way gives: the band taken from the ladder build, and the
actions built with ``tuple.__new__``."""

from __future__ import annotations

import math
import random

from fastmm.config import Config
from fastmm.core.ladder import LadderBuilder
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import CancelOrder, NewOrder, OrderAccepted, OrderCanceled, OrderReplaced, ReplaceOrder
from fastmm.instrument import Instrument

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def test_build_leaves_the_band_of_its_mid() -> None:
    cfg = Config()
    b = LadderBuilder(cfg.quoting, cfg.venue_rules, Instrument.from_config(cfg.instrument))
    rng = random.Random(3)
    for _ in range(500):
        mid = rng.uniform(1.0, 400_000.0)
        b.build(mid, rng.uniform(0, 50), rng.uniform(0, 50))
        assert b.last_band_ref == mid and b.last_band == b.band(mid)


def test_the_engine_checks_orders_against_the_band_of_the_current_mid() -> None:
    """Quoting (the band comes from the build) and pulled (no build: computed) alike."""
    c = TradingCore(Config(), cl_ord_prefix="h", rate_guard_ms=0)
    eng = c.engine
    rng = random.Random(11)
    mid = 100_000.0
    now = T0
    checked = 0
    for i in range(1500):
        now += 100 * MS
        mid += rng.gauss(0.0, 3.0)
        conf = 0.1 if i % 97 < 5 else 0.9  # now and then pulled: cancels only, no ladder built
        acts = c.on_price(now, mid, conf, False)
        if acts:
            x = eng._mid_ticks
            assert eng.band == eng.builder.band(x), (i, eng.band, x)
            checked += 1
        for a in acts:
            if isinstance(a, NewOrder):
                c.on_order_event(OrderAccepted(a.cl_ord_id, "X"), now)
            elif isinstance(a, CancelOrder):
                c.on_order_event(OrderCanceled(a.cl_ord_id, a.orig_cl_ord_id), now)
            elif isinstance(a, ReplaceOrder):
                o = eng.tracker.get(a.orig_cl_ord_id)
                assert o is not None
                c.on_order_event(OrderReplaced(a.cl_ord_id, a.orig_cl_ord_id, a.price_ticks, a.qty_lots,
                                               a.qty_lots - o.cum), now)
    assert checked > 100
    # no valid mid: the widest band, as before
    eng.band = (1, 2)
    assert c.on_price(now + 5000 * MS, math.nan, 0.9, False)  # pulled: the ladder's orders canceled
    assert eng.band == (0, 1 << 62)


def test_actions_are_the_named_tuples_their_constructors_make() -> None:
    c = TradingCore(Config(), cl_ord_prefix="k", rate_guard_ms=0)
    acts = c.on_price(T0, 100_000.0, 0.9, False)
    assert acts and all(type(a) is NewOrder for a in acts)
    for a in acts:
        assert a == NewOrder(a.cl_ord_id, a.side, a.price_ticks, a.qty_lots, a.post_only)
        assert a.post_only is True and a._fields == NewOrder._fields
        c.on_order_event(OrderAccepted(a.cl_ord_id, "X"), T0)
    later = c.on_price(T0 + 2000 * MS, 100_010.0, 0.9, False)
    moves = [a for a in later if isinstance(a, ReplaceOrder)]
    assert moves
    for a in moves:
        assert type(a) is ReplaceOrder
        assert a == ReplaceOrder(a.cl_ord_id, a.orig_cl_ord_id, a.side, a.price_ticks, a.qty_lots)
    for a in moves:
        o = c.engine.tracker.get(a.orig_cl_ord_id)
        assert o is not None
        c.on_order_event(OrderReplaced(a.cl_ord_id, a.orig_cl_ord_id, a.price_ticks, a.qty_lots, a.qty_lots),
                         T0 + 2000 * MS)
    halt = c.stop(T0 + 4000 * MS)
    assert halt and all(type(a) is CancelOrder and a == CancelOrder(*a) for a in halt)
