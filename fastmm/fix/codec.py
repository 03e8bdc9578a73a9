"""FIX tag=value framing: a fast encoder from byte templates and a bounded streaming parser.

Why not plain simplefix on the hot path: its generic ``FixMessage``/``FixParser`` build and scan
Python objects per field and measured ~41k encodes/s and ~14k parses/s here (venue facts, section 5).
Outgoing messages are one bytes ``%`` format over a pre-built header (``8, 9, 35, 49, 56, 34, 52``,
then ``43/122/1128`` when used, then the body, ``10`` last); incoming frames are checked for framing
(BeginString first, BodyLength second, MsgType third, exact length, CheckSum) and split on SOH into
``(tag: int, value: bytes)`` pairs. simplefix stays the reference the tests check our bytes against,
and :func:`to_simplefix` converts a parsed message for tools that want its API.

Bad input never raises out of :meth:`FrameParser.feed`: a garbled frame becomes a :class:`Garbled`
item with the reason, and the session ignores it without advancing its expected MsgSeqNum (FIXT rule).
Memory is bounded by ``max_frame``: a BodyLength above it is garbled at once, and bytes that cannot
start a frame are dropped as they arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

import simplefix

from fastmm.speedups import compiled_twin

SOH = b"\x01"
DEFAULT_MAX_FRAME = 64 * 1024

# Standard header tags (FIXT.1.1 + the few optional ones a peer may send); they must precede the body.
HEADER_TAGS = frozenset({8, 9, 35, 49, 56, 115, 128, 90, 91, 50, 142, 57, 143, 116, 144, 129, 145,
                         34, 43, 97, 52, 122, 212, 213, 347, 369, 627, 1128, 1129})

# SessionRejectReason (373) values used by the codec and the session.
REJ_INVALID_TAG = 0
REJ_REQUIRED_TAG_MISSING = 1
REJ_TAG_NOT_DEFINED = 2
REJ_UNDEFINED_TAG = 3
REJ_TAG_WITHOUT_VALUE = 4
REJ_VALUE_INCORRECT = 5
REJ_DATA_FORMAT = 6
REJ_SIGNATURE = 8
REJ_COMPID = 9
REJ_SENDING_TIME = 10
REJ_INVALID_MSGTYPE = 11
REJ_OUT_OF_ORDER = 14
REJ_GROUP_COUNT = 16
REJ_OTHER = 99

_TAG_CACHE: dict[bytes, int] = {str(i).encode(): i for i in range(1, 3000)}
_SYNC = b"8=FIX"
_MAX_BEGIN = 32  # "8=" + BeginString + SOH
_MAX_LEN_DIGITS = 12  # BodyLength digits read before it is judged too large
_MAX_TAG_DIGITS = 9


# The compiled twins of the inbound parse (fastmm/fix/_parse_fast.pyx); None: the pure ones run.
_feed_compiled = compiled_twin("fastmm.fix._parse_fast", "feed")
_parse_compiled = compiled_twin("fastmm.fix._parse_fast", "parse_message")
COMPILED = _feed_compiled is not None and _parse_compiled is not None
# ... and of the outbound framing (fastmm/fix/_encode_fast.pyx)
_encode_compiled = compiled_twin("fastmm.fix._encode_fast", "encode")
ENCODE_COMPILED = _encode_compiled is not None


class FixError(ValueError):
    """A value that cannot be put on the wire (SOH inside a value, bad tag)."""


class Garbled(NamedTuple):
    """Bytes the parser dropped, with why; the session logs it once per reason and moves on."""

    reason: str
    detail: str
    nbytes: int


class Message:
    """One received frame: raw bytes, the header fields the session needs, and every (tag, value) pair.

    ``error`` is ``(SessionRejectReason, RefTagID, text)`` when the frame is well framed but a field is
    malformed (bad tag, empty value, header tag after the body): the session answers with a Reject.
    """

    __slots__ = ("begin_string", "error", "fields", "msg_type", "orig_sending_time", "poss_dup", "raw",
                 "sender", "sending_time", "seq", "target")

    def __init__(self, raw: bytes, fields: list[tuple[int, bytes]]) -> None:
        self.raw = raw
        self.fields = fields
        self.begin_string = b""
        self.msg_type = b""
        self.seq = 0  # 0: missing or not a number
        self.sender = b""
        self.target = b""
        self.sending_time = b""
        self.poss_dup = False
        self.orig_sending_time: bytes | None = None
        self.error: tuple[int, int, str] | None = None

    def get(self, tag: int, default: bytes | None = None) -> bytes | None:
        """First value of ``tag`` (linear scan: messages are short)."""
        for t, v in self.fields:
            if t == tag:
                return v
        return default

    def get_all(self, tag: int) -> list[bytes]:
        return [v for t, v in self.fields if t == tag]

    def __repr__(self) -> str:
        return f"Message({self.raw.replace(SOH, b'|')!r})"


def _tag_of(t: bytes) -> int:
    tag = _TAG_CACHE.get(t)
    if tag is not None:
        return tag
    if t.isdigit() and 0 < len(t) <= _MAX_TAG_DIGITS and t[0] != 48:
        return int(t)
    return -1


def parse_message_py(raw: bytes, body_start: int, checksum_at: int) -> Message:
    """Split a framed message (``raw[body_start:]`` starts at ``35=``) into pairs and read the header.

    The pure twin and the reference; ``_parse_fast.parse_message`` is the compiled one."""
    soh = raw.index(SOH)
    fields: list[tuple[int, bytes]] = [(8, raw[2:soh]), (9, raw[soh + 3:body_start - 1])]
    msg = Message(raw, fields)
    msg.begin_string = fields[0][1]
    append = fields.append
    in_header = True
    error: tuple[int, int, str] | None = None
    cache = _TAG_CACHE
    for part in raw[body_start:checksum_at - 1].split(SOH):
        t, sep, v = part.partition(b"=")
        tag = cache.get(t)
        if tag is None:
            tag = _tag_of(t)
            if (tag < 0 or not sep) and error is None:
                error = (REJ_INVALID_TAG, 0, f"invalid tag {t[:16]!r}")
        if in_header:
            if tag in HEADER_TAGS:
                if tag == 35:
                    msg.msg_type = v
                elif tag == 34:
                    msg.seq = int(v) if v.isdigit() and len(v) <= 18 else 0
                elif tag == 49:
                    msg.sender = v
                elif tag == 56:
                    msg.target = v
                elif tag == 52:
                    msg.sending_time = v
                elif tag == 43:
                    msg.poss_dup = v == b"Y"
                elif tag == 122:
                    msg.orig_sending_time = v
            else:
                in_header = False
        elif tag in HEADER_TAGS and error is None:
            error = (REJ_OUT_OF_ORDER, tag, f"header tag {tag} after the body")
        if not v and error is None and tag > 0:
            error = (REJ_TAG_WITHOUT_VALUE, tag, f"tag {tag} without a value")
        append((tag, v))
    append((10, raw[checksum_at + 3:checksum_at + 6]))
    msg.error = error
    return msg


parse_message: Callable[[bytes, int, int], Message] = _parse_compiled or parse_message_py


class FrameParser:
    """Streaming parser: feed bytes as they arrive, get whole messages and garbled-frame notices.

    Partial frames wait for more bytes; several frames in one read all come out. The buffer never
    holds more than one frame of at most ``max_frame`` body bytes plus its header.
    """

    __slots__ = ("_buf", "_in_junk", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 64:
            raise ValueError("max_frame must be at least 64 bytes")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._in_junk = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()
        self._in_junk = False

    def feed(self, data: bytes) -> list[Message | Garbled]:
        """Every whole frame and garbled run in the buffer plus ``data``, in order.

        This is the pure twin and the reference (also reachable as ``feed_py``); where the build had a
        C compiler, ``feed`` is ``_parse_fast.feed``, with the same items and the same parser state."""
        buf = self._buf
        buf += data
        out: list[Message | Garbled] = []
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            if buf[pos] != 56 or buf[pos + 1] != 61:  # not "8=": resynchronise on the next "8=FIX"
                j = buf.find(_SYNC, pos)
                if j < 0:
                    keep = max(pos, n - (len(_SYNC) - 1))
                    self._junk(out, keep - pos)
                    pos = keep
                    break
                self._junk(out, j - pos)
                pos = j
                continue
            self._in_junk = False
            soh1 = buf.find(SOH, pos, pos + _MAX_BEGIN)
            if soh1 < 0:
                if n - pos >= _MAX_BEGIN:
                    pos = self._skip(out, pos, "BeginString", "no SOH after BeginString")
                    continue
                break
            if n < soh1 + 3:
                break
            if buf[soh1 + 1] != 57 or buf[soh1 + 2] != 61:  # "9="
                pos = self._skip(out, pos, "BodyLength", "BodyLength (9) is not the second field")
                continue
            soh2 = buf.find(SOH, soh1 + 3, soh1 + 4 + _MAX_LEN_DIGITS)
            if soh2 < 0:
                if n - soh1 > 3 + _MAX_LEN_DIGITS:
                    pos = self._skip(out, pos, "BodyLength", "BodyLength has no SOH or too many digits")
                    continue
                break
            text = bytes(buf[soh1 + 3:soh2])
            if not text.isdigit():
                pos = self._skip(out, pos, "BodyLength", f"BodyLength {text[:12]!r} is not a number")
                continue
            blen = int(text)
            if blen > self.max_frame:
                pos = self._skip(out, pos, "frame too large", f"BodyLength {blen} > max {self.max_frame}")
                continue
            body = soh2 + 1
            cs_at = body + blen
            end = cs_at + 7
            if n < end:
                break
            if (buf[cs_at:cs_at + 3] != b"10=" or buf[end - 1] != 1 or buf[cs_at - 1] != 1
                    or not buf[cs_at + 3:cs_at + 6].isdigit()):
                pos = self._skip(out, pos, "BodyLength", "BodyLength does not end at CheckSum (10)")
                continue
            if buf[body:body + 3] != b"35=":
                out.append(Garbled("MsgType", "MsgType (35) is not the third field", end - pos))
                pos = end
                continue
            raw = bytes(buf[pos:end])
            got = int(raw[cs_at - pos + 3:cs_at - pos + 6])
            want = sum(raw[:cs_at - pos]) & 255
            if got != want:
                out.append(Garbled("CheckSum", f"CheckSum {got:03d}, computed {want:03d}", end - pos))
                pos = end
                continue
            out.append(parse_message_py(raw, body - pos, cs_at - pos))
            pos = end
        if pos:
            del buf[:pos]
        return out

    feed_py = feed
    if _feed_compiled is not None and not TYPE_CHECKING:
        feed = _feed_compiled

    def _junk(self, out: list[Message | Garbled], nbytes: int) -> None:
        if nbytes <= 0:
            return
        if not self._in_junk:
            out.append(Garbled("junk", "bytes before BeginString (8=)", nbytes))
        self._in_junk = True

    def _skip(self, out: list[Message | Garbled], pos: int, reason: str, detail: str) -> int:
        """Drop a frame whose length cannot be trusted: resynchronise on the next "8=FIX"."""
        j = self._buf.find(_SYNC, pos + 1)
        nxt = j if j >= 0 else max(pos + 1, len(self._buf) - (len(_SYNC) - 1))
        out.append(Garbled(reason, detail, nxt - pos))
        self._in_junk = j < 0
        return nxt


class Encoder:
    """Frames messages of one session from a pre-built header template (8, 9, 35, 49, 56, 34, 52)."""

    __slots__ = ("_head", "_ids")

    def __init__(self, begin_string: str, sender: str, target: str) -> None:
        for name, v in (("BeginString", begin_string), ("SenderCompID", sender), ("TargetCompID", target)):
            if not v or "\x01" in v or "=" in v:
                raise FixError(f"{name} {v!r} is empty or has SOH/'='")
        self._head = b"8=" + begin_string.encode() + b"\x019="
        self._ids = b"\x0149=" + sender.encode() + b"\x0156=" + target.encode() + b"\x0134="

    def encode(self, msg_type: bytes, seq: int, sending_time: bytes, body: bytes = b"",
               extra_header: bytes = b"") -> bytes:
        """One whole frame. ``body`` and ``extra_header`` are ``tag=value<SOH>`` runs (see
        :func:`fields`); ``extra_header`` carries 43/122/1128 and goes right after 52.

        The pure twin and the reference (also ``encode_py``); where the build had a C compiler,
        ``encode`` is ``_encode_fast.encode``: the same bytes, the same errors."""
        mid = b"35=%b%b%d\x0152=%b\x01%b%b" % (msg_type, self._ids, seq, sending_time, extra_header, body)
        out = b"%b%d\x01%b" % (self._head, len(mid), mid)
        return b"%b10=%03d\x01" % (out, sum(out) & 255)

    encode_py = encode
    if _encode_compiled is not None and not TYPE_CHECKING:
        encode = _encode_compiled


def value_bytes(v: bytes | str | int) -> bytes:
    if isinstance(v, bytes):
        b = v
    elif isinstance(v, str):
        b = v.encode()
    elif isinstance(v, int):
        return b"%d" % v
    else:
        raise FixError(f"unsupported FIX value type {type(v).__name__}")
    if not b or 1 in b:
        raise FixError(f"FIX value {b[:20]!r} is empty or contains SOH")
    return b


def fields(pairs: Iterable[tuple[int, bytes | str | int]]) -> bytes:
    """``tag=value<SOH>`` run for a body (off the hot path: order templates build their own)."""
    return b"".join(b"%d=%b\x01" % (t, value_bytes(v)) for t, v in pairs)


def checksum(frame_without_trailer: bytes) -> int:
    return sum(frame_without_trailer) & 255


def to_simplefix(msg: Message) -> simplefix.FixMessage:
    """The same message as a simplefix ``FixMessage`` (tools, tests; not the hot path)."""
    fm = simplefix.FixMessage()
    for t, v in msg.fields:
        if t not in (9, 10):
            fm.append_pair(t, v, header=t in HEADER_TAGS)
    return fm


# -- timestamps ---------------------------------------------------------------------------------------
_FRACTION_SCALE = {0: 1_000_000_000, 3: 1_000_000, 6: 1_000, 9: 1}
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_timestamp(b: bytes) -> int:
    """UTCTimestamp ``YYYYMMDD-HH:MM:SS[.fff|.ffffff|.fffffffff]`` to Unix nanoseconds.

    Raises ValueError with the reason. TrueX sends microseconds (52) and nanoseconds (273)."""
    n = len(b)
    if n < 17 or b[8] != 45 or b[11] != 58 or b[14] != 58:
        raise ValueError(f"not a UTCTimestamp: {b[:30]!r}")
    digits = n - 18 if n > 17 else 0
    scale = _FRACTION_SCALE.get(digits)
    if scale is None or (n > 17 and b[17] != 46):
        raise ValueError(f"UTCTimestamp needs 0, 3, 6 or 9 fractional digits: {b[:30]!r}")
    if not (b[:8].isdigit() and b[9:11].isdigit() and b[12:14].isdigit() and b[15:17].isdigit()
            and (digits == 0 or b[18:].isdigit())):
        raise ValueError(f"not a UTCTimestamp: {b[:30]!r}")
    y, mo, d = int(b[:4]), int(b[4:6]), int(b[6:8])
    h, mi, s = int(b[9:11]), int(b[12:14]), int(b[15:17])
    if not (1 <= mo <= 12 and 1 <= d <= _DAYS_IN_MONTH[mo] and h < 24 and mi < 60 and s <= 60):
        raise ValueError(f"UTCTimestamp out of range: {b[:30]!r}")
    if mo == 2 and d == 29 and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        raise ValueError(f"UTCTimestamp out of range: {b[:30]!r}")
    frac = int(b[18:]) * scale if digits else 0
    return ((_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1_000_000_000) + frac


class _SecondCache:
    __slots__ = ("prefix", "sec")

    def __init__(self) -> None:
        self.sec = -1
        self.prefix = b""


_cache = _SecondCache()


def format_timestamp(ns: int) -> bytes:
    """Unix nanoseconds to ``YYYYMMDD-HH:MM:SS.ffffff`` (microseconds, like TrueX's SendingTime)."""
    sec, rem = divmod(ns, 1_000_000_000)
    c = _cache
    if sec != c.sec:
        c.prefix = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(sec)).encode()
        c.sec = sec
    return b"%b.%06d" % (c.prefix, rem // 1000)
