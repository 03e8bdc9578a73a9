# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled twin of the outbound FIX framing in :mod:`fastmm.fix.codec` (same contract, same bytes).

``encode(enc, msg_type, seq, sending_time, body, extra_header)`` is :meth:`Encoder.encode_py`. The pure
one makes three bytes objects (the ``%`` formats of the middle, the head and the trailer) and sums the
frame in a Python-level ``sum`` over an iterator of ints; here the frame's length is known up front, so it
is written once into the one bytes object returned and summed in C while it is written. Arguments of any
other type than exact bytes and int (or a MsgSeqNum beyond 64 bits) go to the pure twin, which frames
them or raises the same error.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from fastmm.fix._digits cimport _ndigits, _put_digits

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1


cdef inline char* _put(char* p, bytes b) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    memcpy(p, PyBytes_AS_STRING(b), n)
    return p + n


def encode(enc, msg_type, seq, sending_time, body=b"", extra_header=b""):
    """:meth:`Encoder.encode_py` in one pass: one whole frame, 8 9 35 49 56 34 52 [extra] body 10."""
    if not (type(msg_type) is bytes and type(seq) is int and type(sending_time) is bytes
            and type(body) is bytes and type(extra_header) is bytes):
        return enc.encode_py(msg_type, seq, sending_time, body, extra_header)
    cdef int ovf = 0
    cdef long long s = PyLong_AsLongLongAndOverflow(seq, &ovf)
    if ovf:
        return enc.encode_py(msg_type, seq, sending_time, body, extra_header)
    cdef bytes head = enc._head
    cdef bytes ids = enc._ids
    cdef bint neg = s < 0
    cdef unsigned long long us = <unsigned long long>(-(s + 1)) + 1 if neg else <unsigned long long>s
    cdef int nseq = _ndigits(us)
    # 35=<type><ids><seq>\x0152=<time>\x01<extra><body>
    cdef Py_ssize_t mid = (3 + PyBytes_GET_SIZE(msg_type) + PyBytes_GET_SIZE(ids) + neg + nseq + 4
                           + PyBytes_GET_SIZE(sending_time) + 1 + PyBytes_GET_SIZE(extra_header)
                           + PyBytes_GET_SIZE(body))
    cdef int nlen = _ndigits(<unsigned long long>mid)
    cdef Py_ssize_t before = PyBytes_GET_SIZE(head) + nlen + 1 + mid
    cdef bytes out = PyBytes_FromStringAndSize(NULL, before + 7)
    cdef char* start = PyBytes_AS_STRING(out)
    cdef char* p = _put(start, head)
    p = _put_digits(p, <unsigned long long>mid, nlen)
    p[0] = 1
    p[1] = 51   # "3"
    p[2] = 53   # "5"
    p[3] = 61   # "="
    p = _put(p + 4, msg_type)
    p = _put(p, ids)
    if neg:
        p[0] = 45   # "-"
        p += 1
    p = _put_digits(p, us, nseq)
    p[0] = 1
    p[1] = 53   # "5"
    p[2] = 50   # "2"
    p[3] = 61   # "="
    p = _put(p + 4, sending_time)
    p[0] = 1
    p = _put(p + 1, extra_header)
    p = _put(p, body)
    cdef unsigned int total = 0
    cdef const unsigned char* u = <const unsigned char*>start
    cdef Py_ssize_t i
    for i in range(before):
        total += u[i]
    p[0] = 49   # "1"
    p[1] = 48   # "0"
    p[2] = 61   # "="
    _put_digits(p + 3, total & 255, 3)
    p[6] = 1
    return out
