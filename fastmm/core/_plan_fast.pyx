# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled twin of :func:`fastmm.core.reconcile.plan_py`: the same intents, in the same order.

The pure function spends ~9 us on a typical acting event (5 levels a side, ~8 intents): attribute reads,
small lists, sets and tuples, one interpreter step at a time. Here each price and quantity is read once
into a C array (levels from the ladder tuples, each order's price and leaves from the view's
``bid_levels``/``ask_levels``, which :func:`~fastmm.core.reconcile.book_view` made from the same orders),
the merge and pairing run on C integers, and Python tuples are built only for the intents returned,
reusing the very int objects of the inputs. ``o.cum`` is read off the order when a move is made, as the
pure twin does.

Anything off the common shape (a side deeper than ``MAXN``, more than ``MAXT`` taken prices, a value
that is not a plain ``int`` within +-2**44, a tolerance past +-2**16, a view that is not a 6-tuple of
list/list/set/set/tuple/tuple) goes to the pure twin, which then answers (or raises) for it.
"""

from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

from fastmm.core._codes cimport INTENT_CANCEL, INTENT_MOVE, INTENT_NEW, SIDE_BUY, SIDE_SELL

cdef enum:
    MAXN = 32  # levels or orders on one side
    MAXT = 32  # taken prices on one side

cdef long long LIM = 1LL << 44  # prices, sizes, leaves: |x| * 100 and tol * q stay far from 2**63
cdef long long TOL_LIM = 1LL << 16
cdef long long INF = 1LL << 62

# the intent kinds and sides (fastmm.core.reconcile.CANCEL/MOVE/NEW, Side.BUY/SELL as ints), made Python
# ints once from the shared codes (_codes.pxd)
cdef object K_CANCEL = INTENT_CANCEL
cdef object K_MOVE = INTENT_MOVE
cdef object K_NEW = INTENT_NEW
cdef object S_BUY = SIDE_BUY
cdef object S_SELL = SIDE_SELL

MAX_SIDE = MAXN


cdef struct SidePlan:
    int nraw              # the ladder side as given
    long long rpx[MAXN]
    long long rq[MAXN]
    int nd                # the ladder side free of taken and crossing prices: indices into the raw one
    int didx[MAXN]
    int no                # live orders, best first (the view's order)
    long long opx[MAXN]
    long long olv[MAXN]
    int ntk               # taken prices
    long long tk[MAXT]
    int ncan              # results: order indices / (order index, raw level index)
    int can[MAXN]
    int nstill
    int still_o[MAXN]
    int still_d[MAXN]
    int nnew
    int new_d[MAXN]
    int napx
    int apx_o[MAXN]
    int apx_d[MAXN]
    int nmv
    int mv_o[MAXN]
    int mv_d[MAXN]


cdef inline bint _int(object x, long long* out, long long lim) noexcept:
    """A plain int within +-lim into ``out``; False for anything else."""
    cdef int ovf = 0
    cdef long long v
    if type(x) is not int:
        return False
    v = PyLong_AsLongLongAndOverflow(x, &ovf)
    if ovf != 0 or v > lim or v < -lim:
        return False
    out[0] = v
    return True


cdef bint _levels(object lv, long long* px, long long* q, int* n) noexcept:
    """A tuple of (int, int) tuples into two arrays."""
    cdef Py_ssize_t k, m
    cdef object t
    if type(lv) is not tuple:
        return False
    m = PyTuple_GET_SIZE(lv)
    if m > MAXN:
        return False
    for k in range(m):
        t = <object>PyTuple_GET_ITEM(lv, k)
        if type(t) is not tuple or PyTuple_GET_SIZE(t) != 2:
            return False
        if not _int(<object>PyTuple_GET_ITEM(t, 0), &px[k], LIM):
            return False
        if not _int(<object>PyTuple_GET_ITEM(t, 1), &q[k], LIM):
            return False
    n[0] = <int>m
    return True


cdef bint _taken(object s, long long* tk, int* n) except -1:
    cdef int k = 0
    if type(s) is not set:
        return False
    if len(<set>s) > MAXT:
        return False
    for x in <set>s:
        if not _int(x, &tk[k], LIM):
            return False
        k += 1
    n[0] = k
    return True


cdef inline bint _has(const long long* a, int n, long long v) noexcept:
    cdef int k
    for k in range(n):
        if a[k] == v:
            return True
    return False


cdef inline long long _abs(long long v) noexcept:
    return -v if v < 0 else v


cdef inline bint _same(SidePlan* s) noexcept:
    """The (filtered) ladder side equals the orders' (price, leaves): nothing to do on this side."""
    cdef int k, d
    if s.nd != s.no:
        return False
    for k in range(s.nd):
        d = s.didx[k]
        if s.rpx[d] != s.opx[k] or s.rq[d] != s.olv[k]:
            return False
    return True


