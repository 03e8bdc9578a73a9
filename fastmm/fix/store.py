"""Per-session FIX sequence numbers that survive a process restart.

fastmm never re-sends an application message (a stale order must not reach the venue again; venue facts
section 4), so a session only needs to remember two numbers: the next MsgSeqNum it sends and the next
one it expects. :class:`FileSeqStore` keeps them in a 64-byte file of two checksummed 32-byte slots
written alternately with ``pwrite`` (one system call per update, no rename on the hot path):

* a killed process loses nothing: the numbers are in the kernel's page cache when ``set`` returns;
* with ``fsync=True`` every update is also forced to disk, so a host crash loses nothing either;
* a write torn by a power cut spoils at most one slot, and the other slot (one update older) is used.

The file is created, and reset, by writing a temporary file, fsyncing it and renaming it into place.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

log = logging.getLogger(__name__)

_SLOT = struct.Struct("<4sQQQI")  # magic, generation, next_sender, next_target, crc32 of the rest
_SLOT_SIZE = 32
_MAGIC = b"FXSQ"
_MAX_SEQ = (1 << 63) - 1


class StoreError(RuntimeError):
    """A sequence store that cannot be read or written (the session must not start without it)."""


class MemorySeqStore:
    """Sequence numbers in memory: tests, and acceptor sessions that reset on every Logon."""

    __slots__ = ("next_sender", "next_target")

    def __init__(self, next_sender: int = 1, next_target: int = 1) -> None:
        self.next_sender = next_sender
        self.next_target = next_target

    def set(self, next_sender: int, next_target: int) -> None:
        self.next_sender = next_sender
        self.next_target = next_target

    def reset(self) -> None:
        self.set(1, 1)

    def close(self) -> None:
        pass


def _pack(gen: int, sender: int, target: int) -> bytes:
    head = struct.pack("<4sQQQ", _MAGIC, gen, sender, target)
    return _SLOT.pack(_MAGIC, gen, sender, target, zlib.crc32(head))


def _unpack(raw: bytes) -> tuple[int, int, int] | None:
    if len(raw) < _SLOT_SIZE:
        return None
    magic, gen, sender, target, crc = _SLOT.unpack(raw[:_SLOT_SIZE])
    if magic != _MAGIC or zlib.crc32(raw[:28]) != crc:
        return None
    if not (1 <= sender <= _MAX_SEQ and 1 <= target <= _MAX_SEQ):
        return None
    return gen, sender, target


class FileSeqStore:
    """Durable sequence numbers of one session in ``path`` (see the module docstring)."""

    __slots__ = ("_fd", "_fsync", "_gen", "next_sender", "next_target", "path")

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._fd = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                self._replace(1, 1)
            self._fd = os.open(self.path, os.O_RDWR)
            raw = os.pread(self._fd, 2 * _SLOT_SIZE, 0)
        except OSError as e:
            raise StoreError(f"{self.path}: cannot open sequence store: {e}") from None
        slots = [s for s in (_unpack(raw[:_SLOT_SIZE]), _unpack(raw[_SLOT_SIZE:])) if s is not None]
        if not slots:
            raise StoreError(f"{self.path}: sequence store is corrupt (no valid slot); "
                             "log on with a reset (141=Y) after removing it")
        if len(slots) == 1 and raw[_SLOT_SIZE:].strip(b"\0") and raw[:_SLOT_SIZE].strip(b"\0"):
            log.warning("%s: one slot of the sequence store was torn; using the other", self.path)
        self._gen, self.next_sender, self.next_target = max(slots)

    def set(self, next_sender: int, next_target: int) -> None:
        """Record both numbers (one ``pwrite`` into the older slot; ``fsync`` when configured)."""
        self._gen += 1
        self.next_sender = next_sender
        self.next_target = next_target
        try:
            os.pwrite(self._fd, _pack(self._gen, next_sender, next_target), (self._gen & 1) * _SLOT_SIZE)
            if self._fsync:
                os.fsync(self._fd)
        except OSError as e:
            raise StoreError(f"{self.path}: cannot write sequence store: {e}") from None

    def reset(self) -> None:
        """Both numbers back to 1 (a Logon with 141=Y), by atomic replacement of the file."""
        try:
            self._replace(1, 1)
            if self._fd >= 0:
                os.close(self._fd)
            self._fd = os.open(self.path, os.O_RDWR)
        except OSError as e:
            raise StoreError(f"{self.path}: cannot reset sequence store: {e}") from None
        self._gen, self.next_sender, self.next_target = 0, 1, 1

    def _replace(self, sender: int, target: int) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, _pack(0, sender, target) + bytes(_SLOT_SIZE))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            os.close(fd)


def store_path(state_dir: str | os.PathLike[str], sender: str, target: str) -> Path:
    """Where a session's store lives under the instance's state folder."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{sender}-{target}")
    return Path(state_dir) / "fix" / f"{safe}.seq"


class CommittedTargetStore:
    """A store whose durable "next expected" number moves only when the application says the inbound
    messages before it have had their effects made durable (the quoter: journalled).

    The session core advances ``next_target`` as soon as it has parsed a message, before the application
    has seen it; written through at once, a crash (or a journal that cannot write) after that point would
    lose the message for good: the venue would never resend it. Here the session reads and sets the
    numbers in memory as usual; ``next_sender`` is written through at once (a number we used must never
    be used again), and the written ``next_target`` is the one of the last :meth:`commit`. :meth:`hold`
    pins it below a message whose effects are not durable until :meth:`release`, so the next start asks
    the venue to resend from there (fills are then de-duplicated by ExecID).
    """

    __slots__ = ("_durable_target", "_held_at", "inner", "next_sender", "next_target")

    def __init__(self, inner: FileSeqStore | MemorySeqStore) -> None:
        self.inner = inner
        self.next_sender = inner.next_sender
        self.next_target = inner.next_target
        self._durable_target = inner.next_target
        self._held_at = 0          # > 0: the first inbound MsgSeqNum whose effects are not durable

    @property
    def durable_target(self) -> int:
        return self._durable_target

    @property
    def held_at(self) -> int:
        return self._held_at

    def set(self, next_sender: int, next_target: int) -> None:
        self.next_target = next_target
        if next_target < self._durable_target:      # a reset or a lowered number: written at once
            self._durable_target = next_target
        elif next_sender == self.next_sender:
            return                                  # only the inbound number moved: wait for commit()
        self.next_sender = next_sender
        self.inner.set(next_sender, self._durable_target)

    def commit(self, through_seq: int = 0) -> None:
        """Every inbound message up to ``through_seq`` (all of them when 0) has had its effects made
        durable: write the expected number past it (no further than the session has got)."""
        if self._held_at:
            return
        target = self.next_target if through_seq <= 0 else min(self.next_target, through_seq + 1)
        if target > self._durable_target:
            self._durable_target = target
            self.inner.set(self.next_sender, target)

    def hold(self, seq: int) -> None:
        """The effects of inbound message ``seq`` are not durable: never write an expected number past
        it until :meth:`release`."""
        if not self._held_at or seq < self._held_at:
            self._held_at = seq
        if self._durable_target > seq:      # only if commit() ran ahead; it cannot, but never past seq
            self._durable_target = seq
            self.inner.set(self.next_sender, seq)

    def release(self) -> None:
        """What was held is durable now (the journal wrote it)."""
        self._held_at = 0

    def reset(self) -> None:
        self.inner.reset()
        self.next_sender = self.next_target = self._durable_target = 1
        self._held_at = 0

    def close(self) -> None:
        self.inner.close()
