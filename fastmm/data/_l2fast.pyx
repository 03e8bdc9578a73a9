# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled twin of :func:`fastmm.data.book.apply_updates_py` (same contract, same errors).

It lives beside :mod:`fastmm.data.book` because it writes ``_Side``'s representation (the ``levels``
dict, the sorted ``top_keys`` list, ``floor``, ``kept``) directly: ``_set`` is ``_Side.set``.

An ``l2_data`` message carries up to a few hundred level changes and the interpreter spends ~0.5-1 us on
each (three dict lookups, two decimal parses or cache lookups, a tuple, a method call, the book's dict and
key list). Here the same steps run as C calls on the same objects; a decimal text of the plain shape is
parsed in C (no cache needed), anything else goes to the pure parser, which accepts it or raises the
same error. A build without a C compiler simply uses the pure function.
"""

from cpython.dict cimport PyDict_Contains, PyDict_DelItem, PyDict_SetItem
from cpython.list cimport PyList_Append, PyList_GET_ITEM, PyList_GET_SIZE, PyList_Insert
from cpython.sequence cimport PySequence_DelItem

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL

cdef long long TOO_LARGE = 1LL << 62
cdef long long[9] POW = [100000000, 10000000, 1000000, 100000, 10000, 1000, 100, 10, 1]

cdef str K_SIDE = "side"
cdef str K_PRICE = "price_level"
cdef str K_QTY = "new_quantity"


cdef inline Py_ssize_t _bisect(list keys, long long k):
    """First index whose key is >= k (keys ascending, all int64)."""
    cdef Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if <long long>(<object>PyList_GET_ITEM(keys, mid)) < k:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline long long _e8(str text):
    """``"123.45"`` -> 1e-8 units, or -1 for anything but digits with at most one point and 1..8
    decimals (the caller then asks the pure parser, which accepts or explains)."""
    cdef Py_ssize_t n, i
    cdef const char* b = PyUnicode_AsUTF8AndSize(text, &n)
    cdef long long v = 0
    cdef int frac = -1, digits = 0
    cdef char ch
    if n == 0 or n > 24:
        return -1
    for i in range(n):
        ch = b[i]
        if 48 <= ch <= 57:
            v = v * 10 + (ch - 48)
            digits += 1
            if frac >= 0:
                frac += 1
        elif ch == 46 and frac < 0 and i > 0:
            frac = 0
        else:
            return -1
    if frac == 0 or frac > 8 or digits > 18:
        return -1
    if frac < 0:
        frac = 0
    if v >= TOO_LARGE // POW[frac]:
        return -1
    return v * POW[frac]


cdef inline void _set(object side, dict levels, object price, object qty) except *:
    """``_Side.set`` for one change (the rare trim is the Python method)."""
    cdef long long k, floor
    cdef list keys
    cdef Py_ssize_t i
    if <long long>qty <= 0:
        if PyDict_Contains(levels, price):
            PyDict_DelItem(levels, price)
            k = <long long>price * <long long>side.sign
            floor = side.floor
            if k >= floor:
                keys = side.top_keys
                i = _bisect(keys, k)
                PySequence_DelItem(keys, i)
        return
    if not PyDict_Contains(levels, price):
        k = <long long>price * <long long>side.sign
        floor = side.floor
        if k >= floor:
            keys = side.top_keys
            PyList_Insert(keys, _bisect(keys, k), k)
            if PyList_GET_SIZE(keys) > 2 * <Py_ssize_t>side.kept:
                side.trim()
    PyDict_SetItem(levels, price, qty)


def apply_updates(list updates, object book, dict prices, dict sizes, object cached):
    """Check every update of one event, then apply them all to ``book`` in order; nothing is applied
    when any update is bad (the error is the pure function's)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(updates), i
    cdef list px = []
    cdef list qty = []
    cdef bytearray is_bid = bytearray(n)
    cdef long long v
    cdef object u, s, pt, qt, p, q
    for i in range(n):
        u = <object>PyList_GET_ITEM(updates, i)
        if type(u) is not dict:
            u[K_SIDE]                      # the TypeError (or KeyError) the pure function raises
        s = (<dict>u)[K_SIDE]
        if s == "bid":
            is_bid[i] = 1
        elif s == "offer" or s == "ask":
            is_bid[i] = 0
        else:
            raise ValueError(f"side {s!r}")
        pt = (<dict>u)[K_PRICE]
        v = _e8(pt) if type(pt) is str else -1
        p = v if v > 0 else cached(prices, pt, True)
        qt = (<dict>u)[K_QTY]
        v = _e8(qt) if type(qt) is str else -1
        q = v if v >= 0 else cached(sizes, qt, False)
        PyList_Append(px, p)
        PyList_Append(qty, q)
    cdef object bids = book.bids, asks = book.asks
    cdef dict bid_levels = bids.levels, ask_levels = asks.levels
    for i in range(n):
        if is_bid[i]:
            _set(bids, bid_levels, <object>PyList_GET_ITEM(px, i), <object>PyList_GET_ITEM(qty, i))
        else:
            _set(asks, ask_levels, <object>PyList_GET_ITEM(px, i), <object>PyList_GET_ITEM(qty, i))
    return n
