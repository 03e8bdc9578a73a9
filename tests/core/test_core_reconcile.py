"""reconcile(): minimal plans, reprice threshold, frozen orders, and the safety of every prefix.

Every test runs against each twin of ``plan`` that exists: the pure one always, the compiled one when
it was built (tests/core/test_reconcile_compiled.py requires it wherever a C compiler exists).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.core import reconcile as reconcile_mod
from fastmm.core.order_tracker import OrdState, TrackedOrder
from fastmm.core.reconcile import CANCEL, MOVE, NEW, Intent, plan_py, reconcile
from fastmm.core.types import Side

_TWINS = {"pure": plan_py}
if reconcile_mod.COMPILED:
    _TWINS["compiled"] = reconcile_mod.plan


@pytest.fixture(autouse=True, params=sorted(_TWINS))
def twin(request: pytest.FixtureRequest) -> object:
    """``reconcile()`` calls the module's ``plan``: point it at one twin for the test."""
    fn = _TWINS[request.param]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(reconcile_mod, "plan", fn)
        yield fn

_n = 0


def order(side: Side, px: int, qty: int = 100, state: OrdState = OrdState.LIVE, new_px: int = 0,
          cum: int = 0) -> TrackedOrder:
    global _n
    _n += 1
    o = TrackedOrder(f"o{_n}", side, px, qty, 0)
    o.state = state
    o.cum = cum
    if state == OrdState.PENDING_REPLACE:
        o.new_price, o.new_qty = new_px, qty
    return o


def kinds(plan: list[Intent]) -> list[tuple[int, int, int]]:
    return [(k, s, p) for k, _, s, p, _ in plan]


B, A = int(Side.BUY), int(Side.SELL)
BIDS = ((100, 100), (99, 100), (98, 100))
ASKS = ((103, 100), (104, 100), (105, 100))


def live_ladder(bids: tuple = BIDS, asks: tuple = ASKS) -> list[TrackedOrder]:
    return [order(Side.BUY, p, q) for p, q in bids] + [order(Side.SELL, p, q) for p, q in asks]


def test_empty_book_places_best_levels_first_alternating() -> None:
    plan = reconcile(BIDS, ASKS, [])
    assert kinds(plan) == [(NEW, B, 100), (NEW, A, 103), (NEW, B, 99), (NEW, A, 104), (NEW, B, 98),
                           (NEW, A, 105)]


def test_nothing_to_do_when_orders_match() -> None:
    assert reconcile(BIDS, ASKS, live_ladder()) == []


def test_small_move_within_threshold_causes_no_churn() -> None:
    orders = live_ladder()
    shifted_b = tuple((p + 1, q) for p, q in BIDS)
    shifted_a = tuple((p + 1, q) for p, q in ASKS)
    # one tick up: every order is within a tick of its level -> nothing moves
    assert reconcile(shifted_b, shifted_a, orders, threshold=1) == []
    # with threshold 0 the far order moves to the new best level, nothing else changes
    plan = reconcile(shifted_b, shifted_a, orders, threshold=0)
    assert sorted(kinds(plan)) == [(MOVE, B, 101), (MOVE, A, 106)]


def test_big_move_replaces_in_a_safe_order() -> None:
    orders = live_ladder()
    down_b = tuple((p - 10, q) for p, q in BIDS)
    down_a = tuple((p - 10, q) for p, q in ASKS)
    plan = reconcile(down_b, down_a, orders, threshold=1)
    # bids move away first (lowest first), asks move toward the spread afterwards (lowest first)
    assert [(k, s, it[1].price if it[1] else 0, p) for k, it, s, p in
            ((i[0], i, i[2], i[3]) for i in plan)] == [
        (MOVE, B, 98, 88), (MOVE, B, 99, 89), (MOVE, B, 100, 90),
        (MOVE, A, 103, 93), (MOVE, A, 104, 94), (MOVE, A, 105, 95)]


def test_fewer_levels_cancel_extra_orders_first() -> None:
    plan = reconcile(BIDS[:1], (), live_ladder())
    assert [k for k, *_ in plan] == [CANCEL] * 5
    assert sorted(p for _, _, _, p, _ in plan) == [98, 99, 103, 104, 105]


def test_size_tolerance_resizes_in_place() -> None:
    orders = [order(Side.BUY, 100, 100, cum=70)]  # 30 left of a wanted 100
    plan = reconcile(((100, 100),), (), orders, size_tolerance_pct=50)
    assert plan == [(MOVE, orders[0], B, 100, 170)]  # new total = filled 70 + wanted 100
    orders = [order(Side.BUY, 100, 100, cum=40)]
    assert reconcile(((100, 100),), (), orders, size_tolerance_pct=50) == []


def test_frozen_orders_are_left_alone_and_their_prices_taken() -> None:
    pend = order(Side.BUY, 100, state=OrdState.PENDING_NEW)
    rep = order(Side.BUY, 95, state=OrdState.PENDING_REPLACE, new_px=99)
    plan = reconcile(BIDS, (), [pend, rep])
    assert kinds(plan) == [(NEW, B, 98)]


def test_levels_crossing_a_frozen_order_of_the_other_side_wait() -> None:
    frozen_ask = order(Side.SELL, 99, state=OrdState.PENDING_CANCEL)
    plan = reconcile(BIDS, (), [frozen_ask])
    assert kinds(plan) == [(NEW, B, 98)]


