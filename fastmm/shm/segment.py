"""Named, instance-scoped shared-memory segments with a self-describing header.

A segment is ``/fastmm.<instance>.<name>`` (``/dev/shm/fastmm.<instance>.<name>`` on Linux). Its first
512 bytes are a header: magic, layout version, channel kind, the creating process's pid, the record
dtype's fingerprint, record size, capacity, the wake-up file descriptor of a blocking consumer, and the
channel's cursors, each on its own 128-byte block so that producer and consumer never share a cache
line (adjacent-line prefetch pulls pairs of 64-byte lines). Records follow at offset 512.

The header lets a process that attaches check that it reads the layout it was built for, and lets the
supervisor tell a stale segment of a dead earlier run (creator pid gone: unlink it) from a live
engine of the same instance (refuse to start).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import posix_ipc

from fastmm.shm.records import RecordDtype, Records, dtype_fingerprint

MAGIC = int.from_bytes(b"FASTMM01", "little")
LAYOUT_VERSION = 1
HEADER_BYTES = 512
SHM_DIR = Path("/dev/shm")

KIND_LATEST = 1
KIND_RING = 2
KIND_NAMES = {KIND_LATEST: "latest-value", KIND_RING: "event ring"}

# Header fields, as offsets in 8-byte words.
W_MAGIC = 0
W_VERSION_KIND = 1       # version in the low 32 bits, kind in the high 32 bits
W_OWNER_PID = 2
W_FINGERPRINT = 3
W_ITEMSIZE = 4
W_CAPACITY = 5
W_CREATED_NS = 6
W_NOTIFY_FD = 7          # eventfd of the blocking consumer, -1 for none
W_PRODUCER_PID = 8
W_OWNER_START = 9        # the creator's start time (/proc/<pid>/stat field 22): a reused pid is not it
W_WRITE = 16             # byte 128: seqlock counter / ring write cursor (written by the producer only)
W_READ = 32              # byte 256: ring read cursor (written by the consumer only)
W_CONSUMER_PID = 33
W_CONSUMER_WAITING = 34

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CHANNEL_RE = re.compile(r"^[a-z0-9_.-]{1,64}$")


class ShmError(RuntimeError):
    """A shared-memory segment that cannot be used as asked; the message says why and what to do."""


class SegmentMissing(ShmError):
    pass


class InstanceRunning(ShmError):
    pass


def segment_name(instance: str, channel: str) -> str:
    if not _NAME_RE.match(instance):
        raise ShmError(f"instance name {instance!r} must be 1-64 of A-Z a-z 0-9 _ -")
    if not _CHANNEL_RE.match(channel):
        raise ShmError(f"channel name {channel!r} must be 1-64 of a-z 0-9 _ . -")
    return f"/fastmm.{instance}.{channel}"


def process_start_ticks(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (0 if it cannot be read): with the pid, the
    identity of a process that survives pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def pid_alive(pid: int, start_ticks: int = 0) -> bool:
    """Is ``pid`` a live (not zombie) process; with ``start_ticks``, the same process that had them."""
    if pid <= 0:
        return False
    if start_ticks and process_start_ticks(pid) not in (0, start_ticks):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return True


@dataclass
class Segment:
    """One mapped segment. ``words`` is the header as a numpy uint64 array (for setup and inspection);
    ``mv`` (bytes) and ``q`` (8-byte words) are memoryviews of the whole mapping, the fastest way Python
    has to copy a record or store one aligned word (a plain 8-byte store)."""

    name: str
    mm: mmap.mmap
    words: npt.NDArray[np.uint64]
    created: bool
    mv: memoryview = field(init=False)
    q: memoryview = field(init=False)

    def __post_init__(self) -> None:
        self.mv = memoryview(self.mm)
        self.q = self.mv.cast("Q")

    @property
    def kind(self) -> int:
        return int(self.words[W_VERSION_KIND]) >> 32

    @property
    def owner_pid(self) -> int:
        return int(self.words[W_OWNER_PID])

    @property
    def owner_start(self) -> int:
        return int(self.words[W_OWNER_START])

    def owner_alive(self) -> bool:
        """The creating process still runs (a reused pid with another start time does not count)."""
        return pid_alive(self.owner_pid, self.owner_start)

    def records(self, dtype: RecordDtype, count: int) -> Records:
        return np.frombuffer(self.mm, dtype=dtype, count=count, offset=HEADER_BYTES)

    def close(self) -> None:
        """Unmap. Views made from this segment must be dropped first (numpy holds the buffer)."""
        self.words = np.empty(0, np.uint64)
        self.q.release()
        self.mv.release()
        with contextlib.suppress(BufferError):
            self.mm.close()

    def unlink(self) -> None:
        with contextlib.suppress(posix_ipc.ExistentialError):
            posix_ipc.unlink_shared_memory(self.name)


def _map(name: str, shm: posix_ipc.SharedMemory) -> mmap.mmap:
    try:
        return mmap.mmap(shm.fd, shm.size)
    finally:
        shm.close_fd()


def create_segment(instance: str, channel: str, *, kind: int, dtype: RecordDtype, capacity: int) -> Segment:
    """Create a fresh segment. A leftover of a dead earlier run is replaced; a live owner is an error."""
    name = segment_name(instance, channel)
    size = HEADER_BYTES + dtype.itemsize * capacity
    try:
        shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
    except posix_ipc.ExistentialError:
        if not _remove_if_stale(name):
            raise ShmError(f"segment {name} was already created by this process") from None
        shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
    mm = _map(name, shm)
    words = np.frombuffer(mm, dtype="<u8", count=HEADER_BYTES // 8)
    words[:] = 0
    words[W_VERSION_KIND] = (kind << 32) | LAYOUT_VERSION
    words[W_OWNER_PID] = os.getpid()
    words[W_OWNER_START] = process_start_ticks(os.getpid())
    words[W_FINGERPRINT] = dtype_fingerprint(dtype)
    words[W_ITEMSIZE] = dtype.itemsize
    words[W_CAPACITY] = capacity
    words[W_CREATED_NS] = time.time_ns()
    words[W_NOTIFY_FD] = np.uint64(2**64 - 1)
    words[W_MAGIC] = MAGIC  # last: a reader that sees the magic sees a complete header
    return Segment(name, mm, words, created=True)


def attach_segment(instance: str, channel: str, *, kind: int, dtype: RecordDtype) -> Segment:
    """Map an existing segment and check it is the channel this code expects."""
    name = segment_name(instance, channel)
    try:
        shm = posix_ipc.SharedMemory(name)
    except posix_ipc.ExistentialError:
        raise SegmentMissing(
            f"shared-memory segment {name} does not exist: is the supervisor of instance {instance!r} "
            f"running (it creates every segment before it starts the processes)?") from None
    if shm.size < HEADER_BYTES:
        shm.close_fd()
        raise ShmError(f"segment {name} is {shm.size} bytes, smaller than its header: not a fastmm segment")
    mm = _map(name, shm)
    words = np.frombuffer(mm, dtype="<u8", count=HEADER_BYTES // 8)
    seg = Segment(name, mm, words, created=False)
    try:
        _check_header(seg, kind, dtype)
    except ShmError:
        del words
        seg.close()
        raise
    return seg


def _check_header(seg: Segment, kind: int, dtype: RecordDtype) -> None:
    w = seg.words
    if int(w[W_MAGIC]) != MAGIC:
        raise ShmError(f"segment {seg.name} has no fastmm header (still being created, or not ours)")
    version = int(w[W_VERSION_KIND]) & 0xFFFFFFFF
    if version != LAYOUT_VERSION:
        raise ShmError(f"segment {seg.name} has layout version {version}, this fastmm reads {LAYOUT_VERSION}")
    if seg.kind != kind:
        raise ShmError(f"segment {seg.name} is a {KIND_NAMES.get(seg.kind, seg.kind)} channel, "
                       f"not a {KIND_NAMES[kind]} channel")
    if int(w[W_FINGERPRINT]) != dtype_fingerprint(dtype) or int(w[W_ITEMSIZE]) != dtype.itemsize:
        raise ShmError(f"segment {seg.name} holds records of another layout than this fastmm's "
                       f"({dtype.itemsize} bytes); were the processes built from different versions?")
    need = HEADER_BYTES + dtype.itemsize * int(w[W_CAPACITY])
    if len(seg.mm) < need:
        raise ShmError(f"segment {seg.name} is {len(seg.mm)} bytes, its header says {need}")


def _remove_if_stale(name: str) -> bool:
    """Unlink ``name`` if its creator is dead (True). A live creator is an error; our own is kept."""
    try:
        shm = posix_ipc.SharedMemory(name)
    except posix_ipc.ExistentialError:
        return False
    owner = started = 0
    if shm.size >= HEADER_BYTES:
        mm = _map(name, shm)
        try:
            header = np.frombuffer(mm, dtype="<u8", count=HEADER_BYTES // 8)
            if int(header[W_MAGIC]) == MAGIC:
                owner, started = int(header[W_OWNER_PID]), int(header[W_OWNER_START])
            del header
        finally:
            mm.close()
    else:
        shm.close_fd()
    if owner == os.getpid():
        return False
    if owner and pid_alive(owner, started):
        raise InstanceRunning(f"segment {name} belongs to running process {owner}: another engine of this "
                              "instance is up; stop it or use another instance name")
    with contextlib.suppress(posix_ipc.ExistentialError):
        posix_ipc.unlink_shared_memory(name)
    return True


def list_segments(instance: str) -> list[str]:
    """Names (``/fastmm.<instance>.<channel>``) of the instance's segments that exist now."""
    prefix = segment_name(instance, "x")[1:-1]
    if not SHM_DIR.is_dir():
        return []
    return sorted("/" + p.name for p in SHM_DIR.iterdir() if p.name.startswith(prefix))


def remove_stale_segments(instance: str) -> list[str]:
    """Unlink every segment of ``instance`` whose creator is dead; raise if one has a live creator
    other than this process. Returns the names removed."""
    return [name for name in list_segments(instance) if _remove_if_stale(name)]


def unlink_instance(instance: str) -> list[str]:
    """Unlink every segment of the instance regardless of owner (the supervisor's last stop step)."""
    names = list_segments(instance)
    for name in names:
        with contextlib.suppress(posix_ipc.ExistentialError):
            posix_ipc.unlink_shared_memory(name)
    return names
