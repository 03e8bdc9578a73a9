# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled twin of the TrueX hot-message parsers in :mod:`fastmm.venues.truex.codec`.

``execution_report(codec, msg)`` is :meth:`TruexCodec.execution_report_py` and ``md_incremental(codec,
msg)`` is :meth:`TruexCodec.md_incremental_py`: the same records (equal field by field) and, on bad
input, the same :class:`~fastmm.fix.session.RejectMessage` (reason, RefTagID and text) raised at the same
point. The pure parsers spend their time on a dict of all fields, a Python call per value, the timestamp
arithmetic and the frozen dataclass's ``object.__setattr__`` per field; here one pass over the fields keeps
the last value of each tag the record reads, numbers and timestamps of the usual shape are read in C, and
the record's slots are filled directly. Anything of an unusual shape (a timestamp without 0/3/6/9
fractional digits, a number text the price/lot cache has not seen, a field that is not an ``(int,
bytes)`` pair) goes to the pure code, which accepts it or raises the same error.
"""

from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

cdef extern from "Python.h":
    int PyObject_GenericSetAttr(object o, object name, object value) except -1
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)
    long PyLong_AsLong(PyObject* o) except? -1

# RejectMessage reasons (fastmm.fix.codec.REJ_*)
from fastmm.fix._codes cimport REJ_DATA_FORMAT, REJ_GROUP_COUNT, REJ_REQUIRED_TAG_MISSING, REJ_VALUE_INCORRECT

cdef object _Reject = None
cdef object _ER = None
cdef object _MDI = None
cdef object _MDEntry = None
cdef object _MiscFee = None
cdef object _Decimal = None
cdef object _parse_ts = None
cdef object _new = object.__new__
cdef object _tuple_new = tuple.__new__
cdef tuple _ER_NAMES = ()
cdef tuple _MDI_NAMES = ()
cdef dict _FEES = {}   # MiscFeeAmt text -> Decimal (immutable, so shared); bounded
cdef Py_ssize_t _FEES_MAX = 256

# the tags an ExecutionReport reads -> slot in the per-message array (last value wins, like dict())
cdef enum:
    ER_N = 22
cdef int[ER_N] _ER_TAGS = [37, 11, 41, 17, 150, 39, 54, 40, 44, 38, 31, 32, 151, 14, 6, 59, 60, 58, 851, 136,
                           880, 448]
cdef signed char _ER_SLOT[1024]
# the tags an MD entry reads after its delimiter 279
cdef enum:
    E_N = 7
cdef int[E_N] _E_TAGS = [269, 270, 271, 273, 1023, 2446, 278]
cdef signed char _E_SLOT[2447]

cdef long long[10] _SCALE = [1000000000, 100000000, 10000000, 1000000, 100000, 10000, 1000, 100, 10, 1]
cdef int[13] _DIM = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


cdef void _init() except *:
    global _Reject, _ER, _MDI, _MDEntry, _MiscFee, _Decimal, _parse_ts, _ER_NAMES, _MDI_NAMES
    from decimal import Decimal
    from fastmm.fix.codec import parse_timestamp
    from fastmm.fix.session import RejectMessage
    from fastmm.venues.truex import codec
    cdef int i
    for i in range(1024):
        _ER_SLOT[i] = -1
    for i in range(ER_N):
        _ER_SLOT[_ER_TAGS[i]] = i
    for i in range(2447):
        _E_SLOT[i] = -1
    for i in range(E_N):
        _E_SLOT[_E_TAGS[i]] = i
    _ER_NAMES = tuple(codec.ExecutionReport.__dataclass_fields__)
    _MDI_NAMES = tuple(codec.MarketDataIncremental.__dataclass_fields__)
    if len(_ER_NAMES) != 24 or _MDI_NAMES != ("seq", "md_req_id", "entries"):
        raise ImportError("the TrueX records changed: update _decode_fast.pyx")
    _Reject, _ER, _MDI, _MDEntry, _MiscFee = (RejectMessage, codec.ExecutionReport, codec.MarketDataIncremental,
                                              codec.MDEntry, codec.MiscFee)
    _Decimal, _parse_ts = Decimal, parse_timestamp


cdef inline str _s(PyObject* v):
    """codec._s: ASCII text ("replace" errors), "" when absent or empty."""
    if v == NULL:
        return ""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(<object>v)
    if n == 0:
        return ""
    return PyUnicode_DecodeASCII(PyBytes_AS_STRING(<object>v), n, "replace")


cdef inline bint _digits_ok(const unsigned char* p, Py_ssize_t a, Py_ssize_t b):
    cdef Py_ssize_t i
    if b <= a:
        return False
    for i in range(a, b):
        if p[i] < 48 or p[i] > 57:
            return False
    return True


cdef inline long long _num(const unsigned char* p, Py_ssize_t a, Py_ssize_t b):
    cdef long long v = 0
    cdef Py_ssize_t i
    for i in range(a, b):
        v = v * 10 + (p[i] - 48)
    return v


cdef object _timestamp(bytes b):
    """codec.parse_timestamp for 17, 21, 24 or 27 bytes of the plain shape; anything else (or out of
    range) goes to the pure function, which accepts it or raises its ValueError."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    cdef int digits = <int>(n - 18) if n > 17 else 0
    cdef long long y, mo, d, h, mi, s, era, yoe, doy, doe, days, frac = 0
    if not (n == 17 or n == 21 or n == 24 or n == 27):
        return _parse_ts(b)
    if p[8] != 45 or p[11] != 58 or p[14] != 58 or (n > 17 and p[17] != 46):
        return _parse_ts(b)
    if not (_digits_ok(p, 0, 8) and _digits_ok(p, 9, 11) and _digits_ok(p, 12, 14) and _digits_ok(p, 15, 17)
            and (n == 17 or _digits_ok(p, 18, n))):
        return _parse_ts(b)
    y, mo, d = _num(p, 0, 4), _num(p, 4, 6), _num(p, 6, 8)
    h, mi, s = _num(p, 9, 11), _num(p, 12, 14), _num(p, 15, 17)
    if y < 1:  # year 0000: the pure arithmetic floors a negative year; leave it to the pure function
        return _parse_ts(b)
    if not (1 <= mo <= 12 and 1 <= d <= _DIM[mo] and h < 24 and mi < 60 and s <= 60):
        return _parse_ts(b)
    if mo == 2 and d == 29 and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        return _parse_ts(b)
    if n > 17:
        frac = _num(p, 18, n) * _SCALE[digits]
    # _days_from_civil; y >= 0 after the adjustment, so C division is floor division
    y -= mo <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return (days * 86400 + h * 3600 + mi * 60 + s) * 1000000000 + frac


