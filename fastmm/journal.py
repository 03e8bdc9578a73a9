"""Append-only JSONL audit trail of every order, ack, reject, fill, hedge, risk event and phase change.

The journal is the engine's memory across crashes: TrueX has no order-status and no mass-cancel
message, so after a restart the quoter finds the orders that may still be live, and rebuilds position
and PnL, from here. Each line is one JSON object ``{"seq": N, "t_ns": T, "kind": K, ...}`` with a
sequence number that increases by one per record across rotations and restarts.

Durability (config ``journal.durability``):

* ``none``: records are buffered in the process and written in batches (fast; a crash loses the buffer).
* ``flush``: every record is written to the OS with one ``write`` call before ``append`` returns, so a
  killed process loses nothing (the default).
* ``fsync``: as ``flush``, plus ``fsync`` per record, so a host crash loses nothing.

Rotation: when the active file passes ``rotate_bytes`` it is renamed ``<name>.<first seq:012d>`` and a
new active file starts. Rotation never deletes a segment: the journal shipper (fastmm.db.shipper) reads
unshipped records from rotated segments, so any retention added here must keep segments past the
database's ship cursor (``fastmm db lag``). A line torn by a crash in the middle of a write is cut off
when the journal is opened again (logged once); everything before it is kept.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson

log = logging.getLogger(__name__)

Durability = Literal["none", "flush", "fsync"]

KINDS = frozenset({
    "order", "cancel", "replace", "ack", "reject", "cancel_reject", "canceled", "replaced", "fill",
    "hedge", "hedge_ack", "hedge_fill", "hedge_reject", "risk", "phase", "session", "recovery", "note",
    "mark", "reconcile", "pnl",
})

_BUFFER_BYTES = 64 * 1024


class JournalError(RuntimeError):
    """A journal that cannot be opened, written or read (the engine must not trade without it)."""


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("ascii", "replace")
    raise TypeError(f"journal: cannot record a {type(obj).__name__}")


def segments(path: Path) -> list[Path]:
    """Every file of the journal at ``path``, oldest first: rotated segments, then the active file."""
    rotated = sorted(p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit())
    return [*rotated, path] if path.exists() else rotated


def read_journal(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield every complete record in order; a torn last line (crash mid-write) is skipped."""
    for seg in segments(Path(path)):
        with seg.open("rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn tail of a crashed writer
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    raise JournalError(f"{seg}: corrupt record {line[:80]!r}: {e}") from None


def _repair_tail(path: Path) -> int:
    """Cut a torn last line off ``path``; return the last sequence number in the file (0 if none)."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        window = min(size, 1 << 20)
        f.seek(size - window)
        tail = f.read(window)
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n") + 1
            keep = size - window + cut
            log.warning("journal %s: cutting a torn record of %d bytes left by a crash", path, size - keep)
            f.truncate(keep)
            tail = tail[:cut]
        lines = tail.splitlines()
    if not lines:
        return 0
    try:
        return int(orjson.loads(lines[-1])["seq"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise JournalError(f"{path}: last record has no sequence number: {lines[-1][:80]!r}") from None


def encode_line(seq: int, t_ns: int, kind: str, fields: dict[str, Any]) -> bytes:
    """One record as the journal writes it (a JSON line)."""
    return orjson.dumps({"seq": seq, "t_ns": t_ns, "kind": kind, **fields}, default=_default) + b"\n"


class Journal:
    """The writer. One process writes a journal (the quoter); any process may read it."""

    def __init__(self, path: str | os.PathLike[str], durability: Durability = "flush",
                 rotate_bytes: int = 256 * 1024 * 1024) -> None:
        if durability not in ("none", "flush", "fsync"):
            raise ValueError(f"journal durability {durability!r}: expected none, flush or fsync")
        self.path = Path(path)
        self.durability = durability
        self.rotate_bytes = rotate_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        last = _repair_tail(self.path)
        if last == 0:
            for seg in reversed(segments(self.path)[:-1] if self.path.exists() else segments(self.path)):
                last = _repair_tail(seg)
                if last:
                    break
        self.seq = last
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as e:
            raise JournalError(f"cannot open journal {self.path}: {e}") from None

    def append(self, kind: str, t_ns: int, **fields: Any) -> int:
        """Record one event; returns its sequence number. Durable per the policy when it returns."""
        if kind not in KINDS:
            raise ValueError(f"journal: unknown record kind {kind!r}")
        self.seq += 1
        line = encode_line(self.seq, t_ns, kind, fields)
        if self.durability == "none":
            self._buf.append(line)
            self._buf_bytes += len(line)
            if self._buf_bytes >= min(_BUFFER_BYTES, self.rotate_bytes // 4):
                self.flush()
        else:
            self._write(line)
            if self.durability == "fsync":
                os.fsync(self._fd)
        return self.seq

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except OSError as e:
                raise JournalError(f"cannot write journal {self.path}: {e}") from None
            view = view[n:]
        self._size += len(data)
        if self._size >= self.rotate_bytes:
            self._rotate()

    def _rotate(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        first = self._first_seq_of_active()
        target = self.path.with_name(f"{self.path.name}.{first:012d}")
        os.replace(self.path, target)
        log.info("journal rotated to %s", target.name)
        self._fd = self._open()
        self._size = 0

    def _first_seq_of_active(self) -> int:
        with self.path.open("rb") as f:
            first = f.readline()
        return int(orjson.loads(first)["seq"]) if first else self.seq

    def flush(self) -> None:
        if self._buf:
            data, self._buf, self._buf_bytes = b"".join(self._buf), [], 0
            self._write(data)
        if self.durability == "fsync":
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd < 0:
            return
        self.flush()
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
