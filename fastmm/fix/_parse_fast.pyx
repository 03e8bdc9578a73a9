# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled twin of the inbound FIX parse in :mod:`fastmm.fix.codec` (same contract, same results).

``feed(parser, data)`` is :meth:`FrameParser.feed_py` and ``parse_message`` is ``parse_message_py``:
the same frames, the same :class:`Garbled` items with the same reasons and details, the same
:class:`Message` objects (fields, header values, ``error``) and the same state left in the parser.
The pure code spends most of its time on per-field Python steps (``split``, ``partition``, a dict lookup
for the tag, a tuple); here the frame is scanned once in C and only the result objects are made.

When the parser's buffer is empty (the usual case: a read holds whole frames) the frames are read from
``data`` itself and only an incomplete tail is copied into the buffer.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_Append, PyList_GET_ITEM
from libc.string cimport memchr

# the limits and SessionRejectReason values the pure parse uses (codec._MAX_BEGIN ..., codec.REJ_*);
# tags below TAG_CACHE come from one list of ints (codec._TAG_CACHE)
from fastmm.fix._codes cimport (MAX_BEGIN, MAX_LEN_DIGITS, MAX_TAG_DIGITS, REJ_INVALID_TAG, REJ_OUT_OF_ORDER,
                                REJ_TAG_WITHOUT_VALUE, SYNC_LEN, TAG_CACHE)

cdef list _TAGS = list(range(TAG_CACHE))
cdef bint _HEADER[1130]
cdef int _MAX_HEADER = 1129

cdef object _Message = None
cdef object _Garbled = None
cdef object _new = object.__new__


cdef void _init() except *:
    """The record classes and header tags of the pure module (imported on first use: the pure module
    imports this one while it is being initialised)."""
    global _Message, _Garbled, _MAX_HEADER
    from fastmm.fix import codec
    cdef int t
    for t in range(1130):
        _HEADER[t] = False
    for t in codec.HEADER_TAGS:
        if t > 1129:
            raise ValueError("HEADER_TAGS holds a tag above 1129: widen _HEADER")
        _HEADER[t] = True
    _Message = codec.Message
    _Garbled = codec.Garbled


cdef inline bint _is_header(long tag):
    return 0 <= tag <= 1129 and _HEADER[tag]


cdef inline Py_ssize_t _find_soh(const unsigned char* p, Py_ssize_t start, Py_ssize_t stop):
    """First SOH in p[start:stop], or -1."""
    if stop <= start:
        return -1
    cdef const unsigned char* q = <const unsigned char*>memchr(p + start, 1, stop - start)
    return -1 if q == NULL else q - p


cdef inline Py_ssize_t _find_sync(const unsigned char* p, Py_ssize_t start, Py_ssize_t n):
    """First b"8=FIX" in p[start:n], or -1."""
    cdef const unsigned char* q
    while n - start >= SYNC_LEN:
        q = <const unsigned char*>memchr(p + start, 56, n - start - SYNC_LEN + 1)
        if q == NULL:
            return -1
        if q[1] == 61 and q[2] == 70 and q[3] == 73 and q[4] == 88:  # "=FIX"
            return q - p
        start = q - p + 1
    return -1


cdef inline bint _all_digits(const unsigned char* p, Py_ssize_t a, Py_ssize_t b):
    """bytes.isdigit() of p[a:b] (False when empty)."""
    if b <= a:
        return False
    cdef Py_ssize_t i
    for i in range(a, b):
        if p[i] < 48 or p[i] > 57:
            return False
    return True


cdef inline long long _digits(const unsigned char* p, Py_ssize_t a, Py_ssize_t b):
    cdef long long v = 0
    cdef Py_ssize_t i
    for i in range(a, b):
        v = v * 10 + (p[i] - 48)
    return v


def parse_message(bytes raw, Py_ssize_t body_start, Py_ssize_t checksum_at):
    """:func:`fastmm.fix.codec.parse_message_py`, compiled."""
    if _Message is None:
        _init()
    return _parse(raw, body_start, checksum_at)