def test_approximate_keep_that_would_cross_is_replaced() -> None:
    orders = [order(Side.BUY, 101), order(Side.SELL, 104)]
    # desired bid 100 and ask 101: the bid at 101 is within a tick but would sit on our own ask
    plan = reconcile(((100, 100),), ((101, 100),), orders, threshold=1)
    final_bid = next(p for k, o, s, p, _ in plan if s == B)
    assert final_bid == 100


def test_out_of_band_order_is_not_kept() -> None:
    orders = [order(Side.BUY, 100)]
    assert reconcile(((99, 100),), (), orders, threshold=1) == []
    plan = reconcile(((99, 100),), (), orders, threshold=1, band=(90, 99))
    assert kinds(plan) == [(MOVE, B, 99)]


# -- the property: any prefix of any plan keeps our book clean ---------------------------------------
@st.composite
def scenario(draw: st.DrawFn) -> tuple:
    n_orders = draw(st.integers(0, 8))
    prices = draw(st.lists(st.integers(1, 60), min_size=n_orders * 2, max_size=n_orders * 2, unique=True))
    prices.sort()
    split = draw(st.integers(0, n_orders))
    orders = []
    states = [OrdState.LIVE] * 4 + [OrdState.PENDING_NEW, OrdState.PENDING_CANCEL, OrdState.PENDING_REPLACE]
    # half the prices are order prices, the other half replace targets; bids take the low ones
    low, high = prices[: 2 * split], prices[2 * split:]
    for side, pool in ((Side.BUY, low), (Side.SELL, high)):
        for i in range(0, len(pool), 2):
            st_ = draw(st.sampled_from(states))
            orders.append(order(side, pool[i], draw(st.integers(1, 300)), st_, new_px=pool[i + 1],
                                cum=draw(st.integers(0, 50))))
    mid = draw(st.integers(5, 56))
    nb = draw(st.integers(0, 5))
    na = draw(st.integers(0, 5))
    spacing = draw(st.integers(1, 3))
    gap = draw(st.integers(1, 4))
    bids = tuple((mid - i * spacing, draw(st.integers(1, 300))) for i in range(nb) if mid - i * spacing > 0)
    asks = tuple((mid + gap + i * spacing, draw(st.integers(1, 300))) for i in range(na))
    threshold = draw(st.integers(0, 3))
    tol = draw(st.sampled_from([0, 50, 100]))
    band = draw(st.sampled_from([(0, 1 << 62), (mid - 6, mid + 8)]))
    return orders, bids, asks, threshold, tol, band


def _book(orders: list[TrackedOrder]) -> dict[str, tuple[int, set[int]]]:
    """Every order as (side, prices it may hold); frozen replaces hold both prices."""
    book = {}
    for o in orders:
        prices = {o.price}
        if o.state == OrdState.PENDING_REPLACE:
            prices.add(o.new_price)
        book[o.cl_ord_id] = (int(o.side), prices)
    return book


def _check(book: dict[str, tuple[int, set[int]]]) -> None:
    bid_px = [p for s, ps in book.values() if s == B for p in ps]
    ask_px = [p for s, ps in book.values() if s == A for p in ps]
    assert len(bid_px) == len(set(bid_px)), f"two bids at one price: {sorted(bid_px)}"
    assert len(ask_px) == len(set(ask_px)), f"two asks at one price: {sorted(ask_px)}"
    if bid_px and ask_px:
        assert max(bid_px) < min(ask_px), f"crossed: bids {sorted(bid_px)} asks {sorted(ask_px)}"


@settings(max_examples=400, deadline=None)
@given(scenario())
def test_property_no_two_orders_at_one_price_and_never_crossed(sc: tuple) -> None:
    orders, bids, asks, threshold, tol, band = sc
    book = _book(orders)
    _check(book)
    plan = reconcile(bids, asks, orders, threshold, tol, band)
    live_ids = {o.cl_ord_id for o in orders if o.state == OrdState.LIVE}
    touched = set()
    for n, (kind, o, side, px, qty) in enumerate(plan):
        if kind == NEW:
            assert o is None
            book[f"new{n}"] = (side, {px})
        else:
            assert o is not None and o.cl_ord_id in live_ids, "a frozen order was touched"
            assert o.cl_ord_id not in touched, "one order got two intents"
            touched.add(o.cl_ord_id)
            if kind == CANCEL:
                del book[o.cl_ord_id]
            else:
                assert qty > o.cum
                book[o.cl_ord_id] = (side, {px})
        _check(book)  # every prefix is a clean book
    # the end state serves every level that was free: each order sits on a level or within threshold
    taken = {p for o in orders if o.state != OrdState.LIVE for p in _book([o])[o.cl_ord_id][1]}
    for side, levels in ((B, bids), (A, asks)):
        free = [p for p, _ in levels if p not in taken]
        mine = sorted(next(iter(ps)) for cid, (s, ps) in book.items() if s == side and cid not in
                      {o.cl_ord_id for o in orders if o.state != OrdState.LIVE})
        assert len(mine) <= len(levels)
        for p in mine:
            assert any(abs(p - q) <= threshold for q in free), f"order at {p} serves no level {free}"
