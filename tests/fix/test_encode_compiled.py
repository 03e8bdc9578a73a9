"""The compiled outbound encode and its pure twin make the same bytes and raise the same errors.

Two twins: ``fastmm.fix._encode_fast`` (``Encoder.encode``: header, BodyLength, CheckSum) and
``fastmm.venues.truex._encode_fast`` (``TruexCodec.new_order_single`` / ``order_cancel_request`` /
``order_cancel_replace_request``: the D, F and G bodies). Generated orders (sides, order types, prices and
quantities at the edges of the 64-bit range and beyond, ClOrdIDs valid, at the length limits and invalid,
post-only ExecInst, client ids present and missing, increments of many sizes) and generated frames must
come out byte for byte the same, or fail with the same exception type and text.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmm.config import InstrumentConfig
from fastmm.fix import codec
from fastmm.fix.codec import Encoder, FrameParser, Message
from fastmm.instrument import Instrument
from fastmm.venues.truex import codec as tcodec
from fastmm.venues.truex.codec import Scaled, TruexCodec

pytestmark = pytest.mark.skipif(not (codec.ENCODE_COMPILED and tcodec.ENCODE_COMPILED)
                                and not shutil.which("cc"),
                                reason="no C compiler on this machine: only the pure twins exist")

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LL = 2**63


def test_the_compiled_twins_were_built_where_a_compiler_exists() -> None:
    assert codec.ENCODE_COMPILED, "a C compiler is present but fastmm.fix._encode_fast was not built"
    assert tcodec.ENCODE_COMPILED, "a C compiler is present but fastmm.venues.truex._encode_fast was not built"
    assert Encoder.encode is not Encoder.encode_py
    assert TruexCodec.new_order_single is not TruexCodec.new_order_single_py
    assert TruexCodec.order_cancel_request is not TruexCodec.order_cancel_request_py
    assert TruexCodec.order_cancel_replace_request is not TruexCodec.order_cancel_replace_request_py


def outcome(fn: Callable[..., bytes], *args: Any) -> tuple[str, Any]:
    """The bytes, or the exception's type and text."""
    try:
        return "ok", fn(*args)
    except Exception as e:  # any error must be the same error
        return type(e).__name__, str(e)


# -- generated orders ---------------------------------------------------------------------------------
_hex = "0123456789abcdef"
_uuid = st.tuples(*(st.text(_hex, min_size=k, max_size=k) for k in (8, 4, 3, 3, 12)),
                  st.sampled_from("89ab")).map(lambda p: f"{p[0]}-{p[1]}-4{p[2]}-{p[5]}{p[3]}-{p[4]}")
_printable = st.characters(min_codepoint=0x21, max_codepoint=0x7e)
_ids: st.SearchStrategy[Any] = st.one_of(
    st.text(_printable, min_size=1, max_size=18),                      # valid short ids (some with "=")
    st.text(_printable, min_size=17, max_size=20),                     # around the 18-character limit
    _uuid,                                                             # valid UUIDv4
    _uuid.map(str.upper), _uuid.map(lambda u: u[:14] + "1" + u[15:]),  # not lowercase / not version 4
    _uuid.map(lambda u: u[:19] + "c" + u[20:]), _uuid.map(lambda u: u[:8] + "_" + u[9:]),
    _uuid.map(lambda u: u + "0"), _uuid.map(lambda u: u[:-1]),
    st.text(_printable, min_size=36, max_size=36),
    st.sampled_from(["", " ", "a b", "mmt67uk8001", "x" * 18, "x" * 19, "caf\u00e9", "\ud800", "a\x01",
                     "a=b", "\x7f", "~" * 18, "!"]),
    st.text(max_size=20),
    st.sampled_from([b"mmt67uk8001", None, 5]),
)


