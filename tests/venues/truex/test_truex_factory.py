"""TrueX FIX sessions built in one place (fastmm.venues.truex.factory): one store path for the engine and
the operator's `fastmm fix connect`, settings from config."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from fastmm.config import Config, InstanceConfig, Secret, load_config
from fastmm.fix.codec import FrameParser, Message
from fastmm.fix.session import Role
from fastmm.fix.store import FileSeqStore
from fastmm.journal import Journal
from fastmm.procs.quoter import Quoter
from fastmm.venues.truex import factory
from fastmm.venues.truex.codec import MARKET_DATA_TYPES, ORDER_ENTRY_TYPES

KEY_ID = "00000000-0000-0000-0000-000000000001"
SECRET = "factory-test-secret"


def _cfg(tmp_path: Path) -> Config:
    cfg = Config(instance=InstanceConfig(state_dir=str(tmp_path / "state")))
    tx = dataclasses.replace(cfg.truex, api_key_id=Secret(KEY_ID), api_secret=Secret(SECRET))
    return dataclasses.replace(cfg, truex=tx)


def test_sessions_take_every_setting_from_config(tmp_path: Path) -> None:
    cfg = load_config(None, {"FASTMM_INSTANCE__STATE_DIR": str(tmp_path / "state"),
                             "FASTMM_TRUEX__ORDER_ENTRY__HEARTBEAT_S": "7",
                             "FASTMM_TRUEX__ORDER_ENTRY__PORT": "1234",
                             "FASTMM_TRUEX__ORDER_ENTRY__CONNECT_TIMEOUT_S": "2.5",
                             "FASTMM_TRUEX__MARKET_DATA__SENDER_COMP_ID": "MDUSER",
                             "FASTMM_TRUEX_API_KEY_ID": KEY_ID, "FASTMM_TRUEX_API_SECRET": SECRET})
    oe = factory.order_entry(cfg, None, None)
    s = oe.session.settings
    assert (s.sender_comp_id, s.target_comp_id, s.heartbeat_s, s.reset_on_logon) == ("FASTMM", "TRUEX_UAT_OE", 7,
                                                                                     False)
    assert s.app_msg_types == ORDER_ENTRY_TYPES and s.role == Role.INITIATOR
    assert (oe.host, oe.port, oe.connect_timeout_s) == ("127.0.0.1", 1234, 2.5)
    md = factory.market_data(cfg, None, None)
    m = md.session.settings
    assert (m.sender_comp_id, m.target_comp_id, m.reset_on_logon) == ("MDUSER", "TRUEX_UAT_MD", True)
    assert m.app_msg_types == MARKET_DATA_TYPES and md.port == 20484
    for ini, name in ((oe, "FASTMM-TRUEX_UAT_OE.seq"), (md, "MDUSER-TRUEX_UAT_MD.seq")):
        store = ini.session.store
        assert isinstance(store, FileSeqStore) and store.path == cfg.state_path / "fix" / name
        store.close()


def test_a_store_at_the_old_place_is_moved_and_continued(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    legacy = cfg.state_path / "fix.FASTMM-TRUEX_UAT_OE.seq"
    old = FileSeqStore(legacy)
    old.set(314, 271)
    old.close()
    store = factory.order_entry(cfg, None, None).session.store
    assert (store.next_sender, store.next_target) == (314, 271)
    assert not legacy.exists() and factory.session_store_path(cfg, "FASTMM", "TRUEX_UAT_OE").is_file()
    store.close()


def _messages(conn: socket.socket, parser: FrameParser, until_eof: bool) -> list[Message]:
    """FIX messages read off ``conn``: the first one, or every one until the peer closes."""
    out: list[Message] = []
    conn.settimeout(20)
    while until_eof or not out:
        chunk = conn.recv(4096)
        if not chunk:
            break
        out += [m for m in parser.feed(chunk) if isinstance(m, Message)]
    return out


def test_fix_connect_with_the_engines_comp_ids_continues_the_engines_sequence(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    # the engine's order-entry session, as the quoter builds it, after a run that sent 41 messages
    with Journal(tmp_path / "journal.jsonl", "none", 1 << 20) as journal:
        q = Quoter(cfg, None, journal, {}, None, None, None)
        store = q.make_initiator().session.store
        store.set(42, 17)
        store.commit()          # the quoter's store writes the inbound number once the journal holds it
        store.close()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMM_")}
    env.update(FASTMM_INSTANCE__STATE_DIR=str(tmp_path / "state"), FASTMM_TRUEX_API_KEY_ID=KEY_ID,
               FASTMM_TRUEX_API_SECRET=SECRET)
    proc = subprocess.Popen([sys.executable, "-m", "fastmm.cli", "fix", "connect", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        listener.settimeout(30)
        conn, _ = listener.accept()
        listener.close()                         # no second connection: every message it sends is below
        parser = FrameParser()
        with conn:
            first = _messages(conn, parser, until_eof=False)
            assert (first[0].msg_type, first[0].seq) == (b"A", 42)   # no --reset, no --sender/--target
            proc.send_signal(signal.SIGTERM)
            rest = _messages(conn, parser, until_eof=True)     # a Logout, maybe, before it hangs up
        seqs = [m.seq for m in first + rest]
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        listener.close()
        if proc.stderr is not None:
            proc.stderr.close()
    assert seqs == list(range(42, 42 + len(seqs)))
    after = FileSeqStore(factory.session_store_path(cfg, "FASTMM", "TRUEX_UAT_OE"))
    # the engine's next run continues after what the operator's session sent
    assert (after.next_sender, after.next_target) == (seqs[-1] + 1, 17)
    after.close()