cdef inline bint _in_ladder(SidePlan* s, long long v) noexcept:
    cdef int k
    for k in range(s.nd):
        if s.rpx[s.didx[k]] == v:
            return True
    return False


cdef void _plan_side(SidePlan* s, bint bid, long long thr, long long tol, long long lo,
                     long long hi) noexcept:
    """``reconcile._plan_side`` on the arrays; same branches, same order of results."""
    cdef int nd = s.nd, no = s.no, i, j, k, n, d, nrest = 0, nleft = 0, nused = 0
    cdef long long px, q, op, dist
    cdef int rest[MAXN]
    cdef int left[MAXN]
    cdef long long used[MAXN]
    if no == 0:
        for i in range(nd):
            s.new_d[s.nnew] = s.didx[i]
            s.nnew += 1
        return
    if nd == no and thr > 0:
        # the whole side shifted by at most the threshold: leave it all where it is
        for i in range(nd):
            d = s.didx[i]
            px = s.rpx[d]
            q = s.rq[d]
            op = s.opx[i]
            dist = px - op
            if (dist > thr or -dist > thr or op < lo or op > hi or _has(s.tk, s.ntk, op)
                    or _abs(s.olv[i] - q) * 100 > tol * q):
                break
        else:
            for i in range(nd):
                d = s.didx[i]
                if s.opx[i] != s.rpx[d]:
                    s.apx_o[s.napx] = i
                    s.apx_d[s.napx] = d
                    s.napx += 1
            return
    # exact matches by a merge of the two best-first lists; a second order at one price stays unmatched
    i = 0
    j = 0
    while i < nd and j < no:
        d = s.didx[i]
        px = s.rpx[d]
        op = s.opx[j]
        if px == op:
            q = s.rq[d]
            if _abs(s.olv[j] - q) * 100 > tol * q:
                s.still_o[s.nstill] = j
                s.still_d[s.nstill] = d
                s.nstill += 1
            i += 1
            j += 1
        elif (px > op) == bid:
            rest[nrest] = i
            nrest += 1
            i += 1
        else:
            left[nleft] = j
            nleft += 1
            j += 1
    while i < nd:
        rest[nrest] = i
        nrest += 1
        i += 1
    while j < no:
        left[nleft] = j
        nleft += 1
        j += 1
    n = nrest if nrest < nleft else nleft
    for k in range(n):
        d = s.didx[rest[k]]
        px = s.rpx[d]
        q = s.rq[d]
        j = left[k]
        op = s.opx[j]
        dist = px - op
        if (-thr <= dist <= thr and lo <= op <= hi and _abs(s.olv[j] - q) * 100 <= tol * q
                and not _has(s.tk, s.ntk, op) and not _in_ladder(s, op) and not _has(used, nused, op)):
            # near its level, inside the band, and no other order or level holds that price: it stays
            used[nused] = op
            nused += 1
            s.apx_o[s.napx] = j
            s.apx_d[s.napx] = d
            s.napx += 1
            continue
        s.mv_o[s.nmv] = j
        s.mv_d[s.nmv] = d
        s.nmv += 1
    for k in range(n, nleft):
        s.can[s.ncan] = left[k]
        s.ncan += 1
    for k in range(n, nrest):
        s.new_d[s.nnew] = s.didx[rest[k]]
        s.nnew += 1


cdef void _stable_sort(SidePlan* s, bint desc) noexcept:
    """Moves by the order's old price (best first), equal prices in their first order (as list.sort)."""
    cdef int k, m, to, td
    cdef long long key
    for k in range(1, s.nmv):
        to = s.mv_o[k]
        td = s.mv_d[k]
        key = s.opx[to]
        m = k - 1
        while m >= 0 and ((s.opx[s.mv_o[m]] < key) if desc else (s.opx[s.mv_o[m]] > key)):
            s.mv_o[m + 1] = s.mv_o[m]
            s.mv_d[m + 1] = s.mv_d[m]
            m -= 1
        s.mv_o[m + 1] = to
        s.mv_d[m + 1] = td


