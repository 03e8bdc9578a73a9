"""The compiled inbound FIX parse and its pure twin agree on every frame, every error and every record.

Two twins: ``fastmm.fix._parse_fast`` (``FrameParser.feed`` / ``parse_message``: framing, checksum,
fields, header values, Garbled items, parser state) and ``fastmm.venues.truex._decode_fast``
(``TruexCodec.execution_report`` / ``md_incremental``: the typed records or the same RejectMessage).
Generated valid messages and malformed ones (bad CheckSum, bad BodyLength, garbage tags, empty values,
truncated, oversized, junk between frames, any chunking of the byte stream) must come out the same.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmm.config import InstrumentConfig
from fastmm.fix import codec
from fastmm.fix.codec import Encoder, FrameParser, Garbled, Message
from fastmm.fix.session import RejectMessage
from fastmm.instrument import Instrument
from fastmm.venues.truex import codec as tcodec
from fastmm.venues.truex.codec import TruexCodec

pytestmark = pytest.mark.skipif(not (codec.COMPILED and tcodec.COMPILED) and not shutil.which("cc"),
                                reason="no C compiler on this machine: only the pure twins exist")

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_compiled_twins_were_built_where_a_compiler_exists() -> None:
    assert codec.COMPILED, "a C compiler is present but fastmm.fix._parse_fast was not built"
    assert tcodec.COMPILED, "a C compiler is present but fastmm.venues.truex._decode_fast was not built"
    assert FrameParser.feed is not FrameParser.feed_py
    assert TruexCodec.execution_report is not TruexCodec.execution_report_py


# -- generated messages -------------------------------------------------------------------------------
_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=0, max_size=12)
_numbers = st.one_of(
    st.sampled_from(["60000.5", "60000", "0.04", "0.0001", "0.00005", "60000.25", "-1", "1e5", "abc", "",
                     ".5", "5.", "0", "-0.5", "00060000.50", "1.2.3", "99999999999999999999", "-",
                     "0.0012", "inf", "NaN", "60000.5000000000000000000"]),
    st.from_regex(r"\A-?[0-9]{1,7}(\.[0-9]{1,6})?\Z"))
_stamps = st.one_of(
    st.sampled_from(["20250910-14:39:14.463394", "20250910-14:39:14.463394123", "20250910-14:39:14",
                     "20250910-14:39:14.463", "20250910-14:39:14.", "20240229-00:00:00",
                     "20250229-00:00:00", "00000101-00:00:00.000", "00000301-00:00:00", "19700101-00:00:00.000000000",
                     "20251310-14:39:14", "20250910-24:39:14", "20250910-14:39:60", "20250910 14:39:14",
                     "2025091O-14:39:14", "20250910-14:39:14.46", "yesterday", "", "20250910-14:39:14.4633941234"]),
    st.from_regex(r"\A[0-9]{8}-[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3}|\.[0-9]{6}|\.[0-9]{9})?\Z"))
_ints = st.one_of(st.sampled_from(["1", "2", "0", "-3", "x", "", "-", "0012", "1234567890123456789"]),
                  st.integers(-10**20, 10**20).map(str))
_text = st.one_of(_printable, st.sampled_from(["O1", "E998877", "F", "caf\u00e9"]))

_ER_TAGS: dict[int, st.SearchStrategy[str]] = {
    37: _text, 11: _text, 41: _text, 17: _text, 150: _text, 39: _text, 54: _text, 40: _text, 44: _numbers,
    38: _numbers, 31: _numbers, 32: _numbers, 151: _numbers, 14: _numbers, 6: _text, 59: _text, 60: _stamps,
    58: _text, 851: _ints, 880: _text, 448: _text, 453: _ints, 452: _ints, 55: _text, 167: _text}
_REQUIRED = (37, 17, 150, 39, 54, 151, 14)


@st.composite
def er_body(draw: st.DrawFn) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for tag, strat in _ER_TAGS.items():
        present = draw(st.integers(0, 9))
        if present == 0 and tag in _REQUIRED:
            continue  # sometimes missing
        if present < 3 and tag not in _REQUIRED:
            continue
        out.append((tag, draw(strat)))
    if draw(st.booleans()):  # MiscFees group
        n = draw(st.integers(0, 3))
        out.append((136, str(n)))
        for _ in range(n):
            out.append((137, draw(_numbers)))
            if draw(st.booleans()):
                out.append((139, draw(st.sampled_from(["4", "7", ""]))))
    if draw(st.integers(0, 4)) == 0:  # a repeated tag: the last one wins in both
        tag = draw(st.sampled_from(sorted(_ER_TAGS)))
        out.append((tag, draw(_ER_TAGS[tag])))
    return draw(st.permutations(out)) if draw(st.integers(0, 5)) == 0 else out


@st.composite
def mdx_body(draw: st.DrawFn) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    if draw(st.integers(0, 5)):
        out.append((262, draw(_text)))
    n = draw(st.integers(0, 4))
    count = n if draw(st.integers(0, 5)) else draw(st.sampled_from(["x", "", "1234567", str(n + 1), str(n)]))
    if draw(st.integers(0, 8)):
        out.append((268, str(count)))
    for _ in range(n):
        out.append((279, draw(st.sampled_from(["0", "1", "2", "", "x"]))))
        for tag, strat in ((269, st.sampled_from(["0", "1", "2", ""])), (270, _numbers), (271, _numbers),
                           (1023, _ints), (273, _stamps), (2446, st.sampled_from(["1", "2"])),
                           (278, _text), (55, _text)):
            if draw(st.integers(0, 4)):
                out.append((tag, draw(strat)))
    return out


def _body(pairs: list[tuple[int, str]]) -> bytes:
    return b"".join(b"%d=%b\x01" % (t, v.encode("utf-8")) for t, v in pairs)


ENC = Encoder("FIXT.1.1", "TRUEX", "FASTMM")


@st.composite
def frame(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["8", "X", "other"]))
    if kind == "8":
        body = _body(draw(er_body()))
    elif kind == "X":
        body = _body(draw(mdx_body()))
    else:
        body = _body(draw(st.lists(st.tuples(st.integers(1, 6000), _printable), max_size=6)))
    extra = b""
    if draw(st.integers(0, 4)) == 0:
        extra = draw(st.sampled_from([b"43=Y\x01122=20250910-14:39:14.463394\x01", b"43=N\x01", b"43=\x01",
                                      b"1128=9\x01"]))
    seq = draw(st.integers(0, 10**6))
    mt = {"8": b"8", "X": b"X"}.get(kind) or draw(st.sampled_from([b"9", b"j", b"0", b"A"]))
    return ENC.encode(mt, seq, b"20250910-14:39:14.463394", body, extra)


def _reframe(text: bytes) -> bytes:
    """Recompute BodyLength and CheckSum of a frame whose body was edited."""
    start = text.index(b"\x01") + 1
    start = text.index(b"\x01", start) + 1
    end = text.rindex(b"10=")
    core = text[start:end]
    head = text[:text.index(b"\x01") + 1] + b"9=%d\x01" % len(core)
    out = head + core
    return out + b"10=%03d\x01" % (sum(out) & 255)


_GARBAGE_FIELDS = [b"abc=1\x01", b"0=1\x01", b"=x\x01", b"35\x01", b"58\x01", b"5000\x01", b"0012=3\x01",
                   b"\x01", b"1234567890=1\x01", b"123456789=1\x01", b"44=\x01", b"34=12\x01", b"49=X\x01",
                   b"43=Y\x01", b"9999=a=b\x01", b"-1=2\x01", b"2999=\x01", b"3000\x01", b"9=5\x01"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    f = draw(frame())
    how = draw(st.sampled_from(["none", "checksum", "bodylength", "garbage", "garbage", "garbage", "truncate",
                                "junk", "bytes", "flip", "no35", "header_edit"]))
    if how == "checksum":
        cs = int(f[-4:-1])
        return f[:-4] + b"%03d\x01" % ((cs + draw(st.integers(1, 255))) % 256)
    if how == "bodylength":
        s1 = f.index(b"\x01")
        s2 = f.index(b"\x01", s1 + 1)
        blen = draw(st.sampled_from([b"0", b"1", b"4", b"x", b"", b"99999999", b"1234567890123",
                                     b"%d" % (int(f[s1 + 3:s2]) + draw(st.integers(-5, 5)))]))
        return f[:s1 + 3] + blen + f[s2:]
    if how == "garbage":
        at = f.index(b"\x0135=") + 1
        at = f.index(b"\x01", at) + 1
        if draw(st.booleans()):
            at = f.rindex(b"10=")
        junk = b"".join(draw(st.lists(st.sampled_from(_GARBAGE_FIELDS), min_size=1, max_size=3)))
        return _reframe(f[:at] + junk + f[at:])
    if how == "truncate":
        return f[:draw(st.integers(0, len(f) - 1))]
    if how == "junk":
        return draw(st.binary(max_size=12)) + f
    if how == "bytes":
        return draw(st.binary(max_size=80))
    if how == "flip":
        i = draw(st.integers(0, len(f) - 1))
        return f[:i] + bytes([draw(st.integers(0, 255))]) + f[i + 1:]
    if how == "no35":
        return _reframe(f.replace(b"\x0135=", b"\x0136=", 1))
    if how == "header_edit":
        return f.replace(b"8=FIXT.1.1", draw(st.sampled_from([b"8=FIX", b"8=", b"8=" + b"F" * 40,
                                                             b"8=FIXT.1.1\x019=\x01"])), 1)
    return f


# -- comparison ------------------------------------------------------------------------------------------
def _item(x: Message | Garbled) -> tuple[Any, ...]:
    if isinstance(x, Garbled):
        return ("garbled", tuple(x))
    return ("msg", x.raw, x.fields, x.begin_string, x.msg_type, x.seq, x.sender, x.target, x.sending_time,
            x.poss_dup, x.orig_sending_time, x.error)


def _outcome(fn: Any, msg: Message) -> tuple[Any, ...]:
    try:
        return ("ok", fn(msg))
    except RejectMessage as e:
        return ("reject", e.reason, e.ref_tag, e.text, str(e))
    except Exception as e:  # the same unexpected error counts as agreement too
        return ("error", type(e).__name__, str(e))


def _codec() -> TruexCodec:
    return TruexCodec(Instrument.from_config(InstrumentConfig()), "CLIENT1")


def _run(stream: bytes, cuts: list[int], max_frame: int) -> None:
    fast, slow = FrameParser(max_frame), FrameParser(max_frame)
    c_fast, c_slow = _codec(), _codec()
    bounds = sorted({min(c, len(stream)) for c in cuts} | {len(stream)})
    prev = 0
    for b in bounds:
        chunk = stream[prev:b]
        prev = b
        got = FrameParser.feed(fast, chunk)
        want = FrameParser.feed_py(slow, chunk)
        assert [_item(x) for x in got] == [_item(x) for x in want]
        assert (bytes(fast._buf), fast._in_junk) == (bytes(slow._buf), slow._in_junk)
        for m in got:
            if isinstance(m, Message):
                assert _outcome(lambda x: c_fast.execution_report(x), m) == \
                    _outcome(lambda x: c_slow.execution_report_py(x), m)
                assert _outcome(lambda x: c_fast.md_incremental(x), m) == \
                    _outcome(lambda x: c_slow.md_incremental_py(x), m)


@SETTINGS
@given(st.lists(frame(), min_size=1, max_size=4), st.lists(st.integers(0, 2000), max_size=4))
def test_valid_messages_parse_and_decode_the_same(frames: list[bytes], cuts: list[int]) -> None:
    _run(b"".join(frames), cuts, codec.DEFAULT_MAX_FRAME)


@SETTINGS
@given(st.lists(mutated(), min_size=1, max_size=4), st.lists(st.integers(0, 2000), max_size=4),
       st.sampled_from([64, 200, 400, codec.DEFAULT_MAX_FRAME]))
def test_malformed_streams_give_the_same_items_errors_and_state(frames: list[bytes], cuts: list[int],
                                                                 max_frame: int) -> None:
    _run(b"".join(frames), cuts, max_frame)


@SETTINGS
@given(mutated())
def test_parse_message_twins_agree_on_any_framed_bytes(f: bytes) -> None:
    for m in FrameParser.feed_py(FrameParser(), f):
        if isinstance(m, Message):
            body = m.raw.index(b"\x0135=") + 1
            cs_at = len(m.raw) - 7
            assert _item(codec.parse_message(m.raw, body, cs_at)) == _item(codec.parse_message_py(m.raw, body,
                                                                                                  cs_at))


def test_one_example_of_each_record_is_equal_field_by_field() -> None:
    c = _codec()
    er = ENC.encode(b"8", 7, b"20250910-14:39:14.463394", _body([
        (37, "O1"), (11, "c1"), (17, "E1"), (150, "F"), (39, "1"), (54, "1"), (40, "2"), (38, "0.1"),
        (44, "60000.5"), (32, "0.04"), (31, "60000.5"), (151, "0.06"), (14, "0.04"), (6, "60000.5"),
        (60, "20250910-14:39:14.463394"), (851, "1"), (136, "1"), (137, "0.0012"), (139, "4"), (880, "T1")]))
    (m,) = FrameParser().feed(er)
    assert isinstance(m, Message)
    fast, slow = c.execution_report(m), c.execution_report_py(m)
    assert fast == slow and type(fast) is type(slow) and hash(fast) == hash(slow)
    assert fast.fees[0].fee_type == "4" and fast.transact_time_ns == 1_757_515_154_463_394_000
    md = ENC.encode(b"X", 8, b"20250910-14:39:14.463394", _body([
        (262, "md1"), (268, "2"), (279, "0"), (269, "0"), (270, "60000"), (271, "0.5"), (1023, "1"),
        (279, "2"), (269, "1"), (270, "60001"), (271, "0"), (273, "20250910-14:39:14.463394123")]))
    (m,) = FrameParser().feed(md)
    assert isinstance(m, Message)
    x, y = c.md_incremental(m), c.md_incremental_py(m)
    assert x == y and type(x.entries[0]) is type(y.entries[0]) and x.entries[1].time_ns == y.entries[1].time_ns
