# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled twin of the TrueX order builders in :mod:`fastmm.venues.truex.codec` (same bytes, same errors).

``new_order_single``, ``order_cancel_request`` and ``order_cancel_replace_request`` (each with the codec
first) are the ``*_py`` methods of :class:`TruexCodec`. The pure builders spend their time on two regular
expressions per ClOrdID, ``Scaled.text``'s ``divmod`` and formats, ``str.encode`` per field and the final
``%`` format; here the ids are checked and copied in C, prices and sizes are written from 64-bit integers
and the body is written once into the one bytes object returned. The checks run in the pure order with
the pure messages. Arguments of another type than exact str/int/None, numbers beyond 64 bits and increments
beyond 18 decimal places go to the pure twin, which builds the body or raises the same error.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from fastmm.fix._digits cimport _ndigits, _put_digits

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL

cdef long long LL_MAX = 9223372036854775807
cdef Py_ssize_t NUM_MAX = 48    # room for a scaled number: sign, 19 whole digits, ".", 18 fraction digits


cdef inline char* _put(char* p, const char* s, Py_ssize_t n) noexcept:
    memcpy(p, s, n)
    return p + n


cdef inline char* _putb(char* p, bytes b) noexcept:
    return _put(p, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef inline char* _tag(char* p, const char* t, Py_ssize_t n) noexcept:
    """``tag=`` (``t`` holds the tag digits and the "=")."""
    return _put(p, t, n)


cdef inline bint _hex(Py_UCS4 c) noexcept:
    return (48 <= c <= 57) or (97 <= c <= 102)


cdef bint _valid_id(str s):
    """``valid_cl_ord_id``: a lowercase UUIDv4 with hyphens, or 1..18 printable ASCII without "="."""
    cdef Py_ssize_t n = len(s)
    cdef Py_ssize_t i = 0
    cdef Py_UCS4 c
    if 1 <= n <= 18:
        for c in s:
            if c < 0x21 or c > 0x7e or c == 61:
                return False
        return True
    if n != 36:
        return False
    for c in s:
        if i == 8 or i == 13 or i == 18 or i == 23:
            if c != 45:
                return False
        elif i == 14:
            if c != 52:
                return False
        elif i == 19:
            if not (c == 56 or c == 57 or c == 97 or c == 98):
                return False
        elif not _hex(c):
            return False
        i += 1
    return True


cdef inline const char* _ascii(str s, Py_ssize_t* n) except NULL:
    """The characters of a valid (so ASCII) id, without a copy (CPython keeps ASCII text as UTF-8)."""
    return PyUnicode_AsUTF8AndSize(s, n)


cdef Py_ssize_t _scaled(char* out, object sc, long long n) except -2:
    """``Scaled.text(n)`` into ``out``; its length, or -1 when it needs more than 64 bits (pure then)."""
    cdef int ovf = 0
    cdef long long exp = PyLong_AsLongLongAndOverflow(sc._exp, &ovf)
    if ovf or exp < 0 or exp > 18:
        return -1
    cdef long long mult = PyLong_AsLongLongAndOverflow(sc._mult, &ovf)
    if ovf or mult <= 0 or n > LL_MAX // mult or n < -(LL_MAX // mult):
        return -1
    cdef long long v = n * mult
    cdef unsigned long long pw = 1
    cdef int i
    for i in range(exp):
        pw *= 10
    cdef bint neg = v < 0
    cdef unsigned long long av = <unsigned long long>(-v) if neg else <unsigned long long>v
    cdef unsigned long long whole = av // pw
    cdef unsigned long long frac = av % pw
    cdef char* p = out
    if neg:
        p[0] = 45   # "-"
        p += 1
    p = _put_digits(p, whole, _ndigits(whole))
    cdef int fd = <int>exp
    if frac:
        while frac % 10 == 0:   # strip the fraction's trailing zeros
            frac //= 10
            fd -= 1
        p[0] = 46   # "."
        p = _put_digits(p + 1, frac, fd)
    return p - out


cdef inline bint _small(object v, long long* out):
    """An exact int within 64 bits, into ``out``."""
    cdef int ovf = 0
    if type(v) is not int:
        return False
    out[0] = PyLong_AsLongLongAndOverflow(v, &ovf)
    return not ovf


cdef inline bytes _parties(codec):
    cdef bytes parties = codec._parties
    if not parties:
        raise ValueError("TrueX orders need the client id (FASTMM_TRUEX_CLIENT_ID) for Parties 448")
    return parties


def new_order_single(codec, cl_ord_id, side, qty_lots, price_ticks, ord_type="2", tif="1", smp=None):
    """:meth:`TruexCodec.new_order_single_py`: 11, Parties, 55, 167, 54, 40, 38[, 44], 59[, 18][, 2964]."""
    cdef long long q = 0, px = 0, sm = 0
    if not (type(cl_ord_id) is str and type(side) is str and type(ord_type) is str and type(tif) is str
            and _small(qty_lots, &q) and (price_ticks is None or _small(price_ticks, &px))
            and (smp is None or _small(smp, &sm))):
        return codec.new_order_single_py(cl_ord_id, side, qty_lots, price_ticks, ord_type, tif, smp)
    if not _valid_id(cl_ord_id):
        raise ValueError(f"ClOrdID {cl_ord_id!r} is not a lowercase UUIDv4 or <= 18 ASCII characters")
    if not ((side == "1" or side == "2") and (ord_type == "2" or ord_type == "1")
            and (tif == "1" or tif == "3")):
        raise ValueError(f"bad side/ord_type/tif {side!r}/{ord_type!r}/{tif!r}")
    if q <= 0:
        raise ValueError("quantity must be positive")
    cdef bint limit = ord_type == "2"
    if limit and (price_ticks is None or px <= 0):
        raise ValueError("a limit order needs a positive price")
    cdef char qbuf[48]
    cdef char pbuf[48]
    cdef Py_ssize_t ql = _scaled(qbuf, codec.qty, q)
    cdef Py_ssize_t pl = _scaled(pbuf, codec.px, px) if limit else 0
    if ql < 0 or pl < 0:
        return codec.new_order_single_py(cl_ord_id, side, qty_lots, price_ticks, ord_type, tif, smp)
    cdef bytes parties = _parties(codec)
    cdef bytes instr = codec._instr
    cdef bytes exec_inst = codec._exec_inst
    cdef Py_ssize_t idl
    cdef const char* idp = _ascii(cl_ord_id, &idl)
    cdef bint has_smp = smp is not None
    cdef bint smp_neg = sm < 0
    cdef unsigned long long usm = <unsigned long long>(-(sm + 1)) + 1 if smp_neg else <unsigned long long>sm
    cdef int smd = _ndigits(usm)
    cdef Py_ssize_t n = (3 + idl + 1 + PyBytes_GET_SIZE(parties) + PyBytes_GET_SIZE(instr) + 5 + 5
                         + 3 + ql + 1 + (4 + pl if limit else 0) + 5 + PyBytes_GET_SIZE(exec_inst)
                         + (5 + smp_neg + smd + 1 if has_smp else 0))
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef char* p = PyBytes_AS_STRING(out)
    p = _tag(p, "11=", 3)
    p = _put(p, idp, idl)
    p[0] = 1
    p = _putb(p + 1, parties)
    p = _putb(p, instr)
    p = _tag(p, "54=", 3)
    p[0] = 49 if side == "1" else 50
    p[1] = 1
    p = _tag(p + 2, "40=", 3)
    p[0] = 50 if limit else 49
    p[1] = 1
    p = _tag(p + 2, "38=", 3)
    p = _put(p, qbuf, ql)
    p[0] = 1
    p += 1
    if limit:
        p = _tag(p, "44=", 3)
        p = _put(p, pbuf, pl)
        p[0] = 1
        p += 1
    p = _tag(p, "59=", 3)
    p[0] = 49 if tif == "1" else 51
    p[1] = 1
    p = _putb(p + 2, exec_inst)
    if has_smp:
        p = _tag(p, "2964=", 5)
        if smp_neg:
            p[0] = 45
            p += 1
        p = _put_digits(p, usm, smd)
        p[0] = 1
    return out


def order_cancel_request(codec, cl_ord_id, orig_cl_ord_id):
    """:meth:`TruexCodec.order_cancel_request_py`: 41, 11, Parties."""
    if not (type(cl_ord_id) is str and type(orig_cl_ord_id) is str):
        return codec.order_cancel_request_py(cl_ord_id, orig_cl_ord_id)
    if not (_valid_id(cl_ord_id) and _valid_id(orig_cl_ord_id)):
        raise ValueError("ClOrdID/OrigClOrdID must be a lowercase UUIDv4 or <= 18 ASCII characters")
    cdef Py_ssize_t idl, ol
    cdef const char* idp = _ascii(cl_ord_id, &idl)
    cdef const char* op = _ascii(orig_cl_ord_id, &ol)
    cdef bytes parties = _parties(codec)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 3 + ol + 1 + 3 + idl + 1 + PyBytes_GET_SIZE(parties))
    cdef char* p = PyBytes_AS_STRING(out)
    p = _tag(p, "41=", 3)
    p = _put(p, op, ol)
    p[0] = 1
    p = _tag(p + 1, "11=", 3)
    p = _put(p, idp, idl)
    p[0] = 1
    _putb(p + 1, parties)
    return out


