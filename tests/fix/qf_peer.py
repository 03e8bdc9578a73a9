"""A QuickFIX acceptor loaded with TrueX's own dictionaries, run as a separate process by the tests.

It validates everything fastmm sends (UseDataDictionary=Y with TrueX_FIXT11.xml and TrueX_FIX50SP2.xml),
checks the TrueX logon HMAC in ``fromAdmin`` with its own implementation (no fastmm import), answers
orders with ExecutionReports and a MarketDataRequest with a snapshot, and prints one JSON line per
event on stdout. Commands arrive as JSON lines on stdin, so a test can make it misbehave:
``{"cmd": "skip", "s": "oe", "n": 3}`` (jump its outgoing MsgSeqNum), ``{"cmd": "set_next_sender",
...}``, ``{"cmd": "er", "s": "oe"}`` (an unsolicited ExecutionReport), ``{"cmd": "disconnect", ...}``,
``{"cmd": "seq", ...}``, ``{"cmd": "reset_logon", "s": "oe"}`` (a Logon 141=Y mid-session),
``{"cmd": "quit"}``.

Usage: qf_peer.py --port P --dir D --dicts DICT_DIR --key-id K --secret S
       --session NAME:OUR_ID:THEIR_ID[:reset] [--session ...] [--tls CERT,KEY[,CLIENT_CA]]

With ``--tls`` the acceptor is QuickFIX's SSL acceptor (its certificate and key; an optional CA file is
handed to QuickFIX for client certificates).
"""

from __future__ import annotations

import argparse
import hmac
import itertools
import sys
from pathlib import Path

import quickfix as fix

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qf_common import EventApp, dictionary_settings, emit, raw, stdin_commands, truex_password

_ids = itertools.count(1)


class App(EventApp):
    def __init__(self, names: dict[str, str], key_id: str, secret: str) -> None:
        super().__init__(key_id, secret)
        self.names = names  # "SENDER->TARGET" of our side -> session name

    def name(self, sid: fix.SessionID) -> str:
        return self.names.get(f"{sid.getSenderCompID().getValue()}->{sid.getTargetCompID().getValue()}", "?")

    def fromAdmin(self, msg: fix.Message, sid: fix.SessionID) -> None:
        emit(ev="in", s=self.name(sid), raw=raw(msg))
        hdr = msg.getHeader()
        if hdr.getField(35) != "A":
            return
        try:
            key, pw = msg.getField(553), msg.getField(554)
        except fix.FieldNotFound:
            emit(ev="auth_failed", s=self.name(sid), why="553/554 missing")
            raise fix.RejectLogon("Authentication failed") from None
        if key != self.key_id or not hmac.compare_digest(truex_password(hdr, key, self.secret), pw):
            emit(ev="auth_failed", s=self.name(sid), why="bad password")
            raise fix.RejectLogon("Authentication failed")
        emit(ev="auth_ok", s=self.name(sid))

    def fromApp(self, msg: fix.Message, sid: fix.SessionID) -> None:
        emit(ev="in", s=self.name(sid), raw=raw(msg))
        mt = msg.getHeader().getField(35)
        if mt == "D":
            self.exec_report(sid, msg.getField(11), "", msg.getField(54), msg.getField(38),
                             msg.getField(44), "0", "0")
        elif mt == "F":
            self.exec_report(sid, msg.getField(11), msg.getField(41), "1", "0.1", "60000", "4", "4")
        elif mt == "G":
            self.exec_report(sid, msg.getField(11), msg.getField(41), "1", msg.getField(38),
                             msg.getField(44), "5", "0")
        elif mt == "V":
            self.snapshot(sid, msg.getField(262))

    def exec_report(self, sid: fix.SessionID, cl: str, orig: str, side: str, qty: str, px: str,
                    exec_type: str, status: str) -> None:
        m = fix.Message()
        m.getHeader().setField(fix.BeginString("FIXT.1.1"))
        m.getHeader().setField(fix.MsgType("8"))
        n = next(_ids)
        for tag, v in ((37, f"O{n}"), (11, cl), (17, f"E{n}"), (150, exec_type), (39, status),
                       (55, "BTC-PYUSD"), (167, "CSPOT"), (54, side), (40, "2"), (38, qty), (44, px),
                       (151, "0" if status == "4" else qty), (14, "0"), (60, "20250910-14:39:14.463394")):
            m.setField(tag, v)
        if orig:
            m.setField(41, orig)
        fix.Session.sendToTarget(m, sid)

    def snapshot(self, sid: fix.SessionID, req_id: str) -> None:
        m = fix.Message()
        m.getHeader().setField(fix.BeginString("FIXT.1.1"))
        m.getHeader().setField(fix.MsgType("W"))
        m.setField(262, req_id)
        m.setField(55, "BTC-PYUSD")
        m.setField(167, "CSPOT")
        for typ, px, size in (("0", "60000", "0.5"), ("1", "60000.5", "0.25")):
            g = fix.Group(268, 269)
            g.setField(269, typ)
            g.setField(270, px)
            g.setField(271, size)
            g.setField(1023, "1")
            m.addGroup(g)
        fix.Session.sendToTarget(m, sid)


