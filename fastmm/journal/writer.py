"""The journal writer: append-only JSON lines, one record each (fastmm.journal.records).

The journal is the engine's memory across crashes: TrueX has no order-status and no mass-cancel
message, so after a restart the quoter finds the orders that may still be live, and rebuilds position
and PnL, from here. Each line is one record (:mod:`fastmm.journal.records`) with a sequence number that
increases by one per record across rotations and restarts.

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


A write that fails (a full disk: ENOSPC, EDQUOT, EIO) raises :class:`JournalError`, unless the journal
was opened with ``hold=True`` (the quoter): then the bytes not written, and every record after them,
wait in memory in order, ``failing`` says why, and :meth:`Journal.retry` (the quoter's timer) writes
them once the disk takes them again, so the file ends up complete. A record is never lost by the
journal while the process lives; the quoter's FIX sequence store does not move past an inbound message
while ``failing`` (so a restart gets the venue's reports again, see fastmm.fix.store.CommittedTargetStore).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import orjson

from fastmm.journal.reader import JournalError, segments
from fastmm.journal.records import KINDS, Record, json_default, line_of

log = logging.getLogger(__name__)

Durability = Literal["none", "flush", "fsync"]

_BUFFER_BYTES = 64 * 1024


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
    """A line of ``kind`` with ``fields`` exactly as given (no format version: the caller owns the
    layout; the engine writes typed records, :meth:`Journal.write`)."""
    return orjson.dumps({"seq": seq, "t_ns": t_ns, "kind": kind, **fields}, default=json_default) + b"\n"


class Journal:
    """The writer. One process writes a journal (the quoter); any process may read it."""

    def __init__(self, path: str | os.PathLike[str], durability: Durability = "flush",
                 rotate_bytes: int = 256 * 1024 * 1024, *, hold: bool = False) -> None:
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
        self._hold = hold
        self._held = bytearray()      # bytes a failed write left, then every record after them, in order
        self._held_records = 0
        self.failing = ""             # why the held bytes could not be written ("" = nothing held)
        self.failures = 0             # write attempts that failed (the retries included)
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as e:
            raise JournalError(f"cannot open journal {self.path}: {e}") from None

    def write(self, rec: Record) -> int:
        """Record one event; returns its sequence number. Durable per the policy when it returns."""
        self.seq += 1
        return self._append_line(rec.to_line(self.seq))

    def write_tail(self, tail: bytes) -> int:
        """Record one event encoded but for its seq (:func:`fastmm.journal.records.line_of`): the quoter's
        orders, without a Record object built on the price path; returns its sequence number."""
        self.seq += 1
        return self._append_line(line_of(self.seq, tail))

    def append(self, kind: str, t_ns: int, **fields: Any) -> int:
        """Write a line of ``kind`` with ``fields`` as given, in whatever layout they have (tools and tests
        that write first-format lines; the engine's writers use :meth:`write`)."""
        if kind not in KINDS:
            raise ValueError(f"journal: unknown record kind {kind!r}")
        self.seq += 1
        return self._append_line(encode_line(self.seq, t_ns, kind, fields))

    def _append_line(self, line: bytes) -> int:
        if self._held:                # the disk refused earlier bytes: keep the order, write on retry()
            self._held += line
            self._held_records += 1
            return self.seq
        if self.durability == "none":
            self._buf.append(line)
            self._buf_bytes += len(line)
            if self._buf_bytes >= min(_BUFFER_BYTES, self.rotate_bytes // 4):
                self.flush()
        else:
            self._write(line, 1)
            if self.durability == "fsync" and not self._held:
                self._fsync()
        return self.seq

    @property
    def held_records(self) -> int:
        """Records (or the rest of one) waiting in memory because the disk refused them."""
        return self._held_records

    def _write(self, data: bytes, records: int) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except OSError as e:
                if not self._hold:
                    raise JournalError(f"cannot write journal {self.path}: {e}") from None
                self._held[:0] = view            # in front of anything held already
                self._held_records += records
                self.failures += 1
                if not self.failing:
                    log.error("journal %s: cannot write (%s): records are kept in memory, in order, until "
                              "the disk takes them", self.path, e.strerror or e)
                self.failing = f"cannot write journal {self.path}: {e.strerror or e}"
                return
            view = view[n:]
            self._size += n
        if self._size >= self.rotate_bytes:
            self._rotate()

    def _fsync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as e:
            if not self._hold:
                raise JournalError(f"cannot fsync journal {self.path}: {e}") from None
            self.failures += 1
            self.failing = f"cannot fsync journal {self.path}: {e.strerror or e}"

    def retry(self) -> bool:
        """Write what the disk refused; True when nothing is held any more (``failing`` cleared)."""
        if not self._held:
            if self.failing:         # an fsync failed earlier: durable again once one succeeds
                self.failing = ""
                self._fsync()
            return not self.failing
        data, records = bytes(self._held), self._held_records
        self._held.clear()
        self._held_records = 0
        self._write(data, records)
        if self._held:
            return False
        if self.durability == "fsync":
            self.failing = ""
            self._fsync()
            if self.failing:
                return False
        log.warning("journal %s: writing again; %d held record(s) written", self.path, records)
        self.failing = ""
        return True

    def _rotate(self) -> None:
        try:
            os.fsync(self._fd)
            first = self._first_seq_of_active()
            target = self.path.with_name(f"{self.path.name}.{first:012d}")
            os.replace(self.path, target)
            try:
                fd = self._open()
            except JournalError:
                os.replace(target, self.path)    # keep appending to the file we have
                raise
        except (OSError, JournalError) as e:
            if not self._hold:
                raise JournalError(f"cannot rotate journal {self.path}: {e}") from None
            log.error("journal %s: cannot rotate (%s); appending to the active file", self.path, e)
            return
        os.close(self._fd)
        self._fd = fd
        self._size = 0
        log.info("journal rotated to %s", target.name)

    def _first_seq_of_active(self) -> int:
        with self.path.open("rb") as f:
            first = f.readline()
        return int(orjson.loads(first)["seq"]) if first else self.seq

    def flush(self) -> None:
        if self._buf:
            data, n = b"".join(self._buf), len(self._buf)
            self._buf, self._buf_bytes = [], 0
            if self._held:
                self._held += data
                self._held_records += n
            else:
                self._write(data, n)
        if self._held:
            self.retry()
        elif self.durability == "fsync":
            self._fsync()

    def close(self) -> None:
        if self._fd < 0:
            return
        self.flush()
        if self._held:
            log.error("journal %s: closing with %d record(s) the disk refused (%s); they are lost here, and "
                      "the next start gets the venue's reports again from the FIX sequence number kept",
                      self.path, self._held_records, self.failing)
        else:
            self._fsync()
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
