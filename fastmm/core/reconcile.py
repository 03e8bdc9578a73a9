"""Reconcile the desired ladder with our working orders: the fewest cancels, replaces and new orders.

Per side:

1. Orders with a request in flight (pending new, cancel or replace) are frozen: not touched, and the
   prices they hold (both, for a pending replace) are taken; desired levels at a taken price count as
   served, and levels that would cross a frozen order of the other side wait for the next round.
2. If the side's orders are each within ``threshold`` ticks of the level of the same rank (the ladder
   shifted a little), they all stay. Otherwise a live order at a desired price stays (replaced in place
   only if its size is off by more than ``size_tolerance_pct``).
3. The remaining orders and levels are paired best to best. An order within ``threshold`` ticks of its
   level stays where it is (no churn when the mid barely moves), provided it is inside the band, at a
   price no other order will hold, and the result is not crossed; otherwise it is replaced to the level.
4. Orders left over are canceled; levels left over get new orders.

The intents come out in an order that is safe to send as any prefix (the rate limiter cuts prefixes):
cancels; then moves away from the spread (bids down lowest first, asks up highest first); then resizes
in place; then moves toward the spread (bids up highest first, asks down lowest first); then new orders,
best levels first, alternating sides. Because the pairing is monotonic, no step ever puts two of our
orders at one price or our bid at or above our ask (a property test simulates every step).

An intent is a plain tuple ``(kind, order, side, price_ticks, qty_lots)`` (cheap on the hot path);
for a move ``qty_lots`` is the new total quantity (filled part included), as FIX 38 on a replace wants.
:func:`reconcile` takes the orders themselves; the engine keeps a :class:`BookView` (orders split by
side and sorted) that it rebuilds on the event path when order state changes, and calls :data:`plan`:
the compiled twin (``fastmm/core/_plan_fast.pyx``) when the build had a C compiler (``COMPILED``), else
:func:`plan_py`. The compiled one reads each order's price and leaves from the view's ``bid_levels`` /
``ask_levels``, so a view must be used only while its orders are unchanged (the engine rebuilds it on
every change of ``OrderTracker.version``).
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import NamedTuple

from fastmm.core.order_tracker import OrdState, TrackedOrder
from fastmm.core.types import Side
from fastmm.speedups import compiled_twin

CANCEL, MOVE, NEW = 0, 1, 2
Intent = tuple[int, TrackedOrder | None, int, int, int]
Levels = tuple[tuple[int, int], ...]

_BUY, _SELL = int(Side.BUY), int(Side.SELL)
_LIVE, _PENDING_REPLACE, _FILLED = OrdState.LIVE, OrdState.PENDING_REPLACE, OrdState.FILLED
_INF = 1 << 62


_PRICE = attrgetter("price")
Approx = list[tuple[TrackedOrder, int, int]]


class BookView(NamedTuple):
    """Our working orders as reconcile needs them: live ones per side best first, and taken prices."""

    bids: list[TrackedOrder]
    asks: list[TrackedOrder]
    taken_b: set[int]
    taken_a: set[int]
    bid_levels: tuple[tuple[int, int], ...]  # (price, leaves) of ``bids``: equal to the ladder = no work
    ask_levels: tuple[tuple[int, int], ...]


def book_view(orders: Iterable[TrackedOrder]) -> BookView:
    """Split and sort once per change of order state (the engine does it on the event path)."""
    bids: list[TrackedOrder] = []
    asks: list[TrackedOrder] = []
    taken_b: set[int] = set()
    taken_a: set[int] = set()
    for o in orders:
        st = o.state
        if st == _LIVE:
            (bids if o.side == _BUY else asks).append(o)
        elif st < _FILLED:  # pending: not terminal
            t = taken_b if o.side == _BUY else taken_a
            t.add(o.price)
            if st == _PENDING_REPLACE:
                t.add(o.new_price)
    bids.sort(key=_PRICE, reverse=True)
    asks.sort(key=_PRICE)
    return BookView(bids, asks, taken_b, taken_a, tuple((o.price, o.qty - o.cum) for o in bids),
                    tuple((o.price, o.qty - o.cum) for o in asks))


def _plan_side(desired: Levels, ordered: list[TrackedOrder], taken: set[int], bid: bool, threshold: int,
               tol_pct: int, lo: int, hi: int, cancels: list[Intent], still: list[Intent],
               news: list[Intent], approx: Approx) -> list[Intent]:
    """Plan one side; ``desired`` is already free of taken and crossing prices; both best first.

    Returns the price moves in the order of the orders' old prices, best first (pairing is monotonic);
    size-only changes go to ``still``, kept-near orders to ``approx``.
    """
    side = _BUY if bid else _SELL
    if not ordered:
        for px, q in desired:
            news.append((NEW, None, side, px, q))
        return []
    nd = len(desired)
    no = len(ordered)
    if nd == no and threshold > 0:
        # the whole side shifted by at most the threshold: leave it all where it is
        for i in range(nd):
            o = ordered[i]
            px, q = desired[i]
            op = o.price
            d = px - op
            if (d > threshold or -d > threshold or op < lo or op > hi or op in taken
                    or abs(o.qty - o.cum - q) * 100 > tol_pct * q):
                break
        else:
            for i in range(nd):
                o = ordered[i]
                px, q = desired[i]
                if o.price != px:
                    approx.append((o, px, q))
            return []
    # exact matches by a merge of the two best-first lists; a second order at one price stays unmatched
    rest: list[tuple[int, int]] = []
    left: list[TrackedOrder] = []
    i = j = 0
    while i < nd and j < no:
        lv = desired[i]
        dp = lv[0]
        o = ordered[j]
        op = o.price
        if dp == op:
            q = lv[1]
            if abs(o.qty - o.cum - q) * 100 > tol_pct * q:
                still.append((MOVE, o, side, dp, o.cum + q))
            i += 1
            j += 1
        elif (dp > op) == bid:  # the level is better than this order: no order serves it yet
            rest.append(lv)
            i += 1
        else:
            left.append(o)
            j += 1
    if i < nd:
        rest.extend(desired[i:])
    if j < no:
        left.extend(ordered[j:])
    moves: list[Intent] = []
    n = min(len(rest), len(left))
    used: set[int] | None = None
    for k in range(n):
        px, q = rest[k]
        o = left[k]
        op = o.price
        if (-threshold <= px - op <= threshold and lo <= op <= hi
                and abs(o.qty - o.cum - q) * 100 <= tol_pct * q):
            if used is None:
                used = taken | {lv[0] for lv in desired}
            if op not in used:
                used.add(op)
                approx.append((o, px, q))
                continue
        moves.append((MOVE, o, side, px, o.cum + q))
    for o in left[n:]:
        cancels.append((CANCEL, o, side, o.price, o.qty - o.cum))
    for lv in rest[n:]:
        news.append((NEW, None, side, lv[0], lv[1]))
    return moves


def reconcile(bids: Levels, asks: Levels, orders: Iterable[TrackedOrder], threshold: int = 1,
              size_tolerance_pct: int = 50, band: tuple[int, int] = (0, _INF)) -> list[Intent]:
    """Intents that turn ``orders`` into the ladder ``bids``/``asks`` (best first, strictly monotonic)."""
    return plan(bids, asks, book_view(orders), threshold, size_tolerance_pct, band)


def plan_py(bids: Levels, asks: Levels, view: BookView, threshold: int = 1, size_tolerance_pct: int = 50,
            band: tuple[int, int] = (0, _INF)) -> list[Intent]:
    """:func:`reconcile` on a prepared :class:`BookView` (the hot path). The reference twin of the compiled
    ``_plan_fast.plan``, which returns the very same list for every input; :data:`plan` is whichever is
    built."""
    mov_b, mov_a, taken_b, taken_a, lv_b, lv_a = view
    if bids == lv_b and asks == lv_a and not taken_b and not taken_a:
        return []  # every order exactly where the ladder wants it
    if taken_b or taken_a:
        top_b = max(taken_b, default=-_INF)
        low_a = min(taken_a, default=_INF)
        bids = tuple(lv for lv in bids if lv[0] not in taken_b and lv[0] < low_a)
        asks = tuple(lv for lv in asks if lv[0] not in taken_a and lv[0] > top_b)
    elif not mov_b and not mov_a:
        # nothing working: new orders only, best first, alternating sides
        return _interleave([(NEW, None, _BUY, px, q) for px, q in bids],
                           [(NEW, None, _SELL, px, q) for px, q in asks])
    lo, hi = band
    cancels: list[Intent] = []
    still: list[Intent] = []
    news_b: list[Intent] = []
    news_a: list[Intent] = []
    approx_b: Approx = []
    approx_a: Approx = []
    tol = size_tolerance_pct
    mv_b = (_plan_side(bids, mov_b, taken_b, True, threshold, tol, lo, hi, cancels, still, news_b, approx_b)
            if bids != lv_b else [])
    mv_a = (_plan_side(asks, mov_a, taken_a, False, threshold, tol, lo, hi, cancels, still, news_a, approx_a)
            if asks != lv_a else [])
    if approx_b or approx_a:
        # orders left where they are must not cross what the other side ends up with; approx lists are
        # best first, so their first entry is the side's most aggressive kept order
        top_b = bids[0][0] if bids else -_INF
        if approx_b and approx_b[0][0].price > top_b:
            top_b = approx_b[0][0].price
        if taken_b:
            top_b = max(top_b, max(taken_b))
        low_a = asks[0][0] if asks else _INF
        if approx_a and approx_a[0][0].price < low_a:
            low_a = approx_a[0][0].price
        if taken_a:
            low_a = min(low_a, min(taken_a))
        if top_b >= low_a:
            mv_b += [(MOVE, o, _BUY, px, o.cum + q) for o, px, q in approx_b]
            mv_a += [(MOVE, o, _SELL, px, o.cum + q) for o, px, q in approx_a]
            mv_b.sort(key=_old_price, reverse=True)
            mv_a.sort(key=_old_price)
    if not mv_b and not mv_a:
        if not cancels and not still:
            return _interleave(news_b, news_a) if news_b or news_a else []
        return cancels + still + _interleave(news_b, news_a)
    # mv_b is by old price high to low, mv_a low to high. Away from the spread first: bids moving down
    # lowest first, asks moving up highest first; then toward it: bids up highest first, asks down
    # lowest first.
    away_b = [it for it in reversed(mv_b) if it[3] < _old_price(it)]
    near_b = [it for it in mv_b if it[3] > _old_price(it)]
    away_a = [it for it in reversed(mv_a) if it[3] > _old_price(it)]
    near_a = [it for it in mv_a if it[3] < _old_price(it)]
    return cancels + away_b + away_a + still + near_b + near_a + _interleave(news_b, news_a)


def _old_price(it: Intent) -> int:
    o = it[1]
    return o.price if o is not None else 0


def _interleave(a: list[Intent], b: list[Intent]) -> list[Intent]:
    if not b:
        return a
    if not a:
        return b
    out: list[Intent] = []
    for i in range(max(len(a), len(b))):
        if i < len(a):
            out.append(a[i])
        if i < len(b):
            out.append(b[i])
    return out


_compiled = compiled_twin("fastmm.core._plan_fast", "plan")    # None: the pure twin

plan = _compiled or plan_py
COMPILED = _compiled is not None