cdef inline tuple _new(object side, object levels, int d):
    cdef object lv = <object>PyTuple_GET_ITEM(levels, d)
    return (K_NEW, None, side, <object>PyTuple_GET_ITEM(lv, 0), <object>PyTuple_GET_ITEM(lv, 1))


cdef inline tuple _move(object o, object side, object levels, int d):
    cdef object lv = <object>PyTuple_GET_ITEM(levels, d)
    return (K_MOVE, o, side, <object>PyTuple_GET_ITEM(lv, 0), o.cum + <object>PyTuple_GET_ITEM(lv, 1))


cdef inline tuple _cancel(object o, object side, object view_levels, int j):
    cdef object lv = <object>PyTuple_GET_ITEM(view_levels, j)
    return (K_CANCEL, o, side, <object>PyTuple_GET_ITEM(lv, 0), <object>PyTuple_GET_ITEM(lv, 1))


cdef void _interleave(list out, SidePlan* b, object bids, SidePlan* a, object asks) except *:
    cdef int k, m = b.nnew if b.nnew > a.nnew else a.nnew
    for k in range(m):
        if k < b.nnew:
            out.append(_new(S_BUY, bids, b.new_d[k]))
        if k < a.nnew:
            out.append(_new(S_SELL, asks, a.new_d[k]))