def _edges(mults: tuple[int, ...]) -> st.SearchStrategy[Any]:
    """Integers at the edges of the 64-bit range (of the count and of count x increment) and beyond."""
    edge = {0, 1, -1, 2, LL - 1, LL, -LL, -LL - 1, 10**30, -(10**30), 2**64}
    for m in mults:
        edge |= {(LL - 1) // m, (LL - 1) // m + 1, -((LL - 1) // m), -((LL - 1) // m) - 1}
    return st.one_of(st.sampled_from(sorted(edge)), st.integers(-10, 10**9), st.integers(-(2**70), 2**70),
                     st.sampled_from([True, False, None, 1.5, "5"]))


_STEPS = [Decimal(s) for s in ("0.50", "0.0001", "1", "0.00000001", "25", "0.25", "1E-18", "1E-19", "1E-20",
                               "1000000", "0.3", "7E+20")]


@st.composite
def codecs(draw: st.DrawFn) -> TruexCodec:
    client = draw(st.sampled_from(["CLIENT1", "", "c-9"]))
    c = TruexCodec(Instrument.from_config(InstrumentConfig()), client, draw(st.sampled_from(["", "6"])))
    c.px = Scaled(draw(st.sampled_from(_STEPS)))
    c.qty = Scaled(draw(st.sampled_from(_STEPS)))
    return c


def _mults(c: TruexCodec) -> tuple[int, ...]:
    return (c.px._mult, c.qty._mult)


_sides = st.sampled_from(["1", "2", "3", "", "12", b"1", 1, None])
_ord_types = st.sampled_from(["2", "1", "3", "", b"2", 2])
_tifs = st.sampled_from(["1", "3", "0", "", b"1", 1])


@SETTINGS
@given(c=codecs(), data=st.data())
def test_new_order_single_same_bytes_same_errors(c: TruexCodec, data: st.DataObject) -> None:
    nums = _edges(_mults(c))
    args = (data.draw(_ids), data.draw(st.one_of(st.sampled_from(["1", "2"]), _sides)), data.draw(nums),
            data.draw(nums), data.draw(st.one_of(st.just("2"), _ord_types)),
            data.draw(st.one_of(st.just("1"), _tifs)), data.draw(st.one_of(st.none(), nums)))
    assert outcome(c.new_order_single, *args) == outcome(c.new_order_single_py, *args)


@SETTINGS
@given(c=codecs(), data=st.data())
def test_cancel_and_replace_same_bytes_same_errors(c: TruexCodec, data: st.DataObject) -> None:
    nums = _edges(_mults(c))
    cl, orig = data.draw(_ids), data.draw(_ids)
    assert outcome(c.order_cancel_request, cl, orig) == outcome(c.order_cancel_request_py, cl, orig)
    args = (cl, orig, data.draw(nums), data.draw(nums), data.draw(st.one_of(st.just("2"), _ord_types)))
    assert outcome(c.order_cancel_replace_request, *args) == outcome(c.order_cancel_replace_request_py, *args)


def test_default_arguments_and_keywords_match() -> None:
    c = TruexCodec(Instrument.from_config(InstrumentConfig()), "CLIENT1")
    assert c.new_order_single("a1", "2", 5, 7) == c.new_order_single_py("a1", "2", 5, 7)
    assert (c.new_order_single("a1", "1", 5, None, ord_type="1", tif="3", smp=-2)
            == c.new_order_single_py("a1", "1", 5, None, ord_type="1", tif="3", smp=-2))
    assert (c.order_cancel_replace_request("b", "a", 1, 1) == c.order_cancel_replace_request_py("b", "a", 1, 1))
    c.set_client_id("C2")
    assert c.order_cancel_request("b", "a") == c.order_cancel_request_py("b", "a") == b"41=a\x0111=b\x01" \
        b"453=1\x01448=C2\x01452=3\x01"


# -- generated frames ---------------------------------------------------------------------------------
_runs = st.binary(max_size=300).map(lambda b: b.replace(b"\x01", b"") + b"\x01" if b else b"")
_bytesish: st.SearchStrategy[Any] = st.one_of(st.binary(max_size=40), st.sampled_from(
    ["D", bytearray(b"D"), memoryview(b"G"), None, 5]))


@SETTINGS
@given(sender=st.text(_printable.filter(lambda ch: ch != "="), min_size=1, max_size=20),
       msg_type=st.one_of(st.sampled_from([b"D", b"F", b"G", b"0", b"A", b"BE", b""]), _bytesish),
       seq=st.one_of(_edges(()), st.integers(1, 10**7)),
       sending_time=st.one_of(st.just(b"20250910-14:39:14.463394"), _bytesish),
       body=st.one_of(_runs, _bytesish), extra=st.one_of(st.just(b""), _runs, _bytesish))
def test_encode_same_frame_same_errors(sender: str, msg_type: Any, seq: Any, sending_time: Any, body: Any,
                                       extra: Any) -> None:
    enc = Encoder("FIXT.1.1", sender, "TRUEX_UAT_OE")
    args = (msg_type, seq, sending_time, body, extra)
    got = outcome(enc.encode, *args)
    assert got == outcome(enc.encode_py, *args)
    if (got[0] == "ok" and type(msg_type) is bytes and msg_type and b"\x01" not in msg_type + sending_time
            and type(seq) is int and 0 < seq < 10**18 and body[-1:] == b"\x01" and extra[-1:] in (b"", b"\x01")):
        (m,) = FrameParser().feed(got[1])  # a whole frame: BodyLength and CheckSum right
        assert isinstance(m, Message) and m.seq == seq


@SETTINGS
@given(c=codecs(), seq=st.integers(1, LL - 1), cl=_uuid, px=st.integers(1, 10**9), qty=st.integers(1, 10**9))
def test_order_to_frame_the_quoter_path(c: TruexCodec, seq: int, cl: str, px: int, qty: int) -> None:
    """Body then frame, as the session sends an order: the whole frame is the same both ways."""
    enc = Encoder("FIXT.1.1", "FASTMM", "TRUEX_UAT_OE")
    st_ = codec.format_timestamp(1_757_515_154_463_394_000)
    fast = outcome(lambda: enc.encode(b"D", seq, st_, c.new_order_single(cl, "1", qty, px)))
    pure = outcome(lambda: enc.encode_py(b"D", seq, st_, c.new_order_single_py(cl, "1", qty, px)))
    assert fast == pure