def order_cancel_replace_request(codec, cl_ord_id, orig_cl_ord_id, qty_lots, price_ticks, ord_type="2"):
    """:meth:`TruexCodec.order_cancel_replace_request_py`: Parties, 41, 11, 40, 38, 44."""
    cdef long long q = 0, px = 0
    if not (type(cl_ord_id) is str and type(orig_cl_ord_id) is str and type(ord_type) is str
            and _small(qty_lots, &q) and _small(price_ticks, &px)):
        return codec.order_cancel_replace_request_py(cl_ord_id, orig_cl_ord_id, qty_lots, price_ticks,
                                                     ord_type)
    if not (_valid_id(cl_ord_id) and _valid_id(orig_cl_ord_id)):
        raise ValueError("ClOrdID/OrigClOrdID must be a lowercase UUIDv4 or <= 18 ASCII characters")
    if q <= 0 or px <= 0 or ord_type != "2":
        raise ValueError("a replace needs a positive quantity and price, limit orders only")
    cdef char qbuf[48]
    cdef char pbuf[48]
    cdef Py_ssize_t ql = _scaled(qbuf, codec.qty, q)
    cdef Py_ssize_t pl = _scaled(pbuf, codec.px, px)
    if ql < 0 or pl < 0:
        return codec.order_cancel_replace_request_py(cl_ord_id, orig_cl_ord_id, qty_lots, price_ticks,
                                                     ord_type)
    cdef bytes parties = _parties(codec)
    cdef Py_ssize_t idl, ol
    cdef const char* idp = _ascii(cl_ord_id, &idl)
    cdef const char* op = _ascii(orig_cl_ord_id, &ol)
    cdef bytes out = PyBytes_FromStringAndSize(
        NULL, PyBytes_GET_SIZE(parties) + 3 + ol + 1 + 3 + idl + 1 + 5 + 3 + ql + 1 + 3 + pl + 1)
    cdef char* p = _putb(PyBytes_AS_STRING(out), parties)
    p = _tag(p, "41=", 3)
    p = _put(p, op, ol)
    p[0] = 1
    p = _tag(p + 1, "11=", 3)
    p = _put(p, idp, idl)
    p = _tag(p, "\x0140=2\x0138=", 9)
    p = _put(p, qbuf, ql)
    p = _tag(p, "\x0144=", 4)
    p = _put(p, pbuf, pl)
    p[0] = 1
    return out
