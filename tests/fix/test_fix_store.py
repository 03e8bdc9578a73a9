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
