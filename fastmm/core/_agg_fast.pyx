# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=False
"""Compiled twin of :class:`fastmm.core.price_aggregator.AggregatorCorePy`: the same fair prices, bit for bit.

Why: the aggregator runs on every reference update, and right after the quoter wakes from its eventfd it
was the largest single function of a decision (its bytecode, the sources' objects and the FairPrice it
built all cold in the caches). Here each source is a C struct in one small array, the pass over them is
C arithmetic in the pure twin's order of operations, and a FairPrice is built only when the mid, the
confidence or the set of sources in use changed (the pure twin compares first too).

Same arithmetic: ints become doubles where Python converts them (an int sum times 0.5, an int over a
float), ``round(x)`` to an int is ``rint`` (half to even, as Python's), and ``round(conf, 3)`` is
:func:`round3`: Python's ``round(x, 3)`` goes through the decimal conversion of ``dtoa.c`` (about 0.3 us
hot but ~25 us right after a 10 ms sleep, the largest cold cost of a decision), this is exact integer
logic on ``x * 2000`` (an ``fma`` gives the product's rounding error), the same double for every x. Prices and times must fit a signed 64-bit int (1e-8 units and nanoseconds do, by far); a larger one
raises OverflowError where the pure twin would carry on. Divisions keep Python's checks (``cdivision``
off): a zero divisor (a weight so small that a source's share underflows to 0) raises ZeroDivisionError
in both twins. At most 62 sources (the mask of those in use).
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport fma, floor, rint

from fastmm.core.price_aggregator import FairPrice
from fastmm.units import BPS

cdef object _tnew = tuple.__new__
cdef object _round = round     # Python's round(x, 3), for what round3_c leaves to it
cdef object _FairPrice = FairPrice
cdef tuple _EMPTY = ()
cdef double E8F = 100_000_000.0

cdef inline double round3_c(double x) except? -1.0:
    """Python's ``round(x, 3)``: x rounded to the nearest multiple of 1/1000, ties (exact in binary) to the
    even multiple, returned as the double nearest k / 1000, as ``float(decimal)`` gives it. Exact for
    0 <= x < 2**30 (a confidence is in [0, 1]); anything else is Python's own."""
    cdef double p, e
    cdef long long q, k
    if not (x >= 0.0 and x < 1073741824.0):
        return _round(x, 3)
    if x < 0.0001:
        return 0.0 * x          # under half of 1/1000, sign kept (-0.0); fma stays clear of subnormals
    p = x * 2000.0
    e = fma(x, 2000.0, -p)      # x * 2000 == p + e exactly
    q = <long long>floor(p)     # floor(x * 2000): p is q or above; a negative error below an integer p
    if <double>q == p and e < 0.0:
        q -= 1
    if q % 2 == 0:              # x * 1000 in [q/2, q/2 + 0.5)
        k = q // 2
    elif <double>q == p and e == 0.0:   # exactly halfway: to the even one
        k = (q - 1) // 2
        if k % 2:
            k += 1
    else:
        k = (q + 1) // 2
    return <double>k / 1000.0


def round3(double x):
    """:func:`round3_c` from Python, for the tests that hold it to ``round(x, 3)``."""
    return round3_c(x)


cdef struct Src:
    double weight
    double stale_f          # stale_after_ns as a double (the pure twin divides by it as a float)
    long long stale_after
    long long bid
    long long ask
    long long t_recv
    bint flagged
    bint received


