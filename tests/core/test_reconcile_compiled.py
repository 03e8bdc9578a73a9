"""The compiled ``plan`` and its pure twin return the very same intents for every input.

The engine uses the compiled one when the build had a C compiler (CI has one, so there it must exist).
Same list, element by element: the same kinds, sides, prices and quantities, and the same order objects
(by identity), in the same order; odd input (too deep, huge or non-int values, other container types)
goes to the pure twin inside the compiled one, so it must answer or raise the same way too.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.config import Config
from fastmm.core import quote_engine, reconcile
from fastmm.core.order_tracker import OrdState, TrackedOrder
from fastmm.core.reconcile import BookView, book_view, plan_py
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import (
    CancelOrder,
    NewOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderReplaced,
    ReplaceOrder,
    Side,
)

pytestmark = pytest.mark.skipif(not reconcile.COMPILED and not shutil.which("cc"),
                                reason="no C compiler on this machine: only the pure twin exists")

_INF = 1 << 62


def test_the_compiled_twin_was_built_where_a_compiler_exists() -> None:
    assert reconcile.COMPILED, "a C compiler is present but fastmm.core._plan_fast was not built"
    assert reconcile.plan is not plan_py


def _same(fast: list, slow: list) -> None:
    assert type(fast) is list and len(fast) == len(slow), (fast, slow)
    for a, b in zip(fast, slow, strict=True):
        assert type(a) is tuple and len(a) == 5, a
        assert a[1] is b[1], (a, b)  # the same order object (or both None)
        assert (a[0], a[2], a[3], a[4]) == (b[0], b[2], b[3], b[4]), (fast, slow)


def _outcome(fn, *args: object) -> tuple:
    try:
        return ("ok", fn(*args))
    except Exception as e:
        return (type(e).__name__, str(e))


def _both(bids: object, asks: object, view: object, threshold: object = 1, tol: object = 50,
          band: object = (0, _INF)) -> list:
    fast = _outcome(reconcile.plan, bids, asks, view, threshold, tol, band)
    slow = _outcome(plan_py, bids, asks, view, threshold, tol, band)
    assert fast[0] == slow[0], (fast, slow)
    if fast[0] == "ok":
        _same(fast[1], slow[1])
    else:
        assert fast == slow
    return fast[1]


# -- random books ------------------------------------------------------------------------------------
_STATES = [OrdState.LIVE] * 6 + [OrdState.PENDING_NEW, OrdState.PENDING_CANCEL, OrdState.PENDING_REPLACE,
                                  OrdState.FILLED, OrdState.CANCELED, OrdState.REJECTED]


@st.composite
def _ladder_side(draw: st.DrawFn, start: int, down: bool, max_levels: int = 8) -> tuple:
    n = draw(st.integers(0, max_levels))
    steps = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    out = []
    px = start
    for s in steps:
        out.append((px, draw(st.sampled_from([100, 100, 120, 1]) | st.integers(0, 400))))
        px = px - s if down else px + s
    return tuple(out)


@st.composite
def _case(draw: st.DrawFn) -> tuple:
    mid = draw(st.integers(20, 60))
    gap = draw(st.integers(-3, 6))  # negative: a crossed ladder, which the function must still handle
    bids = draw(_ladder_side(mid, True))
    asks = draw(_ladder_side(mid + gap, False))
    pool = [p for p, _ in bids + asks] or [mid]
    near = st.tuples(st.sampled_from(pool), st.sampled_from([0, 0, 0, 1, -1, 2, -2, 3])).map(sum)
    prices = near | st.integers(mid - 14, mid + 14)  # on, near and far from the levels; duplicates
    orders = []
    for _ in range(draw(st.integers(0, 14))):
        side = draw(st.sampled_from([Side.BUY, Side.SELL]))
        px = draw(prices)
        qty = draw(st.sampled_from([100, 100, 150]) | st.integers(1, 500))
        o = TrackedOrder(f"o{len(orders)}", side, px, qty, 0)
        o.state = draw(st.sampled_from(_STATES))
        o.cum = draw(st.just(0) | st.integers(0, qty) | st.integers(0, qty + 50))  # partial (over-)fills
        if o.state == OrdState.PENDING_REPLACE:
            o.new_price = draw(prices)
            o.new_qty = qty
        orders.append(o)
        if draw(st.integers(0, 3)) == 0:  # a second live order at the same price
            twin = TrackedOrder(f"o{len(orders)}", side, px, draw(st.sampled_from([100, 130])), 0)
            twin.state = OrdState.LIVE
            orders.append(twin)
    threshold = draw(st.integers(-1, 4))
    tol = draw(st.sampled_from([0, 10, 50, 100, 1000]) | st.integers(-5, 300))
    band = draw(st.sampled_from([(0, _INF), (mid - 6, mid + 8), (mid - 2, mid + 2), (mid + 1, mid + 30)])
                | st.tuples(prices, prices))
    return bids, asks, orders, threshold, tol, band


@settings(max_examples=1500, deadline=None)
@given(_case())
def test_compiled_plan_equals_the_pure_plan(case: tuple) -> None:
    bids, asks, orders, threshold, tol, band = case
    view = book_view(orders)
    _both(bids, asks, view, threshold, tol, band)
    # the same book against the ladder it already holds (the no-work exit) and an empty ladder
    _both(view.bid_levels, view.ask_levels, view, threshold, tol, band)
    _both((), (), view, threshold, tol, band)


@settings(max_examples=300, deadline=None)
@given(_case(), st.integers(-3, 3))
def test_compiled_plan_equals_the_pure_plan_on_a_shifted_live_ladder(case: tuple, shift: int) -> None:
    """The engine's usual case: every order live on a level, and the ladder moved a little."""
    bids, asks, _, threshold, tol, band = case
    orders = []
    for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
        for px, q in levels:
            o = TrackedOrder(f"x{side}{px}", side, px, max(q, 1) + 3, 0)
            o.state = OrdState.LIVE
            o.cum = 3
            orders.append(o)
    moved = (tuple((p + shift, q) for p, q in bids), tuple((p + shift, q) for p, q in asks))
    _both(*moved, book_view(orders), threshold, tol, band)