cdef object _parse(bytes raw, Py_ssize_t body_start, Py_ssize_t checksum_at):
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef Py_ssize_t soh = _find_soh(p, 0, n)
    if soh < 0:
        raise ValueError("subsection not found")  # bytes.index's error
    cdef list fields = []
    cdef bytes begin = PyBytes_FromStringAndSize(<const char*>p + 2, soh - 2) if soh > 2 else b""
    fields.append((8, begin))
    cdef Py_ssize_t b9 = soh + 3, e9 = body_start - 1
    fields.append((9, PyBytes_FromStringAndSize(<const char*>p + b9, e9 - b9) if e9 > b9 else b""))
    msg = _new(_Message)
    msg.raw = raw
    msg.fields = fields
    msg.begin_string = begin
    msg.sender = b""
    msg.target = b""
    msg.sending_time = b""
    msg.orig_sending_time = None
    cdef object msg_type = b""
    cdef long long seq = 0
    cdef bint poss_dup = False
    cdef bint in_header = True
    cdef object error = None
    cdef Py_ssize_t pos = body_start, end = checksum_at - 1, q, eq, i
    cdef long tag
    cdef bint cached, sep
    cdef bytes v
    while True:
        q = _find_soh(p, pos, end)
        if q < 0:
            q = end
        # the tag: digits up to "=" (or the whole part when there is no "=")
        eq = pos
        while eq < q and p[eq] != 61:
            eq += 1
        sep = eq < q
        tag = -1
        if 0 < eq - pos <= MAX_TAG_DIGITS and p[pos] != 48 and _all_digits(p, pos, eq):
            tag = <long>_digits(p, pos, eq)
        cached = 0 < tag < TAG_CACHE
        if not cached and (tag < 0 or not sep) and error is None:
            t = PyBytes_FromStringAndSize(<const char*>p + pos, min(eq - pos, 16))
            error = (REJ_INVALID_TAG, 0, f"invalid tag {t!r}")
        if sep and q > eq + 1:
            v = PyBytes_FromStringAndSize(<const char*>p + eq + 1, q - eq - 1)
        else:
            v = b""
        if in_header:
            if _is_header(tag):
                if tag == 35:
                    msg_type = v
                elif tag == 34:
                    i = q - eq - 1
                    seq = _digits(p, eq + 1, q) if sep and i <= 18 and _all_digits(p, eq + 1, q) else 0
                elif tag == 49:
                    msg.sender = v
                elif tag == 56:
                    msg.target = v
                elif tag == 52:
                    msg.sending_time = v
                elif tag == 43:
                    poss_dup = q - eq - 1 == 1 and p[eq + 1] == 89  # b"Y"
                elif tag == 122:
                    msg.orig_sending_time = v
            else:
                in_header = False
        elif _is_header(tag) and error is None:
            error = (REJ_OUT_OF_ORDER, tag, f"header tag {tag} after the body")
        if error is None and tag > 0 and not v:
            error = (REJ_TAG_WITHOUT_VALUE, tag, f"tag {tag} without a value")
        if 0 <= tag < TAG_CACHE:
            PyList_Append(fields, (<object>PyList_GET_ITEM(_TAGS, tag), v))
        else:
            PyList_Append(fields, (tag, v))
        if q >= end:
            break
        pos = q + 1
    fields.append((10, raw[checksum_at + 3:checksum_at + 6]))
    msg.msg_type = msg_type
    msg.seq = seq
    msg.poss_dup = poss_dup
    msg.error = error
    return msg


