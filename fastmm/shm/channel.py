"""What the two channel kinds share: their segment, their roles, and their wake-up file descriptor.

Memory ordering: fastmm relies on x86-64's total store order. Stores become visible in program order
and loads are not reordered with other loads, and every cursor is an aligned 8-byte word (a single
store), so "write the record, then the cursor" and "read the cursor, then the record" need no fence in
Python. Each numpy operation is an opaque C call, so the compiler cannot reorder across them either. On
a CPU with a weaker memory model (ARM, POWER) the channels need real barriers that Python cannot issue;
:func:`memory_model_ok` tells the supervisor, which refuses to start there.
"""

from __future__ import annotations

import os
import platform
from typing import Self

import numpy as np

from fastmm.shm import segment as sg
from fastmm.shm.records import RecordDtype
from fastmm.shm.wait import WAIT_KINDS, BlockWaiter, WaitKind, check_inherited_fd, new_eventfd

NO_FD = 2**64 - 1


def memory_model_ok() -> bool:
    return platform.machine().lower() in {"x86_64", "amd64", "i686", "i386"}


class Channel:
    """Base of the latest-value channel and the event ring: a segment plus the wait strategy."""

    KIND = 0

    def __init__(self, seg: sg.Segment, dtype: RecordDtype, wait: WaitKind) -> None:
        if wait not in WAIT_KINDS:
            raise ValueError(f"wait must be one of {WAIT_KINDS}, not {wait!r}")
        self.segment = seg
        self.dtype = dtype
        self.wait_kind: WaitKind = wait
        self.words = seg.words
        self.q = seg.q
        self.mv = seg.mv
        self.itemsize = dtype.itemsize
        self.capacity = int(seg.words[sg.W_CAPACITY])
        self.slots = seg.records(dtype, self.capacity)
        # Private one-record buffers: ``tx`` is filled by a producer and copied in by publish/push,
        # ``rx`` receives a consumer's copy. Copies go through byte memoryviews (a memcpy each).
        self.tx = np.zeros(1, dtype)
        self.rx = np.zeros(1, dtype)
        self._tx_bytes = self.tx.view(np.uint8).data
        self.rx_bytes = self.rx.view(np.uint8).data   # rx raw: struct.unpack_from on hot paths
        fd = int(seg.words[sg.W_NOTIFY_FD])
        self._notify_fd = -1 if fd == NO_FD else fd
        self._waiter: BlockWaiter | None = None
        self._own_fd = False

    @property
    def name(self) -> str:
        return self.segment.name

    # -- creation and attachment ----------------------------------------------------------------
    @classmethod
    def _create(cls, instance: str, channel: str, dtype: RecordDtype, capacity: int, wait: WaitKind) -> Self:
        seg = sg.create_segment(instance, channel, kind=cls.KIND, dtype=dtype, capacity=capacity)
        if wait == "block":
            fd = new_eventfd()
            seg.words[sg.W_NOTIFY_FD] = fd
        obj = cls(seg, dtype, wait)
        obj._own_fd = wait == "block"
        return obj

    @classmethod
    def _attach(cls, instance: str, channel: str, dtype: RecordDtype, wait: WaitKind | None) -> Self:
        seg = sg.attach_segment(instance, channel, kind=cls.KIND, dtype=dtype)
        has_fd = int(seg.words[sg.W_NOTIFY_FD]) != NO_FD
        if wait is None:
            wait = "block" if has_fd else "spin"
        if wait == "block" and not has_fd:
            seg.close()
            raise sg.ShmError(f"{seg.name} was created for wait='spin'; it has no eventfd to block on")
        return cls(seg, dtype, wait)

    def inheritable_fds(self) -> tuple[int, ...]:
        """File descriptors a spawned process needs (``subprocess.Popen(pass_fds=...)``)."""
        return (self._notify_fd,) if self._notify_fd >= 0 else ()

    def fileno(self) -> int:
        """The eventfd to register in an asyncio loop (``loop.add_reader``); block wait only."""
        return self._block_waiter().fileno()

    def _block_waiter(self) -> BlockWaiter:
        if self._waiter is None:
            if self._notify_fd < 0:
                raise sg.ShmError(f"{self.name} has no eventfd (created with wait='spin')")
            check_inherited_fd(self._notify_fd, self.name)
            self._waiter = BlockWaiter(self._notify_fd)
        return self._waiter

    def _signal(self) -> None:
        if self._notify_fd >= 0:
            os.eventfd_write(self._notify_fd, 1)

    def clear_wakeup(self) -> None:
        """Consume a pending wake-up without blocking (call it from an asyncio reader callback)."""
        self._block_waiter().clear()

    # -- teardown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Unmap (and close the eventfd if this process created it). Does not unlink."""
        self.slots = np.empty(0, self.dtype)
        self.words = np.empty(0, np.uint64)
        self.q = self.mv = memoryview(b"")
        self.segment.close()
        if self._own_fd and self._notify_fd >= 0:
            os.close(self._notify_fd)
            self._notify_fd = -1

    def unlink(self) -> None:
        self.segment.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