def _orders(side: Side, *prices: int, qty: int = 100) -> list[TrackedOrder]:
    out = []
    for px in prices:
        o = TrackedOrder(f"h{side}{px}.{len(out)}", side, px, qty, 0)
        o.state = OrdState.LIVE
        out.append(o)
    return out


_L = 100  # every level's size


@pytest.mark.parametrize("bids, asks, orders, threshold", [
    # three bids at one price: one kept near 101, the others moved; the ask at 101 crosses the kept one,
    # so all move, sorted by their (equal) old prices in their first order
    (((101, _L), (99, _L), (98, _L)), ((101, _L),), _orders(Side.BUY, 100, 100, 100), 1),
    ((), ((99, _L), (101, _L), (102, _L)), _orders(Side.SELL, 100, 100, 100), 1),
    # a second order at a level's price is not kept there (the level's own order holds it)
    (((100, _L), (99, _L), (98, _L)), (), _orders(Side.BUY, 100, 100), 1),
    # two orders at one price near two levels: only the first may stay
    (((102, _L), (101, _L), (97, _L)), (), _orders(Side.BUY, 100, 100, 90), 2),
    # the same with a pending order holding a price
    (((102, _L), (101, _L)), ((105, _L),),
     [*_orders(Side.BUY, 100, 100), TrackedOrder("p", Side.BUY, 103, 100, 0)], 2),
])
def test_rare_branches_agree(bids: tuple, asks: tuple, orders: list, threshold: int) -> None:
    view = book_view(orders)
    for band in ((0, _INF), (90, 100), (99, 101), (100, 102)):
        for tol in (0, 50):
            _both(bids, asks, view, threshold, tol, band)


# -- inputs off the compiled path: the pure twin answers through the compiled one --------------------
def _live(side: Side, px: int, qty: int = 100) -> TrackedOrder:
    o = TrackedOrder(f"l{side}{px}", side, px, qty, 0)
    o.state = OrdState.LIVE
    return o


def test_sides_deeper_than_the_c_arrays_fall_back_and_agree() -> None:
    from fastmm.core import _plan_fast

    deep = _plan_fast.MAX_SIDE + 8
    bids = tuple((1000 - 2 * i, 100) for i in range(deep))
    asks = tuple((1100 + 2 * i, 100) for i in range(deep))
    orders = [_live(Side.BUY, 1001 - 2 * i) for i in range(deep)] + [_live(Side.SELL, 1103 + 3 * i)
                                                                       for i in range(deep)]
    view = book_view(orders)
    assert len(_both(bids, asks, view, 0)) > deep
    _both(bids[:4], asks, view, 1)
    # many taken prices
    pend = []
    for i in range(deep + 3):
        o = _live(Side.BUY, 900 - i)
        o.state = OrdState.PENDING_NEW
        pend.append(o)
    _both(bids, asks, book_view(orders[:3] + pend))


