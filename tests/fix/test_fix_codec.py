"""FIX framing: exact bytes, streaming parse, garbled frames, bounded memory, timestamps."""

from __future__ import annotations

import logging
import tracemalloc

import pytest
import simplefix
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.fix.codec import (
    Encoder,
    FixError,
    FrameParser,
    Garbled,
    Message,
    fields,
    format_timestamp,
    parse_timestamp,
    to_simplefix,
)
from fastmm.fix.session import FixSession, FrameDropped, SessionSettings, State
from fastmm.fix.store import MemorySeqStore

UAT = (
    b"8=FIXT.1.1|9=82|35=A|49=TRUEX_UAT_GW|56=CLI_CLIENT|34=1|52=20250910-14:39:14.411802|108=30|1137=9|10=031|"
    b"8=FIXT.1.1|9=236|35=W|49=TRUEX_UAT_GW|56=CLI_CLIENT|34=2|52=20250910-14:39:14.463394|"
    b"262=MD_BTC_1757515154372|55=BTC-PYUSD|167=CSPOT|268=2|269=0|270=0|271=0|1023=1|"
    b"273=19700101-00:00:00.000000000|269=1|270=0|271=0|1023=1|273=19700101-00:00:00.000000000|10=019|"
    b"8=FIXT.1.1|9=88|35=1|49=TRUEX_UAT_GW|56=CLI_CLIENT|34=4|52=20250910-14:39:51.063695|"
    b"112=TEST-CLI_CLIENT|10=222|"
).replace(b"|", b"\x01")

NOS_BODY = (b"11=o1\x01453=1\x01448=CLIENT1\x01452=3\x0155=BTC-PYUSD\x01167=CSPOT\x0154=1\x0140=2\x01"
            b"38=0.1\x0144=60000.5\x0159=1\x01")


def only_messages(items: list[Message | Garbled]) -> list[Message]:
    assert all(isinstance(m, Message) for m in items), items
    return items  # type: ignore[return-value]


def frame(mt: bytes = b"0", seq: int = 1, body: bytes = b"") -> bytes:
    return Encoder("FIXT.1.1", "A", "B").encode(mt, seq, b"20250910-14:39:14.411802", body)


# -- encoding ------------------------------------------------------------------------------------------
def test_encode_matches_simplefix_byte_for_byte() -> None:
    st_ = format_timestamp(1_757_515_154_411_802_000)
    ours = Encoder("FIXT.1.1", "FASTMM", "TRUEX").encode(b"D", 42, st_, NOS_BODY, b"43=Y\x01122=%b\x01" % st_)
    ref = simplefix.FixMessage()
    for tag, v in ((8, "FIXT.1.1"), (35, "D"), (49, "FASTMM"), (56, "TRUEX"), (34, 42), (52, st_),
                   (43, "Y"), (122, st_)):
        ref.append_pair(tag, v, header=True)
    for part in NOS_BODY.rstrip(b"\x01").split(b"\x01"):
        t, _, v = part.partition(b"=")
        ref.append_pair(int(t), v)
    assert ours == ref.encode()


def test_header_order_and_trailer() -> None:
    raw = Encoder("FIXT.1.1", "S", "T").encode(b"D", 7, b"20250101-00:00:00.000000", NOS_BODY, b"43=Y\x01")
    (msg,) = only_messages(FrameParser().feed(raw))
    tags = [t for t, _ in msg.fields]
    assert tags[:8] == [8, 9, 35, 49, 56, 34, 52, 43] and tags[-1] == 10
    body_len = len(raw) - raw.index(b"35=") - 7
    assert msg.get(9) == str(body_len).encode()
    assert int(msg.get(10) or b"") == sum(raw[:-7]) % 256


def test_fields_refuses_soh_and_empty_values() -> None:
    assert fields([(11, "a"), (38, 5), (58, b"x")]) == b"11=a\x0138=5\x0158=x\x01"
    with pytest.raises(FixError):
        fields([(58, "a\x01b")])
    with pytest.raises(FixError):
        fields([(58, "")])
    with pytest.raises(FixError):
        Encoder("FIXT.1.1", "A\x01", "B")


