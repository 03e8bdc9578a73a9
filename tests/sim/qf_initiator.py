"""A QuickFIX initiator loaded with TrueX's own dictionaries, run as a separate process by the tests.

It logs on to the TrueX simulator's order-entry and market-data ports (TrueX's HMAC password computed
here with its own code, no fastmm import), validates everything the simulator sends against
TrueX_FIXT11.xml / TrueX_FIX50SP2.xml (a message that breaks them makes QuickFIX send a Reject, which the
test sees as an "out" event with 35=3), and prints one JSON line per event. Commands are JSON lines on
stdin: ``{"cmd": "send", "s": "oe", "type": "D", "fields": [[11, "a1"], ...]}`` and ``{"cmd": "quit"}``.

Usage: qf_initiator.py --dir D --dicts DICT_DIR --key-id K --secret S --oe-port P --md-port Q
       [--sender FASTMM] [--oe-target TRUEX_UAT_OE] [--md-target TRUEX_UAT_MD]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import threading
from pathlib import Path

import quickfix as fix

_lock = threading.Lock()


def emit(**kw: object) -> None:
    with _lock:
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()


def raw(msg: fix.Message) -> str:
    return msg.toString().replace("\x01", "|")


class App(fix.Application):
    def __init__(self, key_id: str, secret: str, names: dict[str, str]) -> None:
        super().__init__()
        self.key_id, self.secret, self.names = key_id, secret, names
        self.sids: dict[str, fix.SessionID] = {}

    def _name(self, sid: fix.SessionID) -> str:
        return self.names.get(sid.getTargetCompID().getValue(), "?")

    def onCreate(self, sid: fix.SessionID) -> None:
        self.sids[self._name(sid)] = sid

    def onLogon(self, sid: fix.SessionID) -> None:
        emit(ev="logon", s=self._name(sid))

    def onLogout(self, sid: fix.SessionID) -> None:
        emit(ev="logout", s=self._name(sid))

    def toAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        hdr = msg.getHeader()
        if hdr.getField(35) == "A":
            text = (hdr.getField(52) + "A" + hdr.getField(34) + hdr.getField(49) + hdr.getField(56) + self.key_id)
            pw = base64.b64encode(hmac.new(self.secret.encode(), text.encode(), hashlib.sha256).digest()).decode()
            msg.setField(553, self.key_id)
            msg.setField(554, pw)
        emit(ev="out", s=self._name(sid), raw=raw(msg))

    def toApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        emit(ev="out", s=self._name(sid), raw=raw(msg))

    def fromAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        emit(ev="in", s=self._name(sid), raw=raw(msg))

    def fromApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        emit(ev="in", s=self._name(sid), raw=raw(msg))


def settings_text(a: argparse.Namespace) -> str:
    d = Path(a.dicts)
    lines = ["[DEFAULT]", "ConnectionType=initiator", "StartTime=00:00:00", "EndTime=00:00:00",
             f"FileStorePath={Path(a.dir) / 'store'}", f"FileLogPath={Path(a.dir) / 'log'}",
             "UseDataDictionary=Y", f"TransportDataDictionary={d / 'TrueX_FIXT11.xml'}",
             f"AppDataDictionary={d / 'TrueX_FIX50SP2.xml'}", "DefaultApplVerID=FIX.5.0SP2",
             "HeartBtInt=5", "ReconnectInterval=1", "ResetOnLogon=Y", "SocketConnectHost=127.0.0.1",
             "ValidateUserDefinedFields=N", "LogonTimeout=5", "LogoutTimeout=2"]
    for target, port in ((a.oe_target, a.oe_port), (a.md_target, a.md_port)):
        lines += ["", "[SESSION]", "BeginString=FIXT.1.1", f"SenderCompID={a.sender}", f"TargetCompID={target}",
                  f"SocketConnectPort={port}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    for name in ("--dir", "--dicts", "--key-id", "--secret"):
        ap.add_argument(name, required=True)
    ap.add_argument("--oe-port", type=int, required=True)
    ap.add_argument("--md-port", type=int, required=True)
    ap.add_argument("--sender", default="FASTMM")
    ap.add_argument("--oe-target", default="TRUEX_UAT_OE")
    ap.add_argument("--md-target", default="TRUEX_UAT_MD")
    a = ap.parse_args()
    Path(a.dir).mkdir(parents=True, exist_ok=True)
    cfg = Path(a.dir) / "initiator.cfg"
    cfg.write_text(settings_text(a))
    app = App(a.key_id, a.secret, {a.oe_target: "oe", a.md_target: "md"})
    settings = fix.SessionSettings(str(cfg))
    initiator = fix.SocketInitiator(app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
    initiator.start()
    emit(ev="ready")
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            c = json.loads(line)
            if c["cmd"] == "quit":
                break
            if c["cmd"] == "send":
                m = fix.Message()
                m.getHeader().setField(fix.BeginString("FIXT.1.1"))
                m.getHeader().setField(fix.MsgType(c["type"]))
                groups: dict[int, list] = {}
                for tag, value in c["fields"]:
                    m.setField(int(tag), str(value))
                for g in c.get("groups", []):
                    grp = fix.Group(int(g["count"]), int(g["delim"]))
                    for tag, value in g["fields"]:
                        grp.setField(int(tag), str(value))
                    m.addGroup(grp)
                del groups
                fix.Session.sendToTarget(m, app.sids[c["s"]])
    finally:
        initiator.stop(True)
        emit(ev="stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
