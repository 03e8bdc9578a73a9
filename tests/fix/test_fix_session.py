"""FIXT.1.1 session core, one test per rule (venue facts section 4), fed with literal FIX bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.fix.codec import Encoder, FrameParser, Message, fields, format_timestamp
from fastmm.fix.session import (
    AppMessage,
    DisconnectWanted,
    FixSession,
    FrameDropped,
    GapDetected,
    GapFilled,
    InvalidState,
    LoggedOn,
    LoggedOut,
    RejectMessage,
    ResendAnswered,
    Role,
    SequenceResetReceived,
    SessionRejectReceived,
    SessionRejectSent,
    SessionSettings,
    State,
    TestRequestSent,
)
from fastmm.fix.store import FileSeqStore, MemorySeqStore
from fastmm.venues.truex.auth import LogonCredentials, LogonVerifier, logon_password

S = 1_000_000_000
T0 = 1_763_000_000 * S
KEY, SECRET = "key-1", "secret-1"


class Peer:
    """The other side, writing frames by hand so every header field can be chosen."""

    def __init__(self, sender: str = "TRUEX", target: str = "FASTMM") -> None:
        self.enc = Encoder("FIXT.1.1", sender, target)
        self.seq = 1

    def frame(self, mt: bytes, body: bytes = b"", now: int = T0, seq: int | None = None,
              poss_dup: bool = False, orig: int | None = None, sending_time: bytes | None = None) -> bytes:
        if seq is None:
            seq = self.seq
            self.seq += 1
        extra = b""
        if poss_dup:
            extra += b"43=Y\x01"
        if orig is not None:
            extra += b"122=%b\x01" % format_timestamp(orig)
        return self.enc.encode(mt, seq, sending_time or format_timestamp(now), body, extra)


def out_msgs(s: FixSession) -> list[Message]:
    items = FrameParser().feed(b"".join(s.data_to_send()))
    assert all(isinstance(m, Message) for m in items)
    return items  # type: ignore[return-value]


def settings_(**kw: object) -> SessionSettings:
    base: dict[str, object] = {"sender_comp_id": "FASTMM", "target_comp_id": "TRUEX", "heartbeat_s": 10}
    base.update(kw)
    return SessionSettings(**base)  # type: ignore[arg-type]


def logged_on(store: MemorySeqStore | None = None, **kw: object) -> tuple[FixSession, Peer]:
    s = FixSession(settings_(**kw), store or MemorySeqStore(), logon_fields=LogonCredentials(KEY, SECRET))
    p = Peer()
    s.connection_made(T0)
    s.data_to_send()
    s.receive_data(p.frame(b"A", b"108=10\x01141=Y\x011137=9\x01"), T0)
    assert s.state is State.ACTIVE
    s.events_received()
    return s, p


def types(msgs: list[Message]) -> list[bytes]:
    return [m.msg_type for m in msgs]


# -- logon -------------------------------------------------------------------------------------------
def test_initiator_logon_carries_truex_fields_in_header_order() -> None:
    s = FixSession(settings_(), MemorySeqStore(), logon_fields=LogonCredentials(KEY, SECRET))
    s.connection_made(T0)
    (logon,) = out_msgs(s)
    tags = [t for t, _ in logon.fields]
    assert tags[:7] == [8, 9, 35, 49, 56, 34, 52] and tags[-1] == 10
    assert logon.get(108) == b"10" and logon.get(141) == b"Y" and logon.get(1137) == b"9"
    assert logon.get(98) is None  # TrueX does not use EncryptMethod
    assert logon.get(553) == KEY.encode()
    want = logon_password(SECRET, logon.sending_time, 1, "FASTMM", "TRUEX", KEY)
    assert logon.get(554) == want.encode()
    assert s.state is State.LOGON_SENT


def test_logon_answer_logs_on() -> None:
    s = FixSession(settings_(), MemorySeqStore(), logon_fields=LogonCredentials(KEY, SECRET))
    s.connection_made(T0)
    s.data_to_send()
    s.receive_data(Peer().frame(b"A", b"108=10\x01141=Y\x011137=9\x01"), T0)
    (ev,) = s.events_received()
    assert ev == LoggedOn(10, True, 2, 1)
    assert s.state is State.ACTIVE and s.next_target == 2


def test_first_message_not_logon_is_logout_and_disconnect() -> None:
    s = FixSession(settings_(), MemorySeqStore())
    s.connection_made(T0)
    s.data_to_send()
    s.receive_data(Peer().frame(b"0"), T0)
    (logout,) = out_msgs(s)
    assert logout.msg_type == b"5" and logout.get(58) == b"first message is not a Logon"
    assert isinstance(s.events_received()[-1], DisconnectWanted)
    assert s.state is State.CLOSED


@pytest.mark.parametrize(("mt", "body"), [(b"3", b"45=1\x01373=8\x0158=Authentication failed\x01"),
                                          (b"5", b"58=Authentication failed\x01")])
def test_refused_logon_disconnects_without_answer(mt: bytes, body: bytes) -> None:
    s = FixSession(settings_(), MemorySeqStore())
    s.connection_made(T0)
    s.data_to_send()
    s.receive_data(Peer().frame(mt, body), T0)
    assert s.data_to_send() == []
    assert s.events_received()[-1] == DisconnectWanted("logon refused: Authentication failed")
    assert s.state is State.CLOSED


def test_logon_timeout_disconnects() -> None:
    s = FixSession(settings_(logon_timeout_s=2.0), MemorySeqStore())
    s.connection_made(T0)
    assert s.next_deadline() == T0 + 2 * S
    s.on_timer(T0 + S)
    assert s.events_received() == []
    s.on_timer(T0 + 2 * S)
    assert s.events_received() == [DisconnectWanted("no Logon within 2 s")]


def test_send_before_logon_is_invalid_state() -> None:
    s = FixSession(settings_(), MemorySeqStore())
    with pytest.raises(InvalidState):
        s.send(b"D", b"11=x\x01", T0)


def test_logon_answer_with_too_high_seq_sends_resend_request() -> None:
    s = FixSession(settings_(), MemorySeqStore())
    s.connection_made(T0)
    s.data_to_send()
    p = Peer()
    s.receive_data(p.frame(b"A", b"108=10\x01141=Y\x011137=9\x01", seq=5), T0)
    (rr,) = out_msgs(s)
    assert rr.msg_type == b"2" and rr.get(7) == b"1" and rr.get(16) == b"0"
    evs = s.events_received()
    assert isinstance(evs[0], LoggedOn) and evs[1] == GapDetected(1, 5)
    s.receive_data(p.frame(b"4", b"123=Y\x0136=5\x01", seq=1, poss_dup=True), T0)  # peer gap-fills 1..4
    s.receive_data(p.frame(b"0", seq=6), T0)
    assert s.next_target == 7 and not s.gap_outstanding
    assert GapFilled(6) in s.events_received()


# -- heartbeats and TestRequest ------------------------------------------------------------------------
def test_heartbeat_sent_after_heartbeat_interval_of_our_silence() -> None:
    s, p = logged_on()
    s.on_timer(T0 + 9 * S)
    assert out_msgs(s) == []
    s.receive_data(p.frame(b"0", now=T0 + 9 * S), T0 + 9 * S)
    s.on_timer(T0 + 10 * S)
    assert types(out_msgs(s)) == [b"0"]


def test_test_request_after_silence_then_disconnect() -> None:
    s, _ = logged_on()
    assert s.next_deadline() == T0 + 10 * S  # our heartbeat first
    s.on_timer(T0 + 10 * S)
    assert types(out_msgs(s)) == [b"0"]
    s.on_timer(T0 + 12 * S)  # 1.2 x HeartBtInt of silence from the peer
    (tr,) = out_msgs(s)
    assert tr.msg_type == b"1" and tr.get(112) == b"TEST-%d" % (T0 + 12 * S)
    assert isinstance(s.events_received()[0], TestRequestSent)
    # No Heartbeat while our TestRequest is outstanding (QuickFIX's rule, issue 19 item 6): the next
    # deadline is the 2.4 x limit at 24 s, not our heartbeat at 22 s.
    assert s.next_deadline() == T0 + 24 * S
    s.on_timer(T0 + 22 * S)
    assert out_msgs(s) == []
    s.on_timer(T0 + 24 * S)  # 2.4 x: still nothing
    evs = s.events_received()
    assert isinstance(evs[-1], DisconnectWanted) and "TestRequest unanswered" in evs[-1].reason
    assert s.state is State.CLOSED


def test_test_request_answer_keeps_session_up() -> None:
    s, p = logged_on()
    s.on_timer(T0 + 12 * S)
    trid = next(m for m in out_msgs(s) if m.msg_type == b"1").get(112)
    assert trid is not None
    s.receive_data(p.frame(b"0", b"112=%b\x01" % trid, now=T0 + 13 * S), T0 + 13 * S)
    s.on_timer(T0 + 24 * S)
    assert s.state is State.ACTIVE


def test_test_request_is_answered_with_heartbeat_echoing_112() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"1", b"112=TEST-CLI_CLIENT\x01"), T0)
    (hb,) = out_msgs(s)
    assert hb.msg_type == b"0" and hb.get(112) == b"TEST-CLI_CLIENT"


# -- sequence numbers -------------------------------------------------------------------------------
def test_gap_sends_resend_request_and_queues_until_filled() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"8", b"17=a\x01"), T0)  # seq 2
    frames = {n: p.frame(b"8", b"17=%d\x01" % n, seq=n) for n in (3, 4, 5, 6)}
    s.receive_data(frames[5] + frames[6], T0)  # 3 and 4 lost
    (rr,) = out_msgs(s)
    assert rr.msg_type == b"2" and rr.get(7) == b"3" and rr.get(16) == b"0"
    assert [type(e) for e in s.events_received()] == [AppMessage, GapDetected]
    assert s.next_target == 3 and s.gap_outstanding
    resent = [p.frame(b"8", b"17=%d\x01" % n, seq=n, poss_dup=True, orig=T0) for n in (3, 4, 5, 6)]
    s.receive_data(b"".join(resent), T0)
    evs = s.events_received()
    apps = [e.msg.get(17) for e in evs if isinstance(e, AppMessage)]
    assert apps == [b"3", b"4", b"5", b"6"]  # in order, each once (PossDup copies of 5, 6 ignored)
    assert GapFilled(7) in evs and s.next_target == 7
    assert out_msgs(s) == []  # only one ResendRequest for the whole gap


def test_too_low_without_poss_dup_logs_out() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"0") + p.frame(b"0"), T0)  # 2, 3
    s.receive_data(p.frame(b"0", seq=2), T0)
    (lo,) = out_msgs(s)
    assert lo.msg_type == b"5" and lo.get(58) == b"MsgSeqNum too low, expecting 4 but received 2"
    evs = s.events_received()
    assert isinstance(evs[-2], LoggedOut) and isinstance(evs[-1], DisconnectWanted)


def test_too_low_with_poss_dup_is_ignored_silently() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"8", b"17=x\x01"), T0)
    s.events_received()
    s.receive_data(p.frame(b"8", b"17=x\x01", seq=2, poss_dup=True, orig=T0), T0)
    assert out_msgs(s) == [] and s.events_received() == [] and s.next_target == 3


def test_poss_dup_needs_orig_sending_time() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"8", b"17=x\x01", poss_dup=True), T0)
    (rej,) = out_msgs(s)
    assert rej.msg_type == b"3" and rej.get(45) == b"2" and rej.get(371) == b"122" and rej.get(373) == b"1"
    assert s.next_target == 3


def test_garbled_frame_is_ignored_without_advancing() -> None:
    s, p = logged_on()
    good = p.frame(b"8", b"17=a\x01")  # seq 2
    bad = good[:-4] + b"%03d\x01" % ((int(good[-4:-1]) + 1) % 256)
    s.receive_data(bad, T0)
    assert s.next_target == 2 and out_msgs(s) == []
    assert [type(e) for e in s.events_received()] == [FrameDropped]
    s.receive_data(good, T0)
    assert s.next_target == 3 and isinstance(s.events_received()[0], AppMessage)


def test_sequence_reset_gap_fill_sets_expected() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"4", b"123=Y\x0136=10\x01", seq=2), T0)
    assert s.next_target == 10
    assert s.events_received() == [SequenceResetReceived(10, gap_fill=True)]


def test_sequence_reset_reset_mode_ignores_seq_and_never_lowers() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"4", b"36=20\x01", seq=999), T0)  # MsgSeqNum ignored in Reset mode
    assert s.next_target == 20 and out_msgs(s) == []
    s.receive_data(p.frame(b"4", b"36=5\x01", seq=20), T0)
    (rej,) = out_msgs(s)
    assert rej.msg_type == b"3" and rej.get(373) == b"5" and rej.get(371) == b"36"
    assert s.next_target == 20


def test_resend_request_is_answered_with_one_gap_fill_never_stale_orders() -> None:
    s, p = logged_on()
    for i in range(3):
        s.send(b"D", b"11=o%d\x01" % i, T0)  # seqs 2, 3, 4
    s.data_to_send()
    s.receive_data(p.frame(b"2", b"7=2\x0116=0\x01"), T0 + S)
    (gf,) = out_msgs(s)
    assert gf.msg_type == b"4" and gf.seq == 2 and gf.poss_dup
    assert gf.get(123) == b"Y" and gf.get(36) == b"5" and gf.get(122) is None
    assert s.next_sender == 5  # the gap fill takes no new number
    assert ResendAnswered(2, 5) in s.events_received()


def test_sequence_numbers_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "fix" / "s.seq"
    store = FileSeqStore(path)
    s, p = logged_on(store, reset_on_logon=False)  # type: ignore[arg-type]
    s.send(b"D", b"11=a\x01", T0)
    s.receive_data(p.frame(b"0"), T0)
    store.close()
    again = FileSeqStore(path)
    assert (again.next_sender, again.next_target) == (3, 3)
    s2 = FixSession(settings_(reset_on_logon=False), again)
    s2.connection_made(T0)
    (logon,) = out_msgs(s2)
    assert logon.seq == 3 and logon.get(141) is None
    again.close()


# -- logout ------------------------------------------------------------------------------------------
def test_logout_by_us_waits_for_the_answer() -> None:
    s, p = logged_on()
    s.logout("bye", T0)
    (lo,) = out_msgs(s)
    assert lo.msg_type == b"5" and lo.get(58) == b"bye" and s.state is State.LOGOUT_SENT
    s.receive_data(p.frame(b"5"), T0)
    assert s.events_received() == [LoggedOut("", by_peer=False), DisconnectWanted("logout complete")]


def test_logout_by_us_times_out() -> None:
    s, _ = logged_on(logout_timeout_s=2.0)
    s.logout("", T0)
    s.on_timer(T0 + 2 * S)
    assert isinstance(s.events_received()[-1], DisconnectWanted) and s.state is State.CLOSED


def test_logout_by_peer_is_answered() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"5", b"58=maintenance\x01"), T0)
    (lo,) = out_msgs(s)
    assert lo.msg_type == b"5"
    assert s.events_received() == [LoggedOut("maintenance", by_peer=True),
                                   DisconnectWanted("peer logged out: maintenance")]


# -- rejects -------------------------------------------------------------------------------------------
def test_malformed_application_message_gets_session_reject() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"8", b"17=\x0137=x\x01"), T0)  # empty value
    (rej,) = out_msgs(s)
    assert (rej.get(45), rej.get(371), rej.get(372), rej.get(373)) == (b"2", b"17", b"8", b"4")
    assert isinstance(s.events_received()[0], SessionRejectSent)
    assert s.next_target == 3  # a rejected message is still counted


def test_decoder_reject_becomes_session_reject() -> None:
    def decoder(msg: Message) -> object:
        if msg.get(37) is None:
            raise RejectMessage(1, 37, "required tag 37 missing")
        return "ok"

    s = FixSession(settings_(), MemorySeqStore(), decoder=decoder)
    p = Peer()
    s.connection_made(T0)
    s.receive_data(p.frame(b"A", b"108=10\x01141=Y\x011137=9\x01"), T0)
    s.data_to_send()
    s.receive_data(p.frame(b"8", b"17=a\x01") + p.frame(b"8", b"37=b\x01"), T0)
    (rej,) = out_msgs(s)
    assert rej.get(373) == b"1" and rej.get(371) == b"37" and rej.get(58) == b"required tag 37 missing"
    apps = [e for e in s.events_received() if isinstance(e, AppMessage)]
    assert [a.record for a in apps] == ["ok"]


def test_unsupported_msg_type_is_rejected() -> None:
    s, p = logged_on(app_msg_types=frozenset({b"8"}))
    s.receive_data(p.frame(b"ZZ"), T0)
    (rej,) = out_msgs(s)
    assert rej.get(373) == b"11" and rej.get(372) == b"ZZ"


def test_session_reject_received_is_reported() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"3", b"45=7\x01371=44\x01372=D\x01373=5\x0158=bad\x01"), T0)
    assert s.events_received() == [SessionRejectReceived(7, 5, 44, "D", "bad")]


def test_sending_time_off_by_more_than_tolerance_is_reject_and_logout() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"0", now=T0 - 121 * S), T0)
    rej, lo = out_msgs(s)
    assert rej.msg_type == b"3" and rej.get(373) == b"10" and rej.get(371) == b"52"
    assert lo.msg_type == b"5"
    assert isinstance(s.events_received()[-1], DisconnectWanted)


def test_comp_id_mismatch_is_reject_and_logout() -> None:
    s, _ = logged_on()
    s.receive_data(Peer(sender="OTHER").frame(b"0", seq=2), T0)
    rej, lo = out_msgs(s)
    assert rej.get(373) == b"9" and lo.msg_type == b"5"


def test_second_logon_while_active_ends_session() -> None:
    s, p = logged_on()
    s.receive_data(p.frame(b"A", b"108=10\x011137=9\x01"), T0)
    assert types(out_msgs(s)) == [b"5"] and s.state is State.CLOSED


# -- acceptor role --------------------------------------------------------------------------------------
def acceptor(**kw: object) -> FixSession:
    cfg = settings_(sender_comp_id="TRUEX", target_comp_id="FASTMM", role=Role.ACCEPTOR, **kw)
    return FixSession(cfg, MemorySeqStore(), authenticate=LogonVerifier({KEY: SECRET}))


def client_logon(secret: str = SECRET, hb: int = 5) -> bytes:
    client = FixSession(settings_(heartbeat_s=hb), MemorySeqStore(),
                        logon_fields=LogonCredentials(KEY, secret))
    client.connection_made(T0)
    return b"".join(client.data_to_send())


def test_acceptor_validates_logon_and_answers() -> None:
    a = acceptor()
    a.connection_made(T0)
    assert a.state is State.AWAIT_LOGON and a.data_to_send() == []
    a.receive_data(client_logon(), T0)
    (ans,) = out_msgs(a)
    assert ans.msg_type == b"A" and ans.get(108) == b"5" and ans.get(141) == b"Y" and ans.get(1137) == b"9"
    assert ans.get(554) is None
    assert a.events_received() == [LoggedOn(5, True, 2, 1)]
    assert a.heartbeat_s == 5 and a.next_target == 2


def test_acceptor_refuses_a_bad_password() -> None:
    a = acceptor()
    a.connection_made(T0)
    a.receive_data(client_logon(secret="wrong"), T0)
    rej, lo = out_msgs(a)
    assert rej.msg_type == b"3" and rej.get(373) == b"8" and rej.get(58) == b"Authentication failed"
    assert lo.msg_type == b"5"
    assert a.events_received()[-1] == DisconnectWanted("Authentication failed")


def test_acceptor_and_initiator_talk_to_each_other() -> None:
    a = acceptor()
    c = FixSession(settings_(heartbeat_s=5), MemorySeqStore(), logon_fields=LogonCredentials(KEY, SECRET))
    a.connection_made(T0)
    c.connection_made(T0)
    a.receive_data(b"".join(c.data_to_send()), T0)
    c.receive_data(b"".join(a.data_to_send()), T0)
    assert c.state is State.ACTIVE and a.state is State.ACTIVE
    c.send(b"D", fields([(11, "o1")]), T0)
    a.receive_data(b"".join(c.data_to_send()), T0)
    evs = [e for e in a.events_received() if isinstance(e, AppMessage)]
    assert evs[0].msg.get(11) == b"o1"


# -- bad input ------------------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes_never_crash_an_active_session(chunks: list[bytes]) -> None:
    s, p = logged_on()
    for c in chunks:
        s.receive_data(c, T0)
    s.data_to_send()
    s.events_received()
    if s.state is State.ACTIVE:  # still alive: a good frame is still handled
        s.receive_data(b"8=FIXT.1.1\x01" + b"0" * 5 + p.frame(b"0", seq=s.next_target), T0)
        assert s.state is State.ACTIVE or isinstance(s.events_received()[-1], DisconnectWanted)


def test_ten_megabyte_frame_and_huge_body_length_leave_the_session_up() -> None:
    s, p = logged_on()
    huge = b"8=FIXT.1.1\x019=1000000000\x0135=8\x01"
    big = p.enc.encode(b"8", 2, format_timestamp(T0), b"58=" + b"x" * (10 * 1024 * 1024) + b"\x01")
    s.receive_data(huge, T0)
    for i in range(0, len(big), 1 << 16):
        s.receive_data(big[i:i + (1 << 16)], T0)
        assert s._parser.buffered <= s.settings.max_frame + 64
    assert s.state is State.ACTIVE and s.next_target == 2
    assert {e.reason for e in s.events_received() if isinstance(e, FrameDropped)} == {"frame too large"}
    s.receive_data(p.frame(b"0", seq=2), T0)
    assert s.next_target == 3


def test_acceptor_logon_with_too_high_seq_answers_then_asks_for_resend() -> None:
    a = acceptor()
    c = FixSession(settings_(heartbeat_s=5, reset_on_logon=False), MemorySeqStore(4, 1),
                   logon_fields=LogonCredentials(KEY, SECRET))
    a.connection_made(T0)
    c.connection_made(T0)
    a.receive_data(b"".join(c.data_to_send()), T0)  # Logon with 34=4, acceptor expects 1
    ans, rr = out_msgs(a)
    assert ans.msg_type == b"A" and rr.msg_type == b"2" and rr.get(7) == b"1" and rr.get(16) == b"0"
    assert a.state is State.ACTIVE and a.gap_outstanding


def test_acceptor_refuses_a_logon_for_another_session() -> None:
    a = acceptor()
    a.connection_made(T0)
    other = FixSession(SessionSettings("SOMEONE", "TRUEX"), MemorySeqStore(),
                       logon_fields=LogonCredentials(KEY, SECRET))
    other.connection_made(T0)
    a.receive_data(b"".join(other.data_to_send()), T0)
    assert types(out_msgs(a)) == [b"5"] and a.state is State.CLOSED


def test_thousands_queued_behind_one_hole_are_processed_in_order() -> None:
    s, p = logged_on()
    later = b"".join(p.frame(b"8", b"17=%d\x01" % n, seq=n) for n in range(3, 5003))
    s.receive_data(later, T0)  # 2 is missing
    assert types(out_msgs(s)) == [b"2"]
    s.receive_data(p.frame(b"8", b"17=2\x01", seq=2, poss_dup=True, orig=T0), T0)
    apps = [int(e.msg.get(17) or b"0") for e in s.events_received() if isinstance(e, AppMessage)]
    assert apps == list(range(2, 5003)) and s.next_target == 5003 and not s.gap_outstanding


def test_queue_overflow_behind_a_gap_ends_the_session() -> None:
    s, p = logged_on(max_queued=10)
    s.receive_data(b"".join(p.frame(b"0", seq=n) for n in range(3, 20)), T0)
    assert types(out_msgs(s))[-1] == b"5" and s.state is State.CLOSED
