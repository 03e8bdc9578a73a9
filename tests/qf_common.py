"""What the two QuickFIX peer scripts share (tests/fix/qf_peer.py, the acceptor fastmm's initiator talks
to; tests/sim/qf_initiator.py, the initiator that trades on the TrueX simulator).

Both run as their own processes, print one JSON line per event on stdout, validate with TrueX's own
dictionaries, and compute TrueX's logon HMAC with their own code: nothing here imports fastmm, so a
mistake in fastmm's implementation cannot hide in both sides at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import quickfix as fix

_lock = threading.Lock()


def emit(**kw: object) -> None:
    with _lock:
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()


def raw(msg: fix.Message) -> str:
    return msg.toString().replace("\x01", "|")


def truex_password(header: fix.Header, key_id: str, secret: str) -> str:
    """TrueX's Logon 554: base64(HMAC-SHA256(secret, SendingTime + "A" + MsgSeqNum + SenderCompID +
    TargetCompID + API key id)), from the header as it goes on the wire."""
    text = header.getField(52) + "A" + header.getField(34) + header.getField(49) + header.getField(56) + key_id
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode()


def dictionary_settings(dicts: str, work_dir: str) -> list[str]:
    """The [DEFAULT] lines both peers share: stores and logs in ``work_dir``, TrueX's dictionaries on."""
    d = Path(dicts)
    return ["StartTime=00:00:00", "EndTime=00:00:00",
            f"FileStorePath={Path(work_dir) / 'store'}", f"FileLogPath={Path(work_dir) / 'log'}",
            "UseDataDictionary=Y", f"TransportDataDictionary={d / 'TrueX_FIXT11.xml'}",
            f"AppDataDictionary={d / 'TrueX_FIX50SP2.xml'}", "DefaultApplVerID=FIX.5.0SP2",
            "LogonTimeout=5", "LogoutTimeout=2"]


class EventApp(fix.Application):
    """Prints every session event and message; ``sids`` maps session names to QuickFIX's ids. A subclass
    says how a session is named (``name``) and adds what its side does."""

    def __init__(self, key_id: str, secret: str) -> None:
        super().__init__()
        self.key_id, self.secret = key_id, secret
        self.sids: dict[str, fix.SessionID] = {}

    def name(self, sid: fix.SessionID) -> str:
        raise NotImplementedError

    def onCreate(self, sid: fix.SessionID) -> None:
        self.sids[self.name(sid)] = sid

    def onLogon(self, sid: fix.SessionID) -> None:
        emit(ev="logon", s=self.name(sid))

    def onLogout(self, sid: fix.SessionID) -> None:
        emit(ev="logout", s=self.name(sid))

    def toAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        emit(ev="out", s=self.name(sid), raw=raw(msg))

    def toApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        emit(ev="out", s=self.name(sid), raw=raw(msg))

    def fromAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        emit(ev="in", s=self.name(sid), raw=raw(msg))

    def fromApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        emit(ev="in", s=self.name(sid), raw=raw(msg))


def stdin_commands() -> Iterator[dict]:
    """The JSON commands a test writes to the peer's stdin, until ``quit`` or end of input."""
    for line in sys.stdin:
        if not line.strip():
            continue
        c = json.loads(line)
        if c["cmd"] == "quit":
            return
        yield c
