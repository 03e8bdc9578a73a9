"""Follow a journal (fastmm.journal) from a sequence number on, across rotations, read-only.

The writer renames the active file to ``<name>.<first seq:012d>`` when it rotates and starts a new one;
it never deletes a segment, so every record not yet shipped is still on disk. The tail keeps its open
file across the rename (it is the same inode), reads it to the end, then moves to the file whose first
record follows the last one it read. A line without its newline is not a record yet (the writer may be
in the middle of it, or will cut it off when it reopens after a crash: then the file shrinks and the
tail rereads from the start of that line).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from fastmm.journal import JournalError, segments

_CHUNK = 1 << 20


def _first_seq(seg: Path, active: Path) -> int | None:
    if seg != active:
        return int(seg.suffix[1:])
    try:
        with seg.open("rb") as f:
            line = f.readline()
    except FileNotFoundError:
        return None
    if not line.endswith(b"\n"):
        return None
    return int(orjson.loads(line)["seq"])


class JournalTail:
    """Complete records with ``seq > after_seq``, in order, as (seq, record, raw line without newline)."""

    def __init__(self, path: str | os.PathLike[str], after_seq: int = 0) -> None:
        self.path = Path(path)
        self.last_seq = after_seq
        self._f: BinaryIO | None = None
        self._name: Path | None = None
        self._ino = 0
        self._buf = b""
        self._lines: deque[bytes] = deque()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def _open_next(self) -> bool:
        """Open the segment holding ``last_seq + 1`` (or the first after it); False when none yet."""
        best: tuple[int, Path] | None = None
        chosen: tuple[int, Path] | None = None
        for seg in segments(self.path):
            first = _first_seq(seg, self.path)
            if first is None:
                continue
            if first <= self.last_seq + 1:
                best = (first, seg)           # the last one starting at or before what we want
            elif chosen is None:
                chosen = (first, seg)
        pick = best or chosen
        if pick is None:
            return False
        seg = pick[1]
        if self._name == seg and self._f is not None:
            return False
        self.close()
        try:
            self._f = seg.open("rb")
        except FileNotFoundError:
            return False
        self._name = seg
        self._ino = os.fstat(self._f.fileno()).st_ino
        self._buf = b""
        return True

    def _rotated_away(self) -> bool:
        """Our file is no longer the active one (renamed by a rotation, or we are on a rotated one)."""
        try:
            return os.stat(self.path).st_ino != self._ino
        except FileNotFoundError:
            return True

    def _read(self) -> bool:
        """Read what is new in the current file into complete lines; True if anything came."""
        f = self._f
        assert f is not None
        if self._buf:
            # a half line we hold may since have been cut off by a restarted writer and overwritten
            pos = f.tell()
            start = pos - len(self._buf)
            if os.pread(f.fileno(), len(self._buf), start) != self._buf:
                f.seek(start)
                self._buf = b""
        data = f.read(_CHUNK)
        if not data:
            return False
        data = self._buf + data
        cut = data.rfind(b"\n") + 1
        self._buf = data[cut:]
        self._lines.extend(data[:cut].splitlines())
        return True

    def poll(self, limit: int) -> list[tuple[int, dict[str, Any], bytes]]:
        """Up to ``limit`` records after the last one returned."""
        out: list[tuple[int, dict[str, Any], bytes]] = []
        if self._f is None and not self._open_next():
            return out
        for _ in range(100_000):        # bounded: each turn reads a chunk or changes file
            while self._lines and len(out) < limit:
                line = self._lines.popleft()
                try:
                    rec = orjson.loads(line)
                    seq = int(rec["seq"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    raise JournalError(f"{self._name}: corrupt record {line[:80]!r}") from None
                if seq <= self.last_seq:
                    continue
                self.last_seq = seq
                out.append((seq, rec, line))
            if len(out) >= limit:
                return out
            if self._read():
                continue
            # end of this file for now: stay on the active file, else move on to the next segment
            if not self._rotated_away():
                return out
            if self._read():           # the last writes before the rename
                continue
            if self._buf:
                self._buf = b""        # a rotated segment ends complete; a crash's torn tail is dropped
            if not self._open_next():
                return out
        return out

    def __enter__(self) -> JournalTail:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.close()


def last_seq(path: str | os.PathLike[str]) -> int:
    """The sequence number of the journal's last complete record (0 if none), read-only."""
    for seg in reversed(segments(Path(path))):
        with seg.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - (1 << 20)))
            lines = [ln for ln in f.read().split(b"\n")[:-1] if ln]
        if lines:
            return int(orjson.loads(lines[-1])["seq"])
    return 0
