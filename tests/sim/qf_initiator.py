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
import sys
from pathlib import Path

import quickfix as fix

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qf_common import EventApp, dictionary_settings, emit, raw, stdin_commands, truex_password


class App(EventApp):
    def __init__(self, key_id: str, secret: str, names: dict[str, str]) -> None:
        super().__init__(key_id, secret)
        self.names = names   # TargetCompID -> session name

    def name(self, sid: fix.SessionID) -> str:
        return self.names.get(sid.getTargetCompID().getValue(), "?")

    def toAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        hdr = msg.getHeader()
        if hdr.getField(35) == "A":
            msg.setField(553, self.key_id)
            msg.setField(554, truex_password(hdr, self.key_id, self.secret))
        emit(ev="out", s=self.name(sid), raw=raw(msg))


def settings_text(a: argparse.Namespace) -> str:
    lines = ["[DEFAULT]", "ConnectionType=initiator", *dictionary_settings(a.dicts, a.dir),
             "HeartBtInt=5", "ReconnectInterval=1", "ResetOnLogon=Y", "SocketConnectHost=127.0.0.1",
             "ValidateUserDefinedFields=N"]
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
        for c in stdin_commands():
            if c["cmd"] == "send":
                m = fix.Message()
                m.getHeader().setField(fix.BeginString("FIXT.1.1"))
                m.getHeader().setField(fix.MsgType(c["type"]))
                for tag, value in c["fields"]:
                    m.setField(int(tag), str(value))
                for g in c.get("groups", []):
                    grp = fix.Group(int(g["count"]), int(g["delim"]))
                    for tag, value in g["fields"]:
                        grp.setField(int(tag), str(value))
                    m.addGroup(grp)
                fix.Session.sendToTarget(m, app.sids[c["s"]])
    finally:
        initiator.stop(True)
        emit(ev="stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