@pytest.mark.parametrize("bids, asks", [
    (((1 << 50, 100),), ()),                         # a price past the C range
    (((100, 1 << 70),), ((105, 1),)),                # a size past int64
    (((100.0, 100),), ()),                           # a float price
    (((100, 100.5),), ()),                           # a float size
    (((True, 100),), ()),                            # a bool is an int subclass
    ([(100, 100)], ()),                              # a list, not a tuple: never equal to the view's levels
    (((100, 100, 1),), ()),                          # a malformed level: both raise
    (((100,),), ()),
    ((None,), ()),
    (None, ()),
])
def test_odd_ladders_agree_or_raise_alike(bids: object, asks: object) -> None:
    view = book_view([_live(Side.BUY, 100), _live(Side.SELL, 105)])
    _both(bids, asks, view)
    _both(bids, asks, book_view([]))


def test_odd_views_and_arguments_agree_or_raise_alike() -> None:
    orders = [_live(Side.BUY, 100), _live(Side.BUY, 99), _live(Side.SELL, 104)]
    v = book_view(orders)
    bids, asks = ((101, 100), (100, 100)), ((103, 100),)
    _both(bids, asks, v, 1, 50, (0, 1 << 80))              # band past int64
    _both(bids, asks, v, 1, 50, [90, 110])                 # band as a list
    _both(bids, asks, v, 1, 1 << 40)                       # tolerance past the C range
    _both(bids, asks, v, 1.5, 50)                          # float threshold
    _both(bids, asks, v, 1 << 63, 50)                      # threshold past int64
    _both(bids, asks, v, 1, 50, (1, 2, 3))                 # a malformed band: both raise
    _both(bids, asks, v._replace(taken_b=frozenset({99})))
    _both(bids, asks, v._replace(taken_a={103.0}))
    _both(bids, asks, v._replace(taken_b={1 << 60}))
    _both(bids, asks, tuple(v))                            # a plain tuple works like the view
    _both(bids, asks, tuple(v)[:5])                        # too short: both raise
    _both(bids, asks, BookView(tuple(v.bids), v.asks, set(), set(), v.bid_levels, v.ask_levels))
    _both(bids, asks, "abcdef")


# -- the engine gives the same actions with either twin ----------------------------------------------
def _drive(use_pure: bool, monkeypatch: pytest.MonkeyPatch) -> list:
    with monkeypatch.context() as m:
        if use_pure:
            m.setattr(quote_engine, "plan", plan_py)
        cfg = Config()
        cfg = replace(cfg, quoting=replace(cfg.quoting, reprice_threshold_ticks=1))
        c = TradingCore(cfg, cl_ord_prefix="e", rate_guard_ms=0)
        rng = random.Random(5)
        mid = 100_000.0
        now = 1_700_000_000_000_000_000
        seen: list = []
        for i in range(3000):
            now += 10_000_000
            mid += rng.gauss(0.0, 0.8)
            acts = c.on_price(now, mid, 0.9, False)
            if i % 10 == 0:
                acts += c.on_timer(now)
            seen += acts
            for a in acts:
                # the venue answers most at once, sometimes fills a part, sometimes not yet
                r = rng.random()
                if r < 0.1:
                    continue
                if isinstance(a, NewOrder):
                    seen += c.on_order_event(OrderAccepted(a.cl_ord_id, "X" + a.cl_ord_id), now)
                    if r < 0.2:
                        seen += c.on_order_event(OrderFilled(
                            a.cl_ord_id, f"f{a.cl_ord_id}", a.side, a.price_ticks, 100, a.qty_lots - 100),
                            now)
                elif isinstance(a, CancelOrder):
                    seen += c.on_order_event(OrderCanceled(a.cl_ord_id, a.orig_cl_ord_id), now)
                elif isinstance(a, ReplaceOrder):
                    o = c.engine.tracker.get(a.orig_cl_ord_id)
                    leaves = a.qty_lots - (o.cum if o else 0)
                    seen += c.on_order_event(OrderReplaced(a.cl_ord_id, a.orig_cl_ord_id, a.price_ticks,
                                                           a.qty_lots, leaves), now)
        return seen


def test_the_engine_sends_the_same_actions_with_either_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _drive(False, monkeypatch)
    slow = _drive(True, monkeypatch)
    assert len(fast) > 200
    assert fast == slow
