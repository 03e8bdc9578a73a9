"""Durable per-session sequence numbers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fastmm.fix.store import FileSeqStore, MemorySeqStore, StoreError, store_path


def test_new_store_starts_at_one_and_keeps_updates(tmp_path: Path) -> None:
    p = tmp_path / "a" / "s.seq"
    s = FileSeqStore(p)
    assert (s.next_sender, s.next_target) == (1, 1)
    for i in range(2, 7):
        s.set(i, i * 10)
    s.close()
    again = FileSeqStore(p)
    assert (again.next_sender, again.next_target) == (6, 60)
    again.close()


def test_survives_a_killed_process(tmp_path: Path) -> None:
    p = tmp_path / "s.seq"
    code = ("import os, sys, time\n"
            "from fastmm.fix.store import FileSeqStore\n"
            f"s = FileSeqStore({str(p)!r})\n"
            "for i in range(1, 501): s.set(i + 1, 2 * i)\n"
            "print('done', flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "done"
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no clean close, no atexit
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    s = FileSeqStore(p)
    assert (s.next_sender, s.next_target) == (501, 1000)
    s.close()


def test_fsync_mode_and_reset(tmp_path: Path) -> None:
    p = tmp_path / "s.seq"
    s = FileSeqStore(p, fsync=True)
    s.set(40, 50)
    s.reset()
    assert (s.next_sender, s.next_target) == (1, 1)
    s.set(2, 3)
    s.close()
    again = FileSeqStore(p)
    assert (again.next_sender, again.next_target) == (2, 3)
    again.close()
    assert not p.with_name("s.seq.tmp").exists()


def test_a_torn_slot_falls_back_to_the_other(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "s.seq"
    s = FileSeqStore(p)
    s.set(5, 6)  # generation 1 -> slot 1
    s.set(7, 8)  # generation 2 -> slot 0
    s.close()
    raw = bytearray(p.read_bytes())
    raw[10] ^= 0xFF  # tear the newest slot
    p.write_bytes(bytes(raw))
    again = FileSeqStore(p)
    assert (again.next_sender, again.next_target) == (5, 6)
    assert "torn" in caplog.text
    again.close()


def test_a_corrupt_store_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "s.seq"
    p.write_bytes(b"garbage" * 20)
    with pytest.raises(StoreError, match="corrupt"):
        FileSeqStore(p)


def test_memory_store_and_path() -> None:
    m = MemorySeqStore(3, 4)
    m.set(5, 6)
    m.reset()
    assert (m.next_sender, m.next_target) == (1, 1)
    assert store_path("var/x", "FAST MM", "T/1") == Path("var/x/fix/FAST_MM-T_1.seq")


def test_committed_target_moves_only_past_durable_messages(tmp_path: Path) -> None:
    """A session over a CommittedTargetStore: the next start expects the first message whose effects
    were not made durable, whatever the session had parsed (issue 16: a full journal disk)."""
    from fastmm.fix.codec import Encoder, format_timestamp
    from fastmm.fix.session import AppMessage, FixSession, SessionSettings, State
    from fastmm.fix.store import CommittedTargetStore

    t0 = 1_763_000_000 * 10**9
    enc = Encoder("FIXT.1.1", "TRUEX", "FASTMM")
    seq = iter(range(1, 100))

    def frame(mt: bytes, body: bytes) -> bytes:
        return enc.encode(mt, next(seq), format_timestamp(t0), body, b"")

    p = tmp_path / "s.seq"
    store = CommittedTargetStore(FileSeqStore(p))
    s = FixSession(SessionSettings("FASTMM", "TRUEX", heartbeat_s=10), store)
    s.connection_made(t0)
    s.data_to_send()
    s.receive_data(frame(b"A", b"108=10\x011137=9\x01"), t0)
    assert s.state is State.ACTIVE
    s.events_received()
    store.commit()                                   # the Logon (seq 1) has no effects to keep
    s.send(b"D", b"11=x\x01", t0)                    # our seq 2 is used: written through at once
    s.receive_data(b"".join(frame(b"8", b"17=%d\x01" % n) for n in (2, 3, 4)), t0)
    assert s.next_target == 5                        # the session parsed all three
    seqs = [e.msg.seq for e in s.events_received() if isinstance(e, AppMessage)]
    assert seqs == [2, 3, 4]
    store.commit(2)                                  # 2 journalled
    store.hold(3)                                    # 3 could not be journalled
    store.commit(4)                                  # and nothing moves past 3 while held
    store.commit()
    again = FileSeqStore(p)
    assert (again.next_sender, again.next_target) == (3, 3)
    again.close()
    store.release()                                  # the journal wrote what it held
    store.commit()
    again = FileSeqStore(p)
    assert (again.next_sender, again.next_target) == (3, 5)
    again.close()
    store.reset()
    again = FileSeqStore(p)
    assert (again.next_sender, again.next_target) == (1, 1)
    again.close()
    store.close()