cdef object _scaled(object sc, PyObject* v, int tag, str mt, str what):
    """Scaled.parse through its cache (a miss calls the method, which fills the cache or raises)."""
    cdef PyObject* hit
    if v == NULL:
        return 0
    hit = PyDict_GetItem(sc._cache, <object>v)
    if hit != NULL:
        return <object>hit
    try:
        return sc.parse(<object>v)
    except ValueError as e:
        if what is None:
            raise _Reject(REJ_VALUE_INCORRECT, tag, f"35={mt} tag {tag}: {e}") from None
        raise _Reject(REJ_VALUE_INCORRECT, 270, f"35={mt} entry: {e}") from None


cdef object _int(PyObject* v, int tag, long default):
    """codec._int."""
    if v == NULL:
        return default
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(<object>v)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(<object>v)
    cdef Py_ssize_t a = 1 if n > 0 and p[0] == 45 else 0
    if n > 18 or not _digits_ok(p, a, n):
        raise _Reject(REJ_DATA_FORMAT, tag, f"tag {tag} is not an integer")
    return -_num(p, 1, n) if a else _num(p, 0, n)


cdef inline bint _pairs_ok(list fields):
    """Every field an (int, bytes) pair, as the parser makes them (else the pure twin runs)."""
    cdef Py_ssize_t i
    cdef object f
    for i in range(PyList_GET_SIZE(fields)):
        f = <object>PyList_GET_ITEM(fields, i)
        if type(f) is not tuple or PyTuple_GET_SIZE(f) != 2:
            return False
        if type(<object>PyTuple_GET_ITEM(f, 0)) is not int or type(<object>PyTuple_GET_ITEM(f, 1)) is not bytes:
            return False
    return True


