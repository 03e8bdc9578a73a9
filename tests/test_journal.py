"""Journal: ordered sequence numbers, durability across a killed writer, torn tails, rotation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from fastmm.journal import Journal, JournalError, read_journal, segments


def test_append_and_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        assert j.append("order", 10, cl_ord_id="a1", side="buy", px=120000, lots=1000) == 1
        assert j.append("fill", 20, exec_id="e1", fee=Decimal("0.01"), raw=b"x") == 2
    recs = list(read_journal(path))
    assert [r["seq"] for r in recs] == [1, 2]
    assert recs[0] == {"seq": 1, "t_ns": 10, "kind": "order", "cl_ord_id": "a1", "side": "buy",
                       "px": 120000, "lots": 1000}
    assert recs[1]["fee"] == "0.01" and recs[1]["raw"] == "x"


def test_sequence_continues_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append("phase", 1, phase="STARTING")
    with Journal(path) as j:
        assert j.append("phase", 2, phase="QUOTING") == 2


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.jsonl") as j, pytest.raises(ValueError, match="unknown record kind"):
        j.append("whatever", 1)


def test_torn_tail_is_cut_and_sequence_resumes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append("order", 1, cl_ord_id="a")
        j.append("order", 2, cl_ord_id="b")
    with path.open("ab") as f:
        f.write(b'{"seq":3,"t_ns":3,"kind":"ord')  # a crash in the middle of a write
    assert [r["seq"] for r in read_journal(path)] == [1, 2]
    with Journal(path) as j:
        assert j.append("order", 4, cl_ord_id="c") == 3
    assert [r["cl_ord_id"] for r in read_journal(path)] == ["a", "b", "c"]
    assert "torn record" in caplog.text


def test_corrupt_record_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"seq":1,"t_ns":1,"kind":"note"}\nnot json\n{"seq":3,"t_ns":1,"kind":"note"}\n')
    with pytest.raises(JournalError, match="corrupt record"):
        list(read_journal(path))


@pytest.mark.parametrize("durability", ["none", "flush", "fsync"])
def test_rotation_keeps_every_record_in_order(tmp_path: Path, durability: str) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path, durability=durability, rotate_bytes=4096) as j:  # type: ignore[arg-type]
        for i in range(500):
            j.append("fill", i, exec_id=f"e{i}", lots=i)
    assert len(segments(path)) > 3
    recs = list(read_journal(path))
    assert [r["seq"] for r in recs] == list(range(1, 501))
    with Journal(path, rotate_bytes=4096) as j:
        assert j.append("note", 0) == 501


def test_sequence_resumes_from_rotated_segment_when_active_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path, rotate_bytes=4096) as j:
        while len(segments(path)) < 2 or path.stat().st_size:
            j.append("note", 0, text="x" * 100)
            if len(segments(path)) >= 2 and path.stat().st_size == 0:
                break
        last = j.seq
    assert path.stat().st_size == 0
    with Journal(path, rotate_bytes=4096) as j:
        assert j.append("note", 0) == last + 1


_WRITER = """
import sys
from fastmm.journal import Journal
j = Journal(sys.argv[1], durability="flush")
i = 0
while True:
    i += 1
    seq = j.append("fill", i, exec_id=f"e{i}", lots=i)
    sys.stdout.write(f"{seq}\\n")
    sys.stdout.flush()
"""


def test_killed_writer_loses_no_acknowledged_record(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acked = 0
    try:
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while acked < 2000 and time.monotonic() < deadline:
            acked = int(proc.stdout.readline())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert acked >= 2000
    seqs = [r["seq"] for r in read_journal(path)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= acked
    with Journal(path) as j:
        assert j.append("note", 0) == len(seqs) + 1


def _disk_full(j: Journal) -> int:
    """Make the journal's file descriptor a full disk (/dev/full: every write is ENOSPC); returns a
    duplicate of the real one, to give the disk back with ``os.dup2``."""
    saved = os.dup(j._fd)
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, j._fd)
    os.close(full)
    return saved


def test_a_full_disk_raises_by_default(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl")
    saved = _disk_full(j)
    with pytest.raises(JournalError, match="No space left"):
        j.append("note", 1, detail="x")
    os.dup2(saved, j._fd)
    os.close(saved)
    j.close()


def test_hold_keeps_records_in_order_and_writes_them_when_the_disk_takes_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "j.jsonl"
    j = Journal(path, hold=True)
    j.append("order", 1, cl_ord_id="a")
    saved = _disk_full(j)
    assert j.append("fill", 2, exec_id="e1") == 2          # never raises: held in memory
    assert j.append("cancel", 3, cl_ord_id="c") == 3
    assert "No space left" in j.failing and j.held_records == 2
    assert not j.retry() and j.held_records == 2          # still full
    assert [r["seq"] for r in read_journal(path)] == [1]
    os.dup2(saved, j._fd)                                  # space freed
    os.close(saved)
    assert j.append("canceled", 4, cl_ord_id="c") == 4    # appended behind the held ones
    assert j.retry() and not j.failing and j.held_records == 0
    j.close()
    assert [(r["seq"], r["kind"]) for r in read_journal(path)] == [
        (1, "order"), (2, "fill"), (3, "cancel"), (4, "canceled")]
    assert caplog.text.count("cannot write") == 1         # logged once per episode


def test_hold_close_with_records_still_held_does_not_raise(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    j = Journal(tmp_path / "j.jsonl", durability="fsync", hold=True)
    saved = _disk_full(j)
    j.append("fill", 1, exec_id="e1")
    j.close()
    os.close(saved)
    assert "closing with 1 record(s) the disk refused" in caplog.text


def test_recovery_can_skip_a_corrupt_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"seq":1,"t_ns":1,"kind":"note"}\nnot json\n[1,2]\n{"seq":3,"t_ns":1,"kind":"note"}\n')
    assert [r["seq"] for r in read_journal(path, skip_corrupt=True)] == [1, 3]
    assert caplog.text.count("skipped a corrupt record") == 2