# -- parsing ---------------------------------------------------------------------------------------------
def test_parses_real_truex_uat_frames() -> None:
    logon, snap, test_req = only_messages(FrameParser().feed(UAT))
    assert (logon.msg_type, logon.seq) == (b"A", 1)
    assert (logon.sender, logon.target) == (b"TRUEX_UAT_GW", b"CLI_CLIENT")
    assert logon.get(108) == b"30" and logon.get(1137) == b"9" and logon.get(98) is None
    assert parse_timestamp(logon.sending_time) == 1_757_515_154_411_802_000
    assert snap.msg_type == b"W" and snap.get_all(269) == [b"0", b"1"] and snap.error is None
    assert snap.get_all(273) == [b"19700101-00:00:00.000000000"] * 2
    assert test_req.seq == 4 and test_req.get(112) == b"TEST-CLI_CLIENT"
    assert str(to_simplefix(test_req).get(112), "ascii") == "TEST-CLI_CLIENT"


def test_streaming_byte_by_byte_and_many_frames_per_read() -> None:
    p = FrameParser()
    got: list[Message | Garbled] = []
    for i in range(len(UAT)):
        got += p.feed(UAT[i:i + 1])
    assert [m.seq for m in only_messages(got)] == [1, 2, 4]
    assert p.buffered == 0
    many = b"".join(frame(seq=i) for i in range(1, 1001))
    assert [m.seq for m in only_messages(FrameParser().feed(many))] == list(range(1, 1001))


@pytest.mark.parametrize(("bad", "reason"), [
    (b"9=5\x0135=0\x0110=000\x01", "junk"),  # BeginString missing
    (b"8=FIXT.1.1\x0135=0\x019=5\x0110=000\x01", "BodyLength"),  # BodyLength not second
    (b"8=FIXT.1.1\x019=1x\x0135=0\x0110=000\x01", "BodyLength"),  # not a number
    (b"8=FIXT.1.1\x019=3\x0134=1\x0135=0\x0110=000\x01", "BodyLength"),  # wrong length
    (b"8=FIXT.1.1\x019=5\x0134=1\x0110=000\x01", "MsgType"),  # MsgType not third
])
def test_garbled_frames_are_skipped_with_a_reason(bad: bytes, reason: str) -> None:
    good = frame(seq=9)
    out = FrameParser().feed(bad + good)
    assert isinstance(out[0], Garbled) and out[0].reason == reason
    assert [m.seq for m in out if isinstance(m, Message)] == [9]


def test_wrong_checksum_is_skipped() -> None:
    good = frame(seq=3)
    bad = good[:-4] + b"%03d\x01" % ((int(good[-4:-1]) + 7) % 256)
    out = FrameParser().feed(bad + good)
    assert isinstance(out[0], Garbled) and out[0].reason == "CheckSum"
    assert isinstance(out[1], Message) and out[1].seq == 3


def test_malformed_fields_are_flagged_for_a_reject() -> None:
    e = Encoder("FIXT.1.1", "A", "B")
    cases = {b"abc=1\x01": (0, 0), b"58=\x01": (4, 58), b"11=x\x0134=5\x01": (14, 34), b"novalue\x01": (0, 0)}
    for body, (reason, tag) in cases.items():
        (msg,) = only_messages(FrameParser().feed(e.encode(b"8", 2, b"20250101-00:00:00", body)))
        assert msg.error is not None and msg.error[:2] == (reason, tag), body


def test_unknown_tags_are_kept() -> None:
    (msg,) = only_messages(FrameParser().feed(frame(b"8", 2, b"9999=x\x01123456=y\x01")))
    assert msg.error is None and msg.get(9999) == b"x" and msg.get(123456) == b"y"


# -- bounded memory ----------------------------------------------------------------------------------
def test_huge_body_length_is_rejected_at_once() -> None:
    p = FrameParser(max_frame=65536)
    out = p.feed(b"8=FIXT.1.1\x019=1000000000\x0135=0\x01")
    assert isinstance(out[0], Garbled) and out[0].reason == "frame too large"
    assert p.buffered < 64