cdef inline long _tag(object f):
    """The tag of a checked pair, or -1 when it does not fit a C long."""
    cdef object t = <object>PyTuple_GET_ITEM(f, 0)
    try:
        return PyLong_AsLong(<PyObject*>t)
    except OverflowError:
        return -1


cdef object _fees(list fields):
    """TruexCodec._fees, or None when a MiscFeeAmt needs the pure one (which raises)."""
    cdef list out = []
    cdef Py_ssize_t i, k
    cdef long t
    cdef object f, v, amount
    cdef PyObject* hit
    for i in range(PyList_GET_SIZE(fields)):
        f = <object>PyList_GET_ITEM(fields, i)
        t = _tag(f)
        if t == 137:
            v = <object>PyTuple_GET_ITEM(f, 1)
            hit = PyDict_GetItem(_FEES, v)
            if hit != NULL:
                amount = <object>hit
            else:
                try:
                    amount = _Decimal(v.decode("ascii"))
                except Exception:
                    return None
                if not amount.is_finite():
                    return None
                if len(_FEES) >= _FEES_MAX:
                    _FEES.clear()
                _FEES[v] = amount
            out.append(_tuple_new(_MiscFee, (amount, "")))
        elif t == 139 and out:
            v = <object>PyTuple_GET_ITEM(f, 1)
            k = len(out) - 1  # no negative index: wraparound is off
            out[k] = _tuple_new(_MiscFee, (out[k][0], _s(<PyObject*>v)))
    return tuple(out)


def execution_report(self, msg):
    """TruexCodec.execution_report_py, compiled (``self`` is the TruexCodec)."""
    if _ER is None:
        _init()
    cdef list fields = msg.fields
    if type(fields) is not list or not _pairs_ok(fields):
        return self.execution_report_py(msg)
    cdef PyObject* vals[ER_N]
    cdef Py_ssize_t i
    cdef long t
    cdef object f
    for i in range(ER_N):
        vals[i] = NULL
    for i in range(PyList_GET_SIZE(fields)):
        f = <object>PyList_GET_ITEM(fields, i)
        t = _tag(f)
        if 0 <= t < 1024 and _ER_SLOT[t] >= 0:
            vals[_ER_SLOT[t]] = PyTuple_GET_ITEM(f, 1)
    # required: 37, 17, 150, 39, 54, 151, 14 (slots 0, 3, 4, 5, 6, 12, 13), in the pure twin's order
    for i in (0, 3, 4, 5, 6, 12, 13):
        if vals[i] == NULL:
            raise _Reject(REJ_REQUIRED_TAG_MISSING, _ER_TAGS[i],
                          f"required tag {_ER_TAGS[i]} missing in 35=8")
    fees = ()
    if vals[19] != NULL:  # 136
        fees = _fees(fields)
        if fees is None:
            fees = self._fees(msg)
    cdef object t_ns = 0
    if vals[16] != NULL and PyBytes_GET_SIZE(<object>vals[16]):  # 60
        try:
            t_ns = _timestamp(<bytes>vals[16])
        except ValueError as e:
            raise _Reject(REJ_DATA_FORMAT, 60, f"35=8 TransactTime: {e}") from None
    px, qty = self.px, self.qty
    values = (msg.seq, msg.poss_dup, _s(vals[0]), _s(vals[1]), _s(vals[2]), _s(vals[3]), _s(vals[4]),
              _s(vals[5]), _s(vals[6]), _s(vals[7]), _scaled(px, vals[8], 44, "8", None),
              _scaled(qty, vals[9], 38, "8", None), _scaled(px, vals[10], 31, "8", None),
              _scaled(qty, vals[11], 32, "8", None), _scaled(qty, vals[12], 151, "8", None),
              _scaled(qty, vals[13], 14, "8", None), _s(vals[14]), _s(vals[15]), t_ns, _s(vals[17]),
              _int(vals[18], 851, 0), fees, _s(vals[20]), _s(vals[21]))
    rec = _new(_ER)
    for i in range(24):
        PyObject_GenericSetAttr(rec, <object>PyTuple_GET_ITEM(_ER_NAMES, i), <object>PyTuple_GET_ITEM(values, i))
    return rec