cdef class AggregatorCore:
    """State of every source in C; the Python-visible attributes are the pure twin's."""

    cdef Src* _s
    cdef Py_ssize_t _n
    cdef dict _index
    cdef tuple _names_of              # mask -> names in use
    cdef double _total_weight
    cdef double _inv4_disp
    cdef long long _last_mid_e8
    cdef double _last_conf
    cdef unsigned long long _last_used
    cdef readonly object last
    cdef readonly long long rejected
    cdef readonly double basis
    cdef readonly double max_dispersion
    cdef readonly tuple source_names
    cdef readonly tuple stale_after_ns

    def __cinit__(self, *args, **kwargs):
        self._s = NULL
        self._n = 0

    def __dealloc__(self):
        if self._s != NULL:
            PyMem_Free(self._s)
            self._s = NULL

    def __init__(self, sources, *, basis_bps=0.0, max_dispersion_bps=20.0):
        """``sources``: name -> (weight, stale_after_ns)."""
        if not sources:
            raise ValueError("the aggregator needs at least one reference source")
        kept = [(n, float(w), int(s)) for n, (w, s) in sources.items() if w > 0]
        if not kept:
            raise ValueError("every reference source has weight 0")
        if len(kept) > 62:
            raise ValueError("the compiled aggregator takes at most 62 sources")
        if self._s != NULL:
            PyMem_Free(self._s)
            self._s = NULL
        self._s = <Src*>PyMem_Malloc(len(kept) * sizeof(Src))
        if self._s == NULL:
            raise MemoryError()
        self._n = len(kept)
        self._index = {}
        cdef Py_ssize_t i
        for i, (n, w, st) in enumerate(kept):
            self._index[n] = i
            self._s[i].weight = w
            self._s[i].stale_after = st
            self._s[i].stale_f = <double>st
            self._s[i].bid = self._s[i].ask = self._s[i].t_recv = 0
            self._s[i].flagged = False
            self._s[i].received = False
        self._total_weight = sum(w for _, w, _ in kept)    # the pure twin's sum, in its order
        self.basis = 1.0 + basis_bps / BPS
        self.max_dispersion = max_dispersion_bps / BPS
        self._inv4_disp = 1.0 / (4.0 * self.max_dispersion)
        names = [n for n, _, _ in kept]
        self.source_names = tuple(names)
        self.stale_after_ns = tuple(st for _, _, st in kept)
        self._names_of = tuple(tuple(n for j, n in enumerate(names) if m >> j & 1)
                               for m in range(1 << len(names)))
        self._last_mid_e8 = 0
        self._last_conf = 0.0
        self._last_used = 0
        self.last = _tnew(_FairPrice, (0, 0.0, 0.0, _EMPTY, 0, 0))
        self.rejected = 0

    def book(self, source):
        """What ``source`` last gave: (bid_e8, ask_e8, t_recv_ns, flagged stale, received at all)."""
        cdef Py_ssize_t i = self._index[source]
        return (self._s[i].bid, self._s[i].ask, self._s[i].t_recv, bool(self._s[i].flagged),
                bool(self._s[i].received))

    def update(self, source, long long bid_e8, long long ask_e8, long long t_recv_ns, long long now_ns,
               bint stale=False):
        """A new top of book from ``source``; returns the new fair price if it changed."""
        i_obj = self._index.get(source)
        if i_obj is None:
            raise KeyError(f"unknown reference source {source!r}")
        cdef Py_ssize_t i = i_obj
        if not stale and (bid_e8 <= 0 or ask_e8 <= 0 or bid_e8 >= ask_e8):
            self.rejected += 1
            stale = True   # a crossed or one-sided book is not a price
        cdef Src* s = &self._s[i]
        s.bid = bid_e8
        s.ask = ask_e8
        s.t_recv = t_recv_ns
        s.flagged = stale
        s.received = True
        return self._compute(now_ns)

    def on_timer(self, long long now_ns):
        """Age the sources; returns a new fair price when freshness changed it (e.g. a source died)."""
        return self._compute(now_ns)

    def current(self, long long now_ns):
        self._compute(now_ns)
        return self.last

    cdef object _compute(self, long long now_ns):
        cdef double wsum = 0.0, msum = 0.0, plain_w = 0.0, fsum = 0.0, tsum = 0.0
        cdef double lo = 0.0, hi = 0.0, mid, fresh, tight, w, k, inv4 = self._inv4_disp
        cdef unsigned long long used = 0
        cdef long long t_newest = 0, age
        cdef Py_ssize_t i
        cdef Src* s
        for i in range(self._n):
            s = &self._s[i]
            if not s.received or s.flagged:
                continue
            age = now_ns - s.t_recv
            if age > s.stale_after:
                continue
            mid = <double>(s.bid + s.ask) * 0.5
            fresh = 1.0 - 0.5 * <double>(age if age > 0 else 0) / s.stale_f
            tight = 1.0 - <double>(s.ask - s.bid) / mid * inv4
            if tight < 0.0:
                tight = 0.0
            w = s.weight
            k = w * fresh * (tight if tight > 1e-6 else 1e-6)
            wsum += k
            msum += mid * k
            plain_w += w
            fsum += w * fresh
            tsum += w * tight
            if used:
                lo = mid if mid < lo else lo
                hi = mid if mid > hi else hi
            else:
                lo = hi = mid
            used |= (<unsigned long long>1) << i
            if s.t_recv > t_newest:
                t_newest = s.t_recv
        cdef double mid_usd, coverage, agreement, conf
        cdef long long mid_e8
        if not used:
            if self._last_mid_e8 == 0 and self._last_conf == 0.0 and self._last_used == 0:
                return None
            fair = _tnew(_FairPrice, (0, 0.0, 0.0, _EMPTY, now_ns, 0))
            self._last_mid_e8 = 0
            self._last_conf = 0.0
        else:
            mid_usd = msum / wsum
            coverage = 0.5 + 0.5 * plain_w / self._total_weight
            agreement = 1.0 - (hi - lo) / mid_usd / self.max_dispersion
            if agreement < 0.0:
                agreement = 0.0
            conf = round3_c(coverage * (fsum / plain_w) * (tsum / plain_w) * agreement)
            mid_e8 = <long long>rint(mid_usd * self.basis)
            if mid_e8 == self._last_mid_e8 and conf == self._last_conf and used == self._last_used:
                return None
            fair = _tnew(_FairPrice, (mid_e8, <double>mid_e8 / E8F, conf, self._names_of[used], now_ns,
                                      t_newest))
            self._last_mid_e8 = mid_e8
            self._last_conf = conf
        self._last_used = used
        self.last = fair
        return fair
