"""FIXT.1.1 session core, sans-I/O: bytes and timer ticks in, bytes and events out.

The same object runs live (under :mod:`fastmm.fix.transport`), in the simulator (acceptor role), and in
unit tests that feed literal bytes. It never reads a clock or touches a socket: every call that depends
on time takes ``now_ns`` (Unix nanoseconds; SendingTime is formatted from it).

Use::

    s = FixSession(settings, store)
    s.connection_made(now)            # initiator: Logon written
    s.receive_data(data, now)         # any number of bytes, any split
    s.on_timer(now)                   # heartbeats, TestRequest, timeouts; call by next_deadline()
    s.send(b"D", body, now)           # an application message (ACTIVE only)
    out = s.data_to_send()            # frames to write, in order
    evs = s.events_received()         # LoggedOn, AppMessage, DisconnectWanted, ...

Session rules (venue facts section 4) and where they are handled:

* first message not a Logon -> Logout with Text, disconnect; a Reject or Logout in answer to our Logon
  (TrueX: 373=8 "Authentication failed") ends the attempt without an answer (``_on_logon_state``);
* heartbeat every HeartBtInt; TestRequest after 1.2 x HeartBtInt of silence; disconnect at 2.4 x;
  TestRequest answered by a Heartbeat echoing 112 (``on_timer``, ``_process``);
* MsgSeqNum too high -> ResendRequest(7=expected, 16=0), later messages queued and processed in order
  once the gap is filled; too low without PossDup -> Logout "MsgSeqNum too low ..." and disconnect;
  too low with PossDup=Y -> ignored (``_on_message``);
* PossDup=Y needs OrigSendingTime (122) not later than SendingTime (except SequenceReset);
* garbled frames are dropped without advancing the expected number (codec);
* SequenceReset-GapFill (123=Y) sets expected = 36; Reset mode sets it whatever 34 is, never lower;
* a ResendRequest is answered with one SequenceReset-GapFill (43=Y) over the whole range: stale
  orders are never re-sent (``_answer_resend``);
* SendingTime more than ``sending_time_tolerance_s`` off -> Reject 373=10 and Logout;
* Logout either way, with a timeout for the answer; session Reject (35=3, 45/371/372/373) for malformed
  messages, from the codec or from the pluggable application ``decoder``;
* session messages are checked against TrueX's FIXT11 dictionary (:mod:`fastmm.fix.dictionary`, QuickFIX's
  switches): undefined tag 373=0, tag not in the message 373=2, required tag missing 373=1; a tag without
  a value 373=4 (also an empty 49/56); a MsgType in neither dictionary 373=11 (``_process``, ``_deliver``);
* a Logon with 141=Y and 34=1 while logged on resets both sides and is answered with our Logon 141=Y
  (``_on_reset_logon``); a Logon answer with a bad SendingTime is a Logout and disconnect, no Reject;
* no Heartbeat while our TestRequest is outstanding (QuickFIX's rule);
* a too-low ResendRequest is still answered and a too-low Logout still honoured (QuickFIX's behaviour,
  README "FIX session"); anything else too low is a Logout;
* our ResendRequest with no progress for ``resend_timeout_s`` is sent again, ``resend_retries`` times, then
  the session is recycled (Logout, disconnect; the initiator reconnects) (``_on_resend_timer``).

The acceptor role validates a Logon instead of sending one; the password check is pluggable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from fastmm.fix._state import InvalidState, State, Trigger, next_state
from fastmm.fix.codec import (
    DEFAULT_MAX_FRAME,
    REJ_COMPID,
    REJ_DATA_FORMAT,
    REJ_INVALID_MSGTYPE,
    REJ_OTHER,
    REJ_OUT_OF_ORDER,
    REJ_REQUIRED_TAG_MISSING,
    REJ_SENDING_TIME,
    REJ_SIGNATURE,
    REJ_TAG_WITHOUT_VALUE,
    REJ_VALUE_INCORRECT,
    Encoder,
    FrameParser,
    Garbled,
    Message,
    fields,
    format_timestamp,
    parse_timestamp,
)
from fastmm.fix.dictionary import APP_MSG_TYPES, check_admin
from fastmm.logs import OnceLogger

if TYPE_CHECKING:
    from fastmm.config import FixSessionConfig

log = logging.getLogger(__name__)

ADMIN_TYPES = frozenset({b"0", b"1", b"2", b"3", b"4", b"5", b"A"})
_NS = 1_000_000_000

__all__ = ["InvalidState", "State"]


class Role(Enum):
    INITIATOR = "initiator"
    ACCEPTOR = "acceptor"


class SeqStore(Protocol):
    next_sender: int
    next_target: int

    def set(self, next_sender: int, next_target: int) -> None: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...


class RejectMessage(Exception):
    """Raised by an application decoder: answer the message with a session Reject (35=3)."""

    def __init__(self, reason: int, ref_tag: int, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.ref_tag = ref_tag
        self.text = text


LogonFields = Callable[[bytes, int, str, str], bytes]  # (SendingTime, MsgSeqNum, sender, target) -> body run
Authenticate = Callable[[Message], "str | None"]  # None = accepted, else the reason
Decoder = Callable[[Message], object]
# The venue side's message store: (begin, end inclusive) -> [(MsgSeqNum, MsgType, body, SendingTime)] of
# the application messages it sent in that range, to send again with PossDupFlag.
ResendSource = Callable[[int, int], "list[tuple[int, bytes, bytes, bytes]]"]


@dataclass(frozen=True, slots=True)
class SessionSettings:
    sender_comp_id: str
    target_comp_id: str
    role: Role = Role.INITIATOR
    heartbeat_s: int = 30
    reset_on_logon: bool = True  # 141=Y on our Logon (initiator)
    begin_string: str = "FIXT.1.1"
    default_appl_ver_id: str = "9"  # 1137, numeric FIX50SP2 as TrueX wants
    sending_time_tolerance_s: float = 120.0
    test_request_factor: float = 1.2
    disconnect_factor: float = 2.4
    logon_timeout_s: float = 10.0
    logout_timeout_s: float = 5.0
    max_frame: int = DEFAULT_MAX_FRAME
    max_queued: int = 10_000  # messages held while a gap is being filled
    orig_sending_time_on_gap_fill: bool = False  # TrueX rejected 122; FIX allows it off on SequenceReset
    app_msg_types: frozenset[bytes] | None = None  # None: every type of TrueX's dictionary goes to the app
    encrypt_method: bool = False  # 98=0 on our Logon: stock FIXT acceptors require it; TrueX omits it
    # QuickFIX's validation switches for session messages (AllowUnknownMsgFields, ValidateUserDefinedFields,
    # ValidateFieldsOutOfOrder), against TrueX's FIXT11 dictionary (fastmm.fix.dictionary).
    allow_unknown_fields: bool = False
    validate_user_defined_fields: bool = True
    validate_fields_out_of_order: bool = True
    resend_timeout_s: float = 10.0  # a ResendRequest with no progress for this long is asked again...
    resend_retries: int = 2  # ...this many times; then the session is recycled (Logout, disconnect)

    def __post_init__(self) -> None:
        if self.heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be positive")
        if not 1.0 < self.test_request_factor < self.disconnect_factor:
            raise ValueError("need 1 < test_request_factor < disconnect_factor")
        if self.resend_timeout_s <= 0 or self.resend_retries < 0:
            raise ValueError("need resend_timeout_s > 0 and resend_retries >= 0")


def session_options(fs: FixSessionConfig) -> dict[str, Any]:
    """The SessionSettings keywords a ``[truex.*]`` FIX session table sets beyond the CompIDs: the dialect
    and validation switches and the resend timeout (``SessionSettings(s, t, **session_options(fs))``)."""
    return {"heartbeat_s": fs.heartbeat_s, "reset_on_logon": fs.reset_on_logon,
            "logon_timeout_s": fs.logon_timeout_s, "encrypt_method": fs.encrypt_method,
            "allow_unknown_fields": fs.allow_unknown_fields,
            "validate_user_defined_fields": fs.validate_user_defined_fields,
            "validate_fields_out_of_order": fs.validate_fields_out_of_order,
            "resend_timeout_s": fs.resend_timeout_s, "resend_retries": fs.resend_retries}


# -- events ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LoggedOn:
    heartbeat_s: int
    reset: bool
    next_sender: int
    next_target: int


@dataclass(frozen=True, slots=True)
class AppMessage:
    msg: Message
    record: object = None  # what the decoder made of it


@dataclass(frozen=True, slots=True)
class LoggedOut:
    text: str
    by_peer: bool


@dataclass(frozen=True, slots=True)
class DisconnectWanted:
    reason: str


@dataclass(frozen=True, slots=True)
class SessionRejectSent:
    ref_seq: int
    reason: int
    ref_tag: int
    text: str


@dataclass(frozen=True, slots=True)
class SessionRejectReceived:
    ref_seq: int
    reason: int
    ref_tag: int
    ref_msg_type: str
    text: str


@dataclass(frozen=True, slots=True)
class GapDetected:
    expected: int
    received: int


@dataclass(frozen=True, slots=True)
class GapFilled:
    next_target: int


@dataclass(frozen=True, slots=True)
class ResendRequestRepeated:
    """Our ResendRequest saw no progress within ``resend_timeout_s``: asked again (``asks`` so far)."""

    expected: int
    asks: int


@dataclass(frozen=True, slots=True)
class SessionResetByLogon:
    """The peer reset both sequences with a Logon 141=Y while logged on; we answered, both go on from 1."""

    next_sender: int
    next_target: int


@dataclass(frozen=True, slots=True)
class ResendAnswered:
    begin: int
    new_seq: int


@dataclass(frozen=True, slots=True)
class SequenceResetReceived:
    new_seq: int
    gap_fill: bool


@dataclass(frozen=True, slots=True)
class TestRequestSent:
    __test__ = False  # not a pytest class
    test_req_id: str


@dataclass(frozen=True, slots=True)
class FrameDropped:
    reason: str
    detail: str


Event = (LoggedOn | AppMessage | LoggedOut | DisconnectWanted | SessionRejectSent | SessionRejectReceived
         | GapDetected | GapFilled | ResendRequestRepeated | SessionResetByLogon | ResendAnswered
         | SequenceResetReceived | TestRequestSent | FrameDropped)


def _int(v: bytes | None) -> int | None:
    return int(v) if v is not None and v.isdigit() and len(v) <= 18 else None


class FixSession:
    """One FIX session on one connection at a time (see the module docstring)."""

    def __init__(self, settings: SessionSettings, store: SeqStore, *,
                 logon_fields: LogonFields | None = None, authenticate: Authenticate | None = None,
                 decoder: Decoder | None = None, resend_source: ResendSource | None = None) -> None:
        self.settings = settings
        self.store = store
        self._resend_source = resend_source
        self._logon_fields = logon_fields
        self._authenticate = authenticate
        self._decoder = decoder
        self._enc = Encoder(settings.begin_string, settings.sender_comp_id, settings.target_comp_id)
        self._begin = settings.begin_string.encode()
        self._sender_b = settings.sender_comp_id.encode()
        self._target_b = settings.target_comp_id.encode()
        self._parser = FrameParser(settings.max_frame)
        self.state = State.DISCONNECTED
        self.bad_input = OnceLogger(log)
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._hb_ns = settings.heartbeat_s * _NS
        self._tolerance_ns = int(settings.sending_time_tolerance_s * _NS)
        self._last_sent = 0
        self._last_recv = 0
        self._test_req_pending = False
        self._test_req_id = b""
        self._deadline = 0  # logon or logout timeout
        self._queue: dict[int, Message] = {}
        self._resend_until = 0  # highest seq seen when we asked for a resend; 0 = none outstanding
        self._resend_deadline = 0  # when our outstanding ResendRequest is judged unanswered
        self._resend_asks = 0  # ResendRequests sent for the outstanding gap
        self._resend_mark = 0  # next_target when the deadline was set: progress moves it
        self._resend_timeout_ns = int(settings.resend_timeout_s * _NS)
        self._answered_resends: set[int] = set()
        self._logon_seq = 0  # MsgSeqNum of a Logon answer that arrived too high (queued behind the gap)
        self.on_frame_in: Callable[[bytes], None] | None = None  # tracing hook (fastmm fix); off by default

    # -- drains ----------------------------------------------------------------------------------
    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    @property
    def next_sender(self) -> int:
        return self.store.next_sender

    @property
    def next_target(self) -> int:
        return self.store.next_target

    @property
    def heartbeat_s(self) -> int:
        return self._hb_ns // _NS

    @property
    def gap_outstanding(self) -> bool:
        return self._resend_until > 0

    # -- connection lifecycle ---------------------------------------------------------------------
    def _fire(self, trigger: Trigger) -> None:
        self.state = next_state(self.state, trigger)

    def connection_made(self, now_ns: int) -> None:
        """A transport is up: an initiator sends its Logon, an acceptor starts waiting for one."""
        self._parser.reset()
        self._clear_gap()
        self._logon_seq = 0
        self._test_req_pending = False
        self._test_req_id = b""
        self._last_recv = self._last_sent = now_ns
        self._deadline = now_ns + int(self.settings.logon_timeout_s * _NS)
        self._hb_ns = self.settings.heartbeat_s * _NS
        if self.settings.role is Role.ACCEPTOR:
            self._fire(Trigger.CONNECT_ACCEPTOR)
            return
        self._fire(Trigger.CONNECT_INITIATOR)
        if self.settings.reset_on_logon:
            self.store.reset()
        self._send_logon(now_ns, self.settings.reset_on_logon, self.settings.heartbeat_s)

    def connection_lost(self) -> None:
        """The transport is gone (either side closed it): ready for the next connection_made."""
        self._fire(Trigger.CONNECTION_LOST)
        self._parser.reset()
        self._clear_gap()

    def logout(self, text: str, now_ns: int) -> None:
        """Start a clean Logout; the peer's answer (or the logout timeout) ends the session."""
        if self.state is State.ACTIVE:
            self._send_admin(b"5", fields([(58, text)]) if text else b"", now_ns)
            self._fire(Trigger.LOGOUT_SEND)
            self._deadline = now_ns + int(self.settings.logout_timeout_s * _NS)
        elif self.state in (State.LOGON_SENT, State.AWAIT_LOGON):
            self._end(f"logout before logon completed: {text}")

    # -- application side -------------------------------------------------------------------------
    def send(self, msg_type: bytes, body: bytes, now_ns: int) -> int:
        """Frame and queue one application message; returns its MsgSeqNum."""
        if self.state is not State.ACTIVE:
            raise InvalidState(f"cannot send {msg_type!r} in state {self.state.value}")
        seq = self.store.next_sender
        self._out.append(self._enc.encode(msg_type, seq, format_timestamp(now_ns), body))
        self.store.set(seq + 1, self.store.next_target)
        self._last_sent = now_ns
        return seq

    def reject(self, msg: Message, reason: int, ref_tag: int, text: str, now_ns: int) -> None:
        """Session Reject of a received message (for checks the application makes after delivery)."""
        self._send_reject(msg.seq, msg.msg_type, reason, ref_tag, text, now_ns)

    # -- time ---------------------------------------------------------------------------------------
    def next_deadline(self) -> int:
        """When ``on_timer`` must next be called (Unix ns); 0 when no timer is needed."""
        st = self.state
        if st in (State.LOGON_SENT, State.AWAIT_LOGON, State.LOGOUT_SENT):
            return self._deadline
        if st is not State.ACTIVE:
            return 0
        hb = self._hb_ns
        cfg = self.settings
        if self._test_req_pending:  # no Heartbeat while our TestRequest is outstanding (QuickFIX's rule)
            due = self._last_recv + int(hb * cfg.disconnect_factor)
        else:
            due = min(self._last_sent + hb, self._last_recv + int(hb * cfg.test_request_factor))
        if self._resend_until:
            due = min(due, self._resend_deadline)
        return due

    def on_timer(self, now_ns: int) -> None:
        st = self.state
        if st in (State.LOGON_SENT, State.AWAIT_LOGON):
            if now_ns >= self._deadline:
                self._end(f"no Logon within {self.settings.logon_timeout_s:g} s")
            return
        if st is State.LOGOUT_SENT:
            if now_ns >= self._deadline:
                self._events.append(LoggedOut("logout not answered in time", by_peer=False))
                self._end(f"Logout not answered within {self.settings.logout_timeout_s:g} s")
            return
        if st is not State.ACTIVE:
            return
        hb = self._hb_ns
        quiet = now_ns - self._last_recv
        if quiet >= hb * self.settings.disconnect_factor:
            self._events.append(LoggedOut("peer silent", by_peer=False))
            self._end(f"nothing received for {quiet / _NS:.1f} s (TestRequest unanswered)")
            return
        if self._resend_until and now_ns >= self._resend_deadline and not self._on_resend_timer(now_ns):
            return
        if quiet >= hb * self.settings.test_request_factor and not self._test_req_pending:
            self._test_req_id = b"TEST-%d" % now_ns
            self._test_req_pending = True
            self._send_admin(b"1", b"112=%b\x01" % self._test_req_id, now_ns)
            self._events.append(TestRequestSent(self._test_req_id.decode()))
        if now_ns - self._last_sent >= hb and not self._test_req_pending:
            self._send_admin(b"0", b"", now_ns)

    def _on_resend_timer(self, now_ns: int) -> bool:
        """Our ResendRequest is due: progress renews it, silence asks again; after ``resend_retries``
        re-asks without progress the session is recycled. False when the session ended."""
        nt = self.store.next_target
        if nt > self._resend_mark:
            self._resend_mark = nt
        elif self._resend_asks > self.settings.resend_retries:
            self._fail(f"ResendRequest from {nt} unanswered after {self._resend_asks} asks", now_ns)
            return False
        else:
            self._resend_asks += 1
            self.bad_input("ResendRequest unanswered, asking again", f"7={nt}")
            self._send_admin(b"2", b"7=%d\x0116=0\x01" % nt, now_ns)
            self._events.append(ResendRequestRepeated(nt, self._resend_asks))
        self._resend_deadline = now_ns + self._resend_timeout_ns
        return True

    # -- receiving ------------------------------------------------------------------------------------
    def receive_data(self, data: bytes, now_ns: int) -> None:
        if self.state in (State.DISCONNECTED, State.CLOSED):
            return
        for item in self._parser.feed(data):
            if self.state in (State.DISCONNECTED, State.CLOSED):
                break
            if isinstance(item, Garbled):
                self.bad_input(f"garbled frame ({item.reason})",
                               f"{item.detail}; {item.nbytes} bytes dropped")
                self._events.append(FrameDropped(item.reason, item.detail))
                continue
            if self.on_frame_in is not None:
                self.on_frame_in(item.raw)
            self._last_recv = now_ns
            self._test_req_pending = False
            self._on_message(item, now_ns)

    def _on_message(self, msg: Message, now_ns: int) -> None:
        if msg.begin_string != self._begin:
            self._fail(f"BeginString {msg.begin_string!r}, expected {self._begin!r}", now_ns)
            return
        if self.state in (State.LOGON_SENT, State.AWAIT_LOGON):
            self._on_logon_state(msg, now_ns)
            return
        if ((msg.sender != self._target_b or msg.target != self._sender_b)
                and not self._empty_comp_id(msg)):  # an empty 49/56 is 373=4 (in _process), not 373=9
            self._send_reject(msg.seq, msg.msg_type, REJ_COMPID, 49 if msg.sender != self._target_b else 56,
                              "CompID problem", now_ns)
            self._fail("CompID problem", now_ns)
            return
        mt = msg.msg_type
        if mt == b"4" and msg.get(123) != b"Y":
            self._on_sequence_reset(msg, now_ns)
            return
        if mt == b"A" and self.state is State.ACTIVE and msg.get(141) == b"Y":
            self._on_reset_logon(msg, now_ns)
            return
        seq = msg.seq
        if seq <= 0:
            self._fail("MsgSeqNum (34) missing or not a number", now_ns)
            return
        expected = self.store.next_target
        if seq > expected:
            self._on_too_high(msg, now_ns)
            return
        if seq < expected:
            if msg.poss_dup:
                return  # a duplicate of something already processed: ignore silently
            if mt in (b"2", b"5") and msg.error is None:
                # Decided as QuickFIX does (README, FIX session): a too-low ResendRequest is still answered
                # and a too-low Logout still honoured; neither moves the expected number.
                self.bad_input("MsgSeqNum too low on a ResendRequest or Logout",
                               f"35={mt.decode()} 34={seq}, expecting {expected}")
                self._process(msg, now_ns, advance=False)
                return
            self._fail(f"MsgSeqNum too low, expecting {expected} but received {seq}", now_ns)
            return
        if not self._check_times(msg, now_ns):
            return
        self._process(msg, now_ns)
        self._drain_queue(now_ns)

    @staticmethod
    def _empty_comp_id(msg: Message) -> bool:
        err = msg.error
        return err is not None and err[0] == REJ_TAG_WITHOUT_VALUE and err[1] in (49, 56)

    def _on_reset_logon(self, msg: Message, now_ns: int) -> None:
        """A Logon with 141=Y while logged on (FIXT.1.1 allows it, e.g. a venue's scheduled reset): both
        sides start again from 1, and the answer is our own Logon with 141=Y."""
        if msg.seq != 1:
            self._fail(f"Logon with ResetSeqNumFlag needs MsgSeqNum 1, received {msg.seq}", now_ns)
            return
        if msg.error is not None:
            self._fail(f"malformed Logon: {msg.error[2]}", now_ns)
            return
        try:
            sent = parse_timestamp(msg.sending_time)
        except ValueError:
            self._fail("Logon with a malformed SendingTime", now_ns)
            return
        if abs(now_ns - sent) > self._tolerance_ns:
            self._fail("SendingTime accuracy problem", now_ns)
            return
        self._clear_gap()
        self._logon_seq = 0
        self.store.reset()
        self._send_logon(now_ns, True, self._hb_ns // _NS)
        self._advance()
        self._events.append(SessionResetByLogon(self.store.next_sender, self.store.next_target))

    def _on_too_high(self, msg: Message, now_ns: int) -> None:
        mt = msg.msg_type
        if mt == b"5":  # the peer is leaving: answer now, whatever the gap
            self._process(msg, now_ns, advance=False)
            return
        if mt == b"2":  # answer at once, or both sides would wait for each other's resend
            self._answer_resend(msg, now_ns)
            self._answered_resends.add(msg.seq)
        if len(self._queue) >= self.settings.max_queued:
            self._fail(f"more than {self.settings.max_queued} messages queued behind a gap", now_ns)
            return
        self._queue[msg.seq] = msg
        if not self._resend_until:
            expected = self.store.next_target
            self._send_admin(b"2", b"7=%d\x0116=0\x01" % expected, now_ns)
            self._events.append(GapDetected(expected, msg.seq))
            self._resend_asks = 1
            self._resend_mark = expected
            self._resend_deadline = now_ns + self._resend_timeout_ns
        self._resend_until = max(self._resend_until, msg.seq)

    def _drain_queue(self, now_ns: int) -> None:
        q = self._queue
        if q:
            while self.state in (State.ACTIVE, State.LOGOUT_SENT):
                nt = self.store.next_target
                m = q.pop(nt, None)
                if m is None:  # entries a GapFill jumped over are stale; then stop at the next hole
                    stale = [s for s in q if s < nt]
                    if not stale:
                        break
                    for s in stale:
                        del q[s]
                    continue
                self._process(m, now_ns)
        if self._resend_until and self.store.next_target > self._resend_until:
            self._clear_gap()
            self._events.append(GapFilled(self.store.next_target))

    def _clear_gap(self) -> None:
        self._queue.clear()
        self._resend_until = 0
        self._resend_asks = 0
        self._answered_resends.clear()

    def _check_times(self, msg: Message, now_ns: int) -> bool:
        try:
            sent = parse_timestamp(msg.sending_time)
        except ValueError as e:
            self.bad_input("bad SendingTime (52)", str(e))
            why = REJ_DATA_FORMAT if msg.sending_time else REJ_REQUIRED_TAG_MISSING
            self._send_reject(msg.seq, msg.msg_type, why, 52, "SendingTime missing or malformed", now_ns)
            self._advance()
            return False
        if abs(now_ns - sent) > self._tolerance_ns:
            self._send_reject(msg.seq, msg.msg_type, REJ_SENDING_TIME, 52, "SendingTime accuracy problem",
                              now_ns)
            self._advance()
            self._fail("SendingTime accuracy problem", now_ns)
            return False
        if msg.poss_dup and msg.msg_type != b"4":
            orig = msg.orig_sending_time
            try:
                orig_ns = parse_timestamp(orig) if orig else None
            except ValueError:
                orig_ns = None
            if orig_ns is None:
                self._send_reject(msg.seq, msg.msg_type, REJ_REQUIRED_TAG_MISSING, 122,
                                  "OrigSendingTime missing or malformed on a PossDup message", now_ns)
                self._advance()
                return False
            if orig_ns > sent:
                self._send_reject(msg.seq, msg.msg_type, REJ_SENDING_TIME, 122,
                                  "OrigSendingTime later than SendingTime", now_ns)
                self._advance()
                self._fail("SendingTime accuracy problem", now_ns)
                return False
        return True

    def _advance(self) -> None:
        self.store.set(self.store.next_sender, self.store.next_target + 1)

    def _process(self, msg: Message, now_ns: int, advance: bool = True) -> None:
        """A message in sequence: act on it, then count it (unless it moved the number itself)."""
        mt = msg.msg_type
        error = msg.error
        if (error is not None and error[0] == REJ_OUT_OF_ORDER
                and not self.settings.validate_fields_out_of_order):
            error = None
        if error is None and mt in ADMIN_TYPES and mt != b"A":
            error = self._check_fields(msg)
        if error is not None:
            reason, tag, text = error
            self.bad_input("malformed message", text)
            if mt != b"5":  # a Logout is honoured whatever it carries: the peer is leaving
                self._send_reject(msg.seq, mt, reason, tag, text, now_ns)
                if advance:
                    self._advance()
                return
        if mt not in ADMIN_TYPES:
            self._deliver(msg, now_ns)
        elif mt == b"0":
            if self._test_req_id and msg.get(112) == self._test_req_id:
                self._test_req_id = b""
        elif mt == b"1":
            trid = msg.get(112)
            if trid is None:
                self._send_reject(msg.seq, mt, REJ_REQUIRED_TAG_MISSING, 112, "TestReqID missing", now_ns)
            else:
                self._send_admin(b"0", b"112=%b\x01" % trid, now_ns)
        elif mt == b"2":
            if msg.seq not in self._answered_resends:
                self._answer_resend(msg, now_ns)
        elif mt == b"3":
            self._events.append(SessionRejectReceived(
                _int(msg.get(45)) or 0, _int(msg.get(373)) or 0, _int(msg.get(371)) or 0,
                (msg.get(372) or b"").decode("ascii", "replace"),
                (msg.get(58) or b"").decode("ascii", "replace")))
        elif mt == b"4":  # GapFill in sequence
            new = _int(msg.get(36))
            if new is None:
                self._send_reject(msg.seq, mt, REJ_REQUIRED_TAG_MISSING, 36, "NewSeqNo missing", now_ns)
            elif new > msg.seq:
                self.store.set(self.store.next_sender, new)
                self._events.append(SequenceResetReceived(new, gap_fill=True))
                return
            else:
                self._send_reject(msg.seq, mt, REJ_VALUE_INCORRECT, 36,
                                  f"attempt to lower sequence number, invalid value NewSeqNo={new}", now_ns)
        elif mt == b"5":
            text = (msg.get(58) or b"").decode("ascii", "replace")
            if self.state is State.LOGOUT_SENT:
                self._events.append(LoggedOut(text, by_peer=False))
                if advance:
                    self._advance()
                self._end("logout complete")
                return
            self._send_admin(b"5", b"", now_ns)
            self._events.append(LoggedOut(text, by_peer=True))
            if advance:
                self._advance()
            self._end(f"peer logged out: {text}" if text else "peer logged out")
            return
        elif mt == b"A":
            if self._queue_logon_consumed(msg):
                self._advance()
            else:
                self._fail("unexpected Logon while logged on", now_ns)
            return
        if advance:
            self._advance()

    def _check_fields(self, msg: Message) -> tuple[int, int, str] | None:
        cfg = self.settings
        return check_admin(msg, allow_unknown_fields=cfg.allow_unknown_fields,
                           validate_user_defined_fields=cfg.validate_user_defined_fields)

    def _queue_logon_consumed(self, msg: Message) -> bool:
        """A Logon answer that was too high is queued and, once reached, only counted."""
        if self._logon_seq and self._logon_seq == msg.seq:
            self._logon_seq = 0
            return True
        return False

    def _deliver(self, msg: Message, now_ns: int) -> None:
        mt = msg.msg_type
        allowed = self.settings.app_msg_types
        if mt not in (APP_MSG_TYPES if allowed is None else allowed):
            self._send_reject(msg.seq, mt, REJ_INVALID_MSGTYPE, 35, f"unsupported MsgType {mt!r}", now_ns)
            return
        record: object = None
        if self._decoder is not None:
            try:
                record = self._decoder(msg)
            except RejectMessage as r:
                self.bad_input("rejected application message", f"35={mt!r}: {r.text}")
                self._send_reject(msg.seq, mt, r.reason, r.ref_tag, r.text, now_ns)
                return
            except Exception as e:  # a decoder bug must not kill the session; reject and log
                self.bad_input("decoder error", f"35={mt!r}: {type(e).__name__}: {e}")
                self._send_reject(msg.seq, mt, REJ_OTHER, 0, "cannot process message", now_ns)
                return
        self._events.append(AppMessage(msg, record))

    def _on_sequence_reset(self, msg: Message, now_ns: int) -> None:
        """SequenceReset-Reset: expected = NewSeqNo whatever MsgSeqNum is, but never lower."""
        error = msg.error or self._check_fields(msg)
        if error is not None:
            self.bad_input("malformed message", error[2])
            self._send_reject(msg.seq, b"4", error[0], error[1], error[2], now_ns)
            return
        new = _int(msg.get(36))
        expected = self.store.next_target
        if new is None:
            self._send_reject(msg.seq, b"4", REJ_REQUIRED_TAG_MISSING, 36, "NewSeqNo missing", now_ns)
            return
        if new < expected:
            self._send_reject(msg.seq, b"4", REJ_VALUE_INCORRECT, 36,
                              f"attempt to lower sequence number, invalid value NewSeqNo={new}", now_ns)
            return
        if new > expected:
            self.store.set(self.store.next_sender, new)
        self._events.append(SequenceResetReceived(new, gap_fill=False))
        self._drain_queue(now_ns)

    def _answer_resend(self, msg: Message, now_ns: int) -> None:
        """One SequenceReset-GapFill over the whole asked range: nothing stale is ever re-sent.

        A venue-side session with a ``resend_source`` (the simulator's exchange) sends its stored
        application messages again instead, with PossDupFlag and OrigSendingTime, and gap-fills the rest
        (its session messages), as a FIX venue does."""
        begin, end = _int(msg.get(7)), _int(msg.get(16))
        nxt = self.store.next_sender
        if begin is None or end is None or begin < 1 or (end and end < begin):
            self._send_reject(msg.seq, b"2", REJ_VALUE_INCORRECT, 7 if begin is None or begin < 1 else 16,
                              "invalid ResendRequest range", now_ns)
            return
        if begin >= nxt:
            self.bad_input("ResendRequest for messages not sent yet", f"7={begin} 16={end}, next {nxt}")
            return
        new = nxt if end == 0 or end >= nxt - 1 else end + 1
        if self._resend_source is not None:
            self._resend_stored(begin, new, now_ns)
            return
        extra = b"43=Y\x01"
        if self.settings.orig_sending_time_on_gap_fill:
            extra += b"122=%b\x01" % format_timestamp(now_ns)
        self._out.append(self._enc.encode(b"4", begin, format_timestamp(now_ns), b"123=Y\x0136=%d\x01" % new,
                                          extra))
        self._last_sent = now_ns
        self._events.append(ResendAnswered(begin, new))

    def _resend_stored(self, begin: int, new: int, now_ns: int) -> None:
        assert self._resend_source is not None
        stored = {seq: (mt, body, st) for seq, mt, body, st in self._resend_source(begin, new - 1)}
        st_now = format_timestamp(now_ns)
        enc = self._enc.encode
        gap_from = 0
        for seq in range(begin, new):
            item = stored.get(seq)
            if item is None:
                gap_from = gap_from or seq
                continue
            if gap_from:
                self._out.append(enc(b"4", gap_from, st_now, b"123=Y\x0136=%d\x01" % seq, b"43=Y\x01"))
                gap_from = 0
            mt, body, orig = item
            self._out.append(enc(mt, seq, st_now, body, b"43=Y\x01122=%b\x01" % orig))
        if gap_from:
            self._out.append(enc(b"4", gap_from, st_now, b"123=Y\x0136=%d\x01" % new, b"43=Y\x01"))
        self._last_sent = now_ns
        self._events.append(ResendAnswered(begin, new))

    # -- logon --------------------------------------------------------------------------------------
    def _on_logon_state(self, msg: Message, now_ns: int) -> None:
        mt = msg.msg_type
        if self.settings.role is Role.INITIATOR and mt in (b"3", b"5"):
            # The Logon was refused (TrueX: 35=3 373=8 "Authentication failed"; QuickFIX: a Logout).
            text = (msg.get(58) or b"").decode("ascii", "replace")
            self.bad_input("logon refused by peer", text)
            if mt == b"3":
                self._events.append(SessionRejectReceived(
                    _int(msg.get(45)) or 0, _int(msg.get(373)) or 0, _int(msg.get(371)) or 0,
                    (msg.get(372) or b"").decode("ascii", "replace"), text))
            else:
                self._events.append(LoggedOut(text, by_peer=True))
            self._end(f"logon refused: {text}" if text else "logon refused")
            return
        if mt != b"A":
            self._fail("first message is not a Logon", now_ns)
            return
        if msg.sender != self._target_b or msg.target != self._sender_b:
            self._fail(f"Logon CompIDs 49={msg.sender!r} 56={msg.target!r} do not match this session", now_ns)
            return
        if msg.error is not None:
            self._fail(f"malformed Logon: {msg.error[2]}", now_ns)
            return
        hb = _int(msg.get(108))
        if hb is None or hb <= 0:
            self._fail("Logon without a valid HeartBtInt (108)", now_ns)
            return
        if msg.get(1137) is None:
            self._fail("Logon without DefaultApplVerID (1137)", now_ns)
            return
        try:
            sent = parse_timestamp(msg.sending_time)
        except ValueError:
            self._fail("Logon with a malformed SendingTime", now_ns)
            return
        if abs(now_ns - sent) > self._tolerance_ns:  # no session yet: Logout and disconnect, no Reject
            self._fail("SendingTime accuracy problem", now_ns)
            return
        reset = msg.get(141) == b"Y"
        acceptor = self.settings.role is Role.ACCEPTOR
        if acceptor:
            if self._authenticate is not None:
                why = self._authenticate(msg)
                if why is not None:
                    self.bad_input("logon refused", why)
                    self._send_reject(msg.seq, b"A", REJ_SIGNATURE, 554, why, now_ns)
                    self._fail(why, now_ns)
                    return
            if reset:
                self.store.reset()
            self._hb_ns = hb * _NS
        elif reset:
            self.store.set(self.store.next_sender, 1)
        seq, expected = msg.seq, self.store.next_target
        if seq <= 0:
            self._fail("Logon without a valid MsgSeqNum", now_ns)
            return
        if seq < expected:
            self._fail(f"MsgSeqNum too low, expecting {expected} but received {seq}", now_ns)
            return
        if acceptor:
            self._send_logon(now_ns, reset, hb)
        self._fire(Trigger.LOGON_DONE)
        self._events.append(LoggedOn(hb if acceptor else self.settings.heartbeat_s, reset,
                                     self.store.next_sender, expected))
        if seq > expected:
            self._logon_seq = seq
            self._on_too_high(msg, now_ns)
        else:
            self._advance()

    def _send_logon(self, now_ns: int, reset: bool, hb: int) -> None:
        seq = self.store.next_sender
        st = format_timestamp(now_ns)
        body = b"98=0\x01108=%d\x01" % hb if self.settings.encrypt_method else b"108=%d\x01" % hb
        if reset:
            body += b"141=Y\x01"
        if self._logon_fields is not None and self.settings.role is Role.INITIATOR:
            body += self._logon_fields(st, seq, self.settings.sender_comp_id, self.settings.target_comp_id)
        body += b"1137=%b\x01" % self.settings.default_appl_ver_id.encode()
        self._out.append(self._enc.encode(b"A", seq, st, body))
        self.store.set(seq + 1, self.store.next_target)
        self._last_sent = now_ns

    # -- sending helpers ------------------------------------------------------------------------------
    def _send_admin(self, msg_type: bytes, body: bytes, now_ns: int) -> None:
        seq = self.store.next_sender
        self._out.append(self._enc.encode(msg_type, seq, format_timestamp(now_ns), body))
        self.store.set(seq + 1, self.store.next_target)
        self._last_sent = now_ns

    def _send_reject(self, ref_seq: int, ref_msg_type: bytes, reason: int, ref_tag: int, text: str,
                     now_ns: int) -> None:
        pairs: list[tuple[int, bytes | str | int]] = [(45, ref_seq)]
        if ref_tag > 0:
            pairs.append((371, ref_tag))
        if ref_msg_type and b"\x01" not in ref_msg_type:
            pairs.append((372, ref_msg_type))
        pairs.append((373, reason))
        safe = text.replace("\x01", " ")
        if safe:
            pairs.append((58, safe))
        self._send_admin(b"3", fields(pairs), now_ns)
        self._events.append(SessionRejectSent(ref_seq, reason, ref_tag, text))

    def _fail(self, text: str, now_ns: int) -> None:
        """A fatal session error: Logout with the reason, then disconnect."""
        self.bad_input("session error", text)
        was_on = self.state in (State.ACTIVE, State.LOGOUT_SENT)
        self._send_admin(b"5", fields([(58, text.replace("\x01", " "))]), now_ns)
        if was_on:
            self._events.append(LoggedOut(text, by_peer=False))
        self._end(text)

    def _end(self, reason: str) -> None:
        self._fire(Trigger.END)
        self._events.append(DisconnectWanted(reason))
