"""Reading an instance's files without disturbing it: the records appended to a journal since the last look
(:class:`JournalTail`, following rotations), the complete records at the end of a journal
(:func:`read_tail`) and the quoter's latency table of its last exit (:func:`read_latency_file`). The
engine only appends to these files; nothing here writes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from fastmm.monitor.journal_stats import parse_latency_table, parse_lines


class JournalTail:
    """Yields the records appended to a journal since the last :meth:`poll`; follows a rotation (the
    active file renamed away and a new one created) by draining the old file through the descriptor it
    still holds. A torn last line stays buffered until its newline arrives."""

    def __init__(self, path: str | os.PathLike[str], *, from_end: bool = False,
                 max_read: int = 16 << 20) -> None:
        self.path = Path(path)
        self.from_end = from_end
        self.max_read = max_read
        self._f: Any = None
        self._ino = -1
        self._partial = b""

    def _open(self) -> bool:
        try:
            f = self.path.open("rb")
        except OSError:
            return False
        self._f = f
        self._ino = os.fstat(f.fileno()).st_ino
        self._partial = b""
        if self.from_end:
            f.seek(0, os.SEEK_END)
            self.from_end = False      # only the first file: a new one after a rotation is read whole
        return True

    def _read(self) -> list[dict[str, Any]]:
        data = self._partial + self._f.read(self.max_read)
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return list(parse_lines(data[:cut]))

    def poll(self) -> list[dict[str, Any]]:
        if self._f is None and not self._open():
            return []
        out = self._read()
        try:
            ino = self.path.stat().st_ino
        except OSError:
            ino = self._ino
        if ino != self._ino:           # rotated: finish the old file, then start on the new one
            out += self._read()
            self.close()
            if self._open():
                out += self._read()
        return out

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_tail(path: str | os.PathLike[str], max_bytes: int = 2 << 20) -> list[dict[str, Any]]:
    """The complete records in the last ``max_bytes`` of a journal file (for a one-shot status)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    if size > max_bytes:
        data = data[data.find(b"\n") + 1:]      # the first line is probably cut
    data = data[: data.rfind(b"\n") + 1]
    return list(parse_lines(data))


def read_latency_file(state_path: Path) -> dict[str, Any] | None:
    """The quoter's latency table and when it was written, or None when there is none yet."""
    p = state_path / "latency.quoter.txt"
    try:
        text = p.read_text()
        mtime = p.stat().st_mtime
    except OSError:
        return None
    return {"written_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(mtime)), "epoch_s": mtime,
            "stages": parse_latency_table(text)}