def feed(self, data):
    """:meth:`fastmm.fix.codec.FrameParser.feed_py`, compiled (``self`` is the FrameParser)."""
    if _Message is None:
        _init()
    cdef bytearray buf = self._buf
    cdef Py_ssize_t max_frame = self.max_frame
    cdef bint in_junk = self._in_junk
    cdef bint direct = PyByteArray_GET_SIZE(buf) == 0 and type(data) is bytes
    cdef const unsigned char* p
    cdef Py_ssize_t n
    if direct:
        p = <const unsigned char*>PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
    else:
        buf += data
        p = <const unsigned char*>PyByteArray_AS_STRING(buf)
        n = PyByteArray_GET_SIZE(buf)
    cdef list out = []
    cdef Py_ssize_t pos = 0, j, keep, soh1, soh2, body, cs_at, end, k
    cdef long long blen
    cdef unsigned int got, want
    cdef bytes raw
    while n - pos >= 2:
        if p[pos] != 56 or p[pos + 1] != 61:  # not "8=": resynchronise on the next "8=FIX"
            j = _find_sync(p, pos, n)
            if j < 0:
                keep = max(pos, n - (SYNC_LEN - 1))
                if keep - pos > 0:
                    if not in_junk:
                        out.append(_Garbled("junk", "bytes before BeginString (8=)", keep - pos))
                    in_junk = True
                pos = keep
                break
            if j - pos > 0:
                if not in_junk:
                    out.append(_Garbled("junk", "bytes before BeginString (8=)", j - pos))
                in_junk = True
            pos = j
            continue
        in_junk = False
        soh1 = _find_soh(p, pos, min(n, pos + MAX_BEGIN))
        if soh1 < 0:
            if n - pos >= MAX_BEGIN:
                pos = _skip(p, n, out, pos, "BeginString", "no SOH after BeginString", &in_junk)
                continue
            break
        if n < soh1 + 3:
            break
        if p[soh1 + 1] != 57 or p[soh1 + 2] != 61:  # "9="
            pos = _skip(p, n, out, pos, "BodyLength", "BodyLength (9) is not the second field", &in_junk)
            continue
        soh2 = _find_soh(p, soh1 + 3, min(n, soh1 + 4 + MAX_LEN_DIGITS))
        if soh2 < 0:
            if n - soh1 > 3 + MAX_LEN_DIGITS:
                pos = _skip(p, n, out, pos, "BodyLength", "BodyLength has no SOH or too many digits",
                            &in_junk)
                continue
            break
        if not _all_digits(p, soh1 + 3, soh2):
            text = PyBytes_FromStringAndSize(<const char*>p + soh1 + 3, min(soh2 - soh1 - 3, 12))
            pos = _skip(p, n, out, pos, "BodyLength", f"BodyLength {text!r} is not a number", &in_junk)
            continue
        blen = _digits(p, soh1 + 3, soh2)
        if blen > max_frame:
            pos = _skip(p, n, out, pos, "frame too large", f"BodyLength {blen} > max {max_frame}", &in_junk)
            continue
        body = soh2 + 1
        cs_at = body + <Py_ssize_t>blen
        end = cs_at + 7
        if n < end:
            break
        if (p[cs_at] != 49 or p[cs_at + 1] != 48 or p[cs_at + 2] != 61 or p[end - 1] != 1
                or p[cs_at - 1] != 1 or not _all_digits(p, cs_at + 3, cs_at + 6)):
            pos = _skip(p, n, out, pos, "BodyLength", "BodyLength does not end at CheckSum (10)", &in_junk)
            continue
        if body + 3 > n or p[body] != 51 or p[body + 1] != 53 or p[body + 2] != 61:  # "35="
            out.append(_Garbled("MsgType", "MsgType (35) is not the third field", end - pos))
            pos = end
            continue
        got = <unsigned int>_digits(p, cs_at + 3, cs_at + 6)
        want = 0
        for k in range(pos, cs_at):
            want += p[k]
        want &= 255
        if got != want:
            out.append(_Garbled("CheckSum", f"CheckSum {got:03d}, computed {want:03d}", end - pos))
            pos = end
            continue
        if direct and pos == 0 and end == n:
            raw = data
        else:
            raw = PyBytes_FromStringAndSize(<const char*>p + pos, end - pos)
        PyList_Append(out, _parse(raw, body - pos, cs_at - pos))
        pos = end
    if direct:
        if pos < n:
            buf += data[pos:]
    elif pos:
        del buf[:pos]
    self._in_junk = in_junk
    return out


cdef Py_ssize_t _skip(const unsigned char* p, Py_ssize_t n, list out, Py_ssize_t pos, str reason,
                      str detail, bint* in_junk) except -1:
    """FrameParser._skip: drop a frame whose length cannot be trusted, resynchronise on "8=FIX"."""
    cdef Py_ssize_t j = _find_sync(p, pos + 1, n)
    cdef Py_ssize_t nxt = j if j >= 0 else max(pos + 1, n - (SYNC_LEN - 1))
    out.append(_Garbled(reason, detail, nxt - pos))
    in_junk[0] = j < 0
    return nxt
