"""Issue 19's session conformance items and the ResendRequest timeout (issue 16 item 5), bytes in and out.

Each test replays what QuickFIX's acceptance scenario sends and checks the exact answer fastmm writes.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from test_fix_session import KEY, SECRET, T0, Peer, S, logged_on, out_msgs, settings_, types
from test_fix_transport import _raw_server, _read_msgs, _until, client

from fastmm.backoff import Backoff
from fastmm.event_loop import run
from fastmm.fix.codec import Encoder, FrameParser, Message, format_timestamp
from fastmm.fix.session import (
    AppMessage,
    DisconnectWanted,
    Event,
    FixSession,
    GapDetected,
    GapFilled,
    ResendRequestRepeated,
    SessionResetByLogon,
    SessionSettings,
    State,
)
from fastmm.fix.store import MemorySeqStore
from fastmm.fix.transport import FixInitiator
from fastmm.venues.truex.auth import LogonCredentials


# -- 1. sequence reset by Logon in a running session ------------------------------------------------
def test_reset_logon_while_active_is_answered_with_141_and_both_sides_restart_at_1() -> None:
    s, p = logged_on()
    for i in range(1, 6):
        s.receive_data(p.frame(b"0", now=T0 + i * 10 * S), T0 + i * 10 * S)
        s.on_timer(T0 + i * 10 * S)  # our heartbeats move our number too
    out_msgs(s)
    now = T0 + 60 * S
    assert (s.next_sender, s.next_target) == (7, 7)
    s.receive_data(p.frame(b"A", b"108=10\x01141=Y\x011137=9\x01", now=now, seq=1), now)
    (ans,) = out_msgs(s)
    assert ans.msg_type == b"A" and ans.seq == 1 and ans.get(141) == b"Y" and ans.get(108) == b"10"
    assert [e for e in s.events_received() if isinstance(e, SessionResetByLogon)] == [
        SessionResetByLogon(next_sender=2, next_target=2)]
    assert s.state is State.ACTIVE and (s.next_sender, s.next_target) == (2, 2)
    p.seq = 2
    s.receive_data(p.frame(b"1", b"112=after-reset\x01", now=now), now)
    (hb,) = out_msgs(s)
    assert hb.msg_type == b"0" and hb.seq == 2 and hb.get(112) == b"after-reset"
    assert s.state is State.ACTIVE and s.next_target == 3


def test_reset_logon_with_seq_other_than_1_ends_the_session() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"A", b"108=10\x01141=Y\x011137=9\x01", seq=7), T0)
    assert types(out_msgs(s)) == [b"5"]
    assert s.state is State.CLOSED


# -- 2. a tag without a value ------------------------------------------------------------------------
def test_tag_without_value_is_reject_373_4_and_the_session_goes_on() -> None:
    s, p = logged_on()
    frame = p.frame(b"0").replace(b"56=FASTMM\x01", b"56=\x01")
    frame = frame[:frame.index(b"10=")]
    body = frame[frame.index(b"35="):]
    head = b"8=FIXT.1.1\x019=%d\x01" % len(body)
    frame = head + body
    frame += b"10=%03d\x01" % (sum(frame) & 255)
    s.receive_data(frame, T0)
    (rej,) = out_msgs(s)
    assert rej.msg_type == b"3" and rej.get(373) == b"4" and rej.get(371) == b"56" and rej.get(45) == b"2"
    assert s.state is State.ACTIVE and s.next_target == 3
    s.receive_data(p.frame(b"1", b"112=x\x01"), T0)
    assert types(out_msgs(s)) == [b"0"]


# -- 3. an invalid MsgType ------------------------------------------------------------------------------
def test_invalid_msg_type_is_rejected_373_11_when_the_session_sets_no_types() -> None:
    s, p = logged_on()  # app_msg_types None, as in `fastmm fix connect`
    s.receive_data(p.frame(b"*", b"58=x\x01"), T0)
    (rej,) = out_msgs(s)
    assert rej.get(372) == b"*" and rej.get(373) == b"11" and rej.get(45) == b"2"
    assert s.state is State.ACTIVE and s.next_target == 3
    s.receive_data(p.frame(b"8", b"11=a\x01"), T0)  # a TrueX type still reaches the application
    assert out_msgs(s) == [] and any(isinstance(e, AppMessage) for e in s.events_received())


# -- 4. fields of session messages against TrueX's FIXT11 dictionary --------------------------------
@pytest.mark.parametrize(("body", "reason", "tag"), [
    (b"999=HI\x01", b"0", b"999"),   # undefined tag
    (b"58=hello\x01", b"2", b"58"),  # defined, but not in a Heartbeat
    (b"5001=x\x01", b"0", b"5001"),  # user-defined: validated by default
])
def test_undefined_or_misplaced_tag_in_a_heartbeat_is_rejected(body: bytes, reason: bytes, tag: bytes) -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"0", body), T0)
    (rej,) = out_msgs(s)
    assert rej.msg_type == b"3" and rej.get(373) == reason and rej.get(371) == tag and rej.get(372) == b"0"
    assert s.state is State.ACTIVE and s.next_target == 3


def test_required_tag_missing_in_a_resend_request_is_373_1() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"2", b"7=1\x01"), T0)
    (rej,) = out_msgs(s)
    assert rej.get(373) == b"1" and rej.get(371) == b"16"


@pytest.mark.parametrize(("kw", "body"), [
    ({"allow_unknown_fields": True}, b"999=HI\x01"),
    ({"allow_unknown_fields": True}, b"58=hello\x01"),
    ({"validate_user_defined_fields": False}, b"5001=x\x01"),
])
def test_validation_switches_let_fields_through(kw: dict[str, bool], body: bytes) -> None:
    s, p = logged_on(**kw)
    s.receive_data(p.frame(b"1", b"112=t\x01" + body), T0)
    (hb,) = out_msgs(s)
    assert hb.msg_type == b"0" and hb.get(112) == b"t"


def test_fields_out_of_order_switch() -> None:
    for validate, want in ((True, b"3"), (False, b"0")):
        s, p = logged_on(validate_fields_out_of_order=validate)
        s.receive_data(p.frame(b"1", b"112=t\x0143=N\x01"), T0)  # header tag 43 after the body
        (m,) = out_msgs(s)
        assert m.msg_type == want
        if want == b"3":
            assert m.get(373) == b"14" and m.get(371) == b"43"


def test_a_logout_with_an_odd_field_is_still_honoured() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"5", b"58=bye\x01999=x\x01"), T0)
    assert types(out_msgs(s)) == [b"5"] and s.state is State.CLOSED


# -- 5. a Logon answer with a bad SendingTime -----------------------------------------------------------
def test_logon_answer_with_bad_sending_time_is_logout_and_disconnect_without_reject() -> None:
    s = FixSession(settings_(), MemorySeqStore(), logon_fields=LogonCredentials(KEY, SECRET))
    s.connection_made(T0)
    s.data_to_send()
    s.receive_data(Peer().frame(b"A", b"108=10\x011137=9\x01", now=T0 - 600 * S), T0)
    assert types(out_msgs(s)) == [b"5"]
    assert isinstance(s.events_received()[-1], DisconnectWanted) and s.state is State.CLOSED


# -- 6. no Heartbeat while a TestRequest is outstanding -------------------------------------------------
def test_no_heartbeat_while_test_request_outstanding_then_heartbeats_resume() -> None:
    s, p = logged_on()
    s.on_timer(T0 + 12 * S)
    assert types(out_msgs(s)) == [b"1"]  # TestRequest at 1.2 x (it counts as our sending)
    for t in (18, 22, 23):
        assert s.next_deadline() == T0 + 24 * S
        s.on_timer(T0 + t * S)
        assert out_msgs(s) == []
    s.receive_data(p.frame(b"0", now=T0 + 23 * S), T0 + 23 * S)  # the answer arrives
    assert s.next_deadline() == T0 + 22 * S  # our heartbeat is overdue: at once
    s.on_timer(T0 + 23 * S)
    assert types(out_msgs(s)) == [b"0"]


# -- 7. too-low ResendRequest or Logout (decision: answer as QuickFIX does) -----------------------------
def test_too_low_resend_request_is_answered_without_logout() -> None:
    s, p = logged_on()
    s.send(b"D", b"11=a\x01", T0)
    s.send(b"D", b"11=b\x01", T0)
    s.receive_data(p.frame(b"0"), T0)
    out_msgs(s)
    assert s.next_target == 3
    s.receive_data(p.frame(b"2", b"7=2\x0116=0\x01", seq=2), T0)  # 2 again, no PossDup
    (gf,) = out_msgs(s)
    assert gf.msg_type == b"4" and gf.get(123) == b"Y" and gf.seq == 2 and gf.get(36) == b"4"
    assert s.state is State.ACTIVE and s.next_target == 3


def test_too_low_logout_is_answered_and_disconnects() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"0"), T0)
    s.receive_data(p.frame(b"5", b"58=going\x01", seq=2), T0)
    (lo,) = out_msgs(s)
    assert lo.msg_type == b"5" and lo.get(58) is None  # an answer, not "MsgSeqNum too low"
    assert s.state is State.CLOSED


def test_too_low_other_message_still_logs_out() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"0"), T0)
    s.receive_data(p.frame(b"1", b"112=x\x01", seq=2), T0)
    (lo,) = out_msgs(s)
    assert lo.msg_type == b"5" and lo.get(58) == b"MsgSeqNum too low, expecting 3 but received 2"


# -- 8. EncryptMethod as a dialect setting ----------------------------------------------------------------
def test_encrypt_method_is_a_setting_off_for_truex() -> None:
    for on in (False, True):
        s = FixSession(settings_(encrypt_method=on), MemorySeqStore(), logon_fields=LogonCredentials(KEY, SECRET))
        s.connection_made(T0)
        (logon,) = out_msgs(s)
        assert (logon.get(98) == b"0") is on
        if on:  # right after the header, before 108, as FIXT's Logon lists it
            tags = [t for t, _ in logon.fields]
            assert tags.index(98) == tags.index(52) + 1 and tags.index(98) < tags.index(108)


# -- ResendRequest that is never answered ------------------------------------------------------------------
def test_unanswered_resend_request_is_asked_again_then_the_session_is_recycled() -> None:
    s, p = logged_on(resend_timeout_s=2.0, resend_retries=2)
    p.seq = 5
    s.receive_data(p.frame(b"8", b"11=q\x01"), T0)  # 2..4 missing
    (rr,) = out_msgs(s)
    assert rr.msg_type == b"2" and rr.get(7) == b"2"
    assert GapDetected(2, 5) in s.events_received()
    assert s.next_deadline() == T0 + 2 * S
    s.on_timer(T0 + 2 * S)
    (rr2,) = out_msgs(s)
    assert rr2.msg_type == b"2" and rr2.get(7) == b"2" and rr2.get(16) == b"0"
    assert s.events_received() == [ResendRequestRepeated(2, 2)]
    s.on_timer(T0 + 4 * S)
    assert types(out_msgs(s)) == [b"2"]
    s.on_timer(T0 + 6 * S)  # 3 asks, none answered: Logout, disconnect (the initiator reconnects)
    (lo,) = out_msgs(s)
    assert lo.msg_type == b"5" and b"ResendRequest from 2 unanswered after 3 asks" in (lo.get(58) or b"")
    assert isinstance(s.events_received()[-1], DisconnectWanted) and s.state is State.CLOSED


def test_resend_progress_renews_the_wait_and_a_filled_gap_stops_the_timer() -> None:
    s, p = logged_on(resend_timeout_s=2.0, resend_retries=0)
    p.seq = 5
    s.receive_data(p.frame(b"8", b"11=q\x01"), T0)
    out_msgs(s)
    s.receive_data(p.frame(b"8", b"11=r\x01", seq=2, poss_dup=True, orig=T0), T0 + S)  # slow, but moving
    s.on_timer(T0 + 2 * S)
    assert out_msgs(s) == [] and s.state is State.ACTIVE  # progress: no re-ask, no recycle
    s.receive_data(p.frame(b"4", b"123=Y\x0136=5\x01", seq=3, poss_dup=True), T0 + 3 * S)
    evs = s.events_received()
    assert any(isinstance(e, GapFilled) for e in evs)
    assert [e.msg.get(11) for e in evs if isinstance(e, AppMessage)] == [b"r", b"q"]
    assert not s.gap_outstanding and s.next_deadline() == T0 + 10 * S  # heartbeat only
    s.on_timer(T0 + 10 * S)
    assert types(out_msgs(s)) == [b"0"] and s.state is State.ACTIVE


def test_resend_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="resend"):
        SessionSettings("A", "B", resend_timeout_s=0)


def test_hostile_peer_that_never_answers_a_resend_request_gets_the_session_recycled() -> None:
    """A raw loopback peer (QuickFIX always answers): logs on, jumps its MsgSeqNum, keeps the session alive
    with Heartbeats but ignores every ResendRequest. fastmm asks again once, then logs out and reconnects."""
    async def main() -> None:
        conns: list[list[Message]] = []

        async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            parser, enc, seq = FrameParser(), Encoder("FIXT.1.1", "TRUEX", "FASTMM"), 1
            got: list[Message] = []
            conns.append(got)
            while True:
                try:
                    msgs = await _read_msgs(reader, parser, 5)
                except (TimeoutError, ConnectionError):
                    break
                if not msgs and reader.at_eof():
                    break
                for m in msgs:
                    got.append(m)
                    now = format_timestamp(time.time_ns())
                    if m.msg_type == b"A":
                        writer.write(enc.encode(b"A", 1, now, b"108=1\x01141=Y\x011137=9\x01"))
                        writer.write(enc.encode(b"8", 5, now, b"11=behind-a-gap\x01"))
                        seq = 6
                    elif m.msg_type in (b"0", b"1"):
                        trid = m.get(112)
                        writer.write(enc.encode(b"0", seq, now, b"112=%b\x01" % trid if trid else b""))
                        seq += 1
            writer.close()

        server, port = await _raw_server(hostile)
        events: list[Event] = []
        ini = FixInitiator(client(hb=1, resend_timeout_s=0.3, resend_retries=1, logout_timeout_s=0.3),
                           "127.0.0.1", port, lambda c, e: events.append(e), backoff=Backoff(0.05, 0.1, seed=5))
        task = asyncio.create_task(ini.run())
        try:
            await _until(lambda: len(conns) >= 2 and len(conns[1]) >= 1, 8)
            await ini.stop()
            await asyncio.wait_for(task, 5)
        finally:
            task.cancel()
            server.close()
            await server.wait_closed()
        first = conns[0]
        asks = [m for m in first if m.msg_type == b"2"]
        assert len(asks) == 2 and all(m.get(7) == b"2" for m in asks)
        logout = next(m for m in first if m.msg_type == b"5")
        assert b"unanswered after 2 asks" in (logout.get(58) or b"")
        assert ResendRequestRepeated(2, 2) in events
        assert not [e for e in events if isinstance(e, AppMessage)]  # never delivered out of order
        assert conns[1][0].msg_type == b"A"  # recycled: a new connection and Logon

    run(main())