def test_ten_megabyte_frame_never_grows_the_buffer() -> None:
    body = b"58=" + b"x" * (10 * 1024 * 1024) + b"\x01"
    big = Encoder("FIXT.1.1", "A", "B").encode(b"0", 1, b"20250101-00:00:00", body)
    p = FrameParser(max_frame=65536)
    tracemalloc.start()
    try:
        out: list[Message | Garbled] = []
        peak_buf = 0
        for i in range(0, len(big), 65536):
            out += p.feed(big[i:i + 65536])
            peak_buf = max(peak_buf, p.buffered)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_buf < 70_000
    assert peak < 2_000_000  # a few chunks, never the 10 MB frame
    assert next(g.reason for g in out if isinstance(g, Garbled)) == "frame too large"
    assert not any(isinstance(m, Message) for m in out)
    assert isinstance(p.feed(frame(seq=5))[-1], Message)  # and the stream recovers


def test_bad_input_to_a_session_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    s = FixSession(SessionSettings("B", "A"), MemorySeqStore())
    s.connection_made(1_757_515_154_000_000_000)
    caplog.set_level(logging.WARNING)
    good = frame(seq=1)
    bad = good[:-4] + b"%03d\x01" % ((int(good[-4:-1]) + 1) % 256)
    for _ in range(5):
        s.receive_data(bad, 1_757_515_154_000_000_000)
    assert [e.reason for e in s.events_received() if isinstance(e, FrameDropped)] == ["CheckSum"] * 5
    lines = [r for r in caplog.records if "CheckSum" in r.getMessage()]
    assert len(lines) == 1 and s.bad_input.counts["garbled frame (CheckSum)"] == 5
    assert s.state is State.LOGON_SENT


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_random_bytes_never_crash_and_stay_bounded(chunks: list[bytes]) -> None:
    p = FrameParser(max_frame=1024)
    for c in chunks:
        for item in p.feed(c):
            assert isinstance(item, Message | Garbled)
        assert p.buffered <= 1024 + 64
    assert [m.seq for m in p.feed(b"\x01" + frame(seq=77)) if isinstance(m, Message)][-1:] in ([77], [])


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 10))
def test_truncated_or_spliced_frames(junk: bytes, cut: int) -> None:
    good = frame(seq=5)
    p = FrameParser()
    p.feed(good[:len(good) - cut - 1] + junk)
    # whatever came before, a later good frame is found
    assert any(isinstance(m, Message) and m.seq == 6 for m in p.feed(frame(seq=6) + frame(seq=6)))


# -- timestamps ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "ns"), [
    (b"20250910-14:39:14", 1_757_515_154_000_000_000),
    (b"20250910-14:39:14.411", 1_757_515_154_411_000_000),
    (b"20250910-14:39:14.411802", 1_757_515_154_411_802_000),
    (b"20250910-14:39:14.411802123", 1_757_515_154_411_802_123),
    (b"19700101-00:00:00.000000000", 0),
    (b"20240229-23:59:60", 1_709_251_200_000_000_000),
])
def test_timestamps_with_0_3_6_9_fraction_digits(text: bytes, ns: int) -> None:
    assert parse_timestamp(text) == ns


@pytest.mark.parametrize("text", [b"", b"20250910-14:39", b"20250910-14:39:14.41", b"20250910 14:39:14",
                                  b"20251310-14:39:14", b"20250230-14:39:14", b"20230229-00:00:00",
                                  b"2025091a-14:39:14", b"20250910-24:00:00",
                                  b"20250910-14:39:14.1234567890"])
def test_bad_timestamps_are_errors(text: bytes) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_format_timestamp_has_microseconds() -> None:
    assert format_timestamp(1_757_515_154_411_802_999) == b"20250910-14:39:14.411802"
    assert format_timestamp(1_757_515_155_000_000_000) == b"20250910-14:39:15.000000"
    assert parse_timestamp(format_timestamp(1_757_515_154_411_802_000)) == 1_757_515_154_411_802_000