cdef object _entry(PyObject** e, object px, object qty):
    """TruexCodec._entry for 35=X: e holds 279 then the slots of _E_TAGS."""
    # e[0] = 279, e[1 + k] = _E_TAGS[k]: 269, 270, 271, 273, 1023, 2446, 278
    cdef object t_ns = 0
    if e[1] == NULL and not (e[0] != NULL and PyBytes_GET_SIZE(<object>e[0]) == 1
                             and PyBytes_AS_STRING(<object>e[0])[0] == 50):
        raise _Reject(REJ_REQUIRED_TAG_MISSING, 269, "MDEntryType missing in 35=X entry")
    if e[4] != NULL and PyBytes_GET_SIZE(<object>e[4]):
        try:
            t_ns = _timestamp(<bytes>e[4])
        except ValueError:
            t_ns = 0
    price = _scaled(px, e[2], 270, "X", "entry")
    size = _scaled(qty, e[3], 271, "X", "entry")
    return _tuple_new(_MDEntry, (_s(e[1]), price, size, _int(e[5], 1023, 0), t_ns, _s(e[6]), _s(e[0]),
                                 _s(e[7])))


def md_incremental(self, msg):
    """TruexCodec.md_incremental_py, compiled (``self`` is the TruexCodec)."""
    if _ER is None:
        _init()
    cdef list fields = msg.fields
    if type(fields) is not list or not _pairs_ok(fields):
        return self.md_incremental_py(msg)
    cdef PyObject* e[E_N + 1]
    cdef bint open_entry = False
    cdef Py_ssize_t i, k
    cdef long t
    cdef long long count = -1
    cdef object f, v
    cdef list entries = []
    cdef const unsigned char* p
    cdef Py_ssize_t n
    md_req_id = ""
    px, qty = self.px, self.qty
    for i in range(PyList_GET_SIZE(fields)):
        f = <object>PyList_GET_ITEM(fields, i)
        t = _tag(f)
        if t == 268:
            v = <object>PyTuple_GET_ITEM(f, 1)
            p = <const unsigned char*>PyBytes_AS_STRING(v)
            n = PyBytes_GET_SIZE(v)
            if n > 6 or not _digits_ok(p, 0, n):
                raise _Reject(REJ_DATA_FORMAT, 268, "NoMDEntries is not a number")
            count = _num(p, 0, n)
        elif count < 0:
            if t == 262:
                md_req_id = _s(PyTuple_GET_ITEM(f, 1))
        elif t == 279:
            if open_entry:
                entries.append(_entry(e, px, qty))
            open_entry = True
            e[0] = PyTuple_GET_ITEM(f, 1)
            for k in range(1, E_N + 1):
                e[k] = NULL
        elif open_entry and 0 <= t < 2447 and _E_SLOT[t] >= 0:
            e[1 + _E_SLOT[t]] = PyTuple_GET_ITEM(f, 1)
    if open_entry:
        entries.append(_entry(e, px, qty))
    if count < 0:
        raise _Reject(REJ_REQUIRED_TAG_MISSING, 268, "NoMDEntries missing in 35=X")
    if count != len(entries):
        raise _Reject(REJ_GROUP_COUNT, 268, f"NoMDEntries {count} but {len(entries)} entries")
    rec = _new(_MDI)
    PyObject_GenericSetAttr(rec, "seq", msg.seq)
    PyObject_GenericSetAttr(rec, "md_req_id", md_req_id)
    PyObject_GenericSetAttr(rec, "entries", tuple(entries))
    return rec