def settings_text(args: argparse.Namespace) -> str:
    lines = ["[DEFAULT]", "ConnectionType=acceptor", f"SocketAcceptPort={args.port}",
             "SocketAcceptHost=127.0.0.1", *dictionary_settings(args.dicts, args.dir), "SocketReuseAddress=Y"]
    if args.tls:
        cert, key, *ca = args.tls.split(",")
        lines += ["SSLProtocol=+TLSv1_2 +TLSv1_3", f"ServerCertificateFile={cert}",
                  f"ServerCertificateKeyFile={key}"]
        if ca:
            lines += [f"CertificateAuthoritiesFile={ca[0]}", "CertificateVerifyLevel=2"]
    for spec in args.session:
        _name, ours, theirs, *rest = spec.split(":")
        lines += ["", "[SESSION]", "BeginString=FIXT.1.1", f"SenderCompID={ours}", f"TargetCompID={theirs}",
                  f"ResetOnLogon={'Y' if 'noreset' not in rest else 'N'}", "ResetOnDisconnect=N"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--dicts", required=True)
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--session", action="append", required=True)
    ap.add_argument("--tls", default="")
    args = ap.parse_args()
    cfg = Path(args.dir) / "acceptor.cfg"
    cfg.write_text(settings_text(args))
    names = {}
    for spec in args.session:
        name, ours, theirs, *_ = spec.split(":")
        names[f"{ours}->{theirs}"] = name
    app = App(names, args.key_id, args.secret)
    settings = fix.SessionSettings(str(cfg))
    kind = fix.ThreadedSSLSocketAcceptor if args.tls else fix.ThreadedSocketAcceptor
    acceptor = kind(app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
    acceptor.start()
    emit(ev="ready")
    try:
        for c in stdin_commands():
            cmd = c["cmd"]
            sid = app.sids[c["s"]]
            sess = fix.Session.lookupSession(sid)
            if cmd == "skip":
                sess.setNextSenderMsgSeqNum(sess.getExpectedSenderNum() + int(c["n"]))
            elif cmd == "set_next_sender":
                sess.setNextSenderMsgSeqNum(int(c["n"]))
            elif cmd == "er":
                app.exec_report(sid, c.get("cl", "unsolicited"), "", "1", "0.1", "60000", "0", "0")
            elif cmd == "disconnect":
                sess.disconnect()
            elif cmd == "logout":
                sess.logout(c.get("text", ""))
            elif cmd == "reset_logon":  # a Logon 141=Y in the running session: QuickFIX resets and sends 34=1
                m = fix.Message()
                m.getHeader().setField(fix.BeginString("FIXT.1.1"))
                m.getHeader().setField(fix.MsgType("A"))
                for tag, v in ((108, c.get("hb", "1")), (141, "Y"), (1137, "9")):
                    m.setField(tag, v)
                fix.Session.sendToTarget(m, sid)
            if cmd in ("skip", "set_next_sender", "seq", "er", "disconnect", "logout", "reset_logon"):
                emit(ev="seq", s=c["s"], sender=sess.getExpectedSenderNum(),
                     target=sess.getExpectedTargetNum(), cmd=cmd)
    finally:
        acceptor.stop(True)
        emit(ev="stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