def plan(bids, asks, view, threshold=1, size_tolerance_pct=50, band=(0, INF)):
    """:func:`fastmm.core.reconcile.plan_py`, compiled (see the module docstring for the contract)."""
    cdef SidePlan b, a
    cdef long long thr, tol, lo, hi, top_b, low_a, px
    cdef int k, j, d, no
    cdef object mov_b, mov_a, lv_b, lv_a
    cdef list out
    if not isinstance(view, tuple) or PyTuple_GET_SIZE(view) != 6:
        return _pure(bids, asks, view, threshold, size_tolerance_pct, band)
    mov_b = <object>PyTuple_GET_ITEM(view, 0)
    mov_a = <object>PyTuple_GET_ITEM(view, 1)
    lv_b = <object>PyTuple_GET_ITEM(view, 4)
    lv_a = <object>PyTuple_GET_ITEM(view, 5)
    if (type(mov_b) is not list or type(mov_a) is not list or type(band) is not tuple
            or PyTuple_GET_SIZE(band) != 2
            or not _levels(bids, b.rpx, b.rq, &b.nraw) or not _levels(asks, a.rpx, a.rq, &a.nraw)
            or not _levels(lv_b, b.opx, b.olv, &b.no) or not _levels(lv_a, a.opx, a.olv, &a.no)
            or b.no != PyList_GET_SIZE(mov_b) or a.no != PyList_GET_SIZE(mov_a)
            or not _taken(<object>PyTuple_GET_ITEM(view, 2), b.tk, &b.ntk)
            or not _taken(<object>PyTuple_GET_ITEM(view, 3), a.tk, &a.ntk)
            or not _int(threshold, &thr, INF) or not _int(size_tolerance_pct, &tol, TOL_LIM)
            or not _int(<object>PyTuple_GET_ITEM(band, 0), &lo, INF)
            or not _int(<object>PyTuple_GET_ITEM(band, 1), &hi, INF)):
        return _pure(bids, asks, view, threshold, size_tolerance_pct, band)
    out = []
    b.ncan = b.nstill = b.nnew = b.napx = b.nmv = 0
    a.ncan = a.nstill = a.nnew = a.napx = a.nmv = 0
    if b.ntk or a.ntk:
        top_b = -INF
        for k in range(b.ntk):
            if b.tk[k] > top_b:
                top_b = b.tk[k]
        low_a = INF
        for k in range(a.ntk):
            if a.tk[k] < low_a:
                low_a = a.tk[k]
        b.nd = 0
        for k in range(b.nraw):
            px = b.rpx[k]
            if px < low_a and not _has(b.tk, b.ntk, px):
                b.didx[b.nd] = k
                b.nd += 1
        a.nd = 0
        for k in range(a.nraw):
            px = a.rpx[k]
            if px > top_b and not _has(a.tk, a.ntk, px):
                a.didx[a.nd] = k
                a.nd += 1
    else:
        b.nd = b.nraw
        a.nd = a.nraw
        for k in range(b.nraw):
            b.didx[k] = k
        for k in range(a.nraw):
            a.didx[k] = k
        if _same(&b) and _same(&a):
            return out  # every order exactly where the ladder wants it
        if b.no == 0 and a.no == 0:
            # nothing working: new orders only, best first, alternating sides
            b.nnew = b.nraw
            a.nnew = a.nraw
            for k in range(b.nraw):
                b.new_d[k] = k
            for k in range(a.nraw):
                a.new_d[k] = k
            _interleave(out, &b, bids, &a, asks)
            return out
    if not _same(&b):
        _plan_side(&b, True, thr, tol, lo, hi)
    if not _same(&a):
        _plan_side(&a, False, thr, tol, lo, hi)
    if b.napx or a.napx:
        # orders left where they are must not cross what the other side ends up with
        top_b = b.rpx[b.didx[0]] if b.nd else -INF
        if b.napx and b.opx[b.apx_o[0]] > top_b:
            top_b = b.opx[b.apx_o[0]]
        for k in range(b.ntk):
            if b.tk[k] > top_b:
                top_b = b.tk[k]
        low_a = a.rpx[a.didx[0]] if a.nd else INF
        if a.napx and a.opx[a.apx_o[0]] < low_a:
            low_a = a.opx[a.apx_o[0]]
        for k in range(a.ntk):
            if a.tk[k] < low_a:
                low_a = a.tk[k]
        if top_b >= low_a:
            for k in range(b.napx):
                b.mv_o[b.nmv] = b.apx_o[k]
                b.mv_d[b.nmv] = b.apx_d[k]
                b.nmv += 1
            for k in range(a.napx):
                a.mv_o[a.nmv] = a.apx_o[k]
                a.mv_d[a.nmv] = a.apx_d[k]
                a.nmv += 1
            _stable_sort(&b, True)
            _stable_sort(&a, False)
    # cancels; bids moving down lowest first, asks up highest first; resizes; bids up highest first,
    # asks down lowest first; new orders alternating sides
    for k in range(b.ncan):
        j = b.can[k]
        out.append(_cancel(<object>PyList_GET_ITEM(mov_b, j), S_BUY, lv_b, j))
    for k in range(a.ncan):
        j = a.can[k]
        out.append(_cancel(<object>PyList_GET_ITEM(mov_a, j), S_SELL, lv_a, j))
    for k in range(b.nmv - 1, -1, -1):
        j = b.mv_o[k]
        d = b.mv_d[k]
        if b.rpx[d] < b.opx[j]:
            out.append(_move(<object>PyList_GET_ITEM(mov_b, j), S_BUY, bids, d))
    for k in range(a.nmv - 1, -1, -1):
        j = a.mv_o[k]
        d = a.mv_d[k]
        if a.rpx[d] > a.opx[j]:
            out.append(_move(<object>PyList_GET_ITEM(mov_a, j), S_SELL, asks, d))
    for k in range(b.nstill):
        out.append(_move(<object>PyList_GET_ITEM(mov_b, b.still_o[k]), S_BUY, bids, b.still_d[k]))
    for k in range(a.nstill):
        out.append(_move(<object>PyList_GET_ITEM(mov_a, a.still_o[k]), S_SELL, asks, a.still_d[k]))
    for k in range(b.nmv):
        j = b.mv_o[k]
        d = b.mv_d[k]
        if b.rpx[d] > b.opx[j]:
            out.append(_move(<object>PyList_GET_ITEM(mov_b, j), S_BUY, bids, d))
    for k in range(a.nmv):
        j = a.mv_o[k]
        d = a.mv_d[k]
        if a.rpx[d] < a.opx[j]:
            out.append(_move(<object>PyList_GET_ITEM(mov_a, j), S_SELL, asks, d))
    _interleave(out, &b, bids, &a, asks)
    return out


cdef object _pure(bids, asks, view, threshold, size_tolerance_pct, band):
    from fastmm.core.reconcile import plan_py
    return plan_py(bids, asks, view, threshold, size_tolerance_pct, band)
