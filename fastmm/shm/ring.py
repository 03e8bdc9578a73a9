"""Event ring: single producer, single consumer, every record delivered once and in order.

The shape of the LMAX Disruptor's single-producer ring, in shared memory: a power-of-two array of
preallocated slots, a write cursor that only the producer stores and a read cursor that only the
consumer stores, each on its own cache lines, and each side caching the other's cursor so that the
common case touches no shared line. The producer writes the slot, then publishes by storing the write
cursor; the consumer reads the write cursor, then the slot (ordering: :mod:`fastmm.shm.channel`).

A full ring is back-pressure: :meth:`EventRing.try_claim` returns None and :meth:`EventRing.put` waits
up to a timeout and then raises :class:`RingFull`; nothing is ever overwritten. Both cursors live in the
segment, so a producer killed mid-write loses only the slot it had not published (its restart carries
on from the published cursor), and a consumer that dies after copying a record but before releasing it
gets that record again on restart: delivery across a consumer crash is at-least-once, which is why fill
records carry their venue's unique ``exec_id``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from fastmm.shm import segment as sg
from fastmm.shm.channel import Channel
from fastmm.shm.records import RecordDtype, Records
from fastmm.shm.wait import WaitKind


class RingFull(sg.ShmError):
    """The consumer has not kept up: the producer must not overwrite, so it stops and says so."""


class EventRing(Channel):
    """Produce: fill ``tx`` then :meth:`push` (or :meth:`put` a record). Consume: :meth:`pop` copies the
    oldest record into ``rx``. :meth:`try_claim`/:meth:`publish` and :meth:`try_peek`/:meth:`release`
    are the zero-copy forms (numpy views straight into the slot)."""

    KIND = sg.KIND_RING

    def __init__(self, seg: sg.Segment, dtype: RecordDtype, wait: WaitKind) -> None:
        super().__init__(seg, dtype, wait)
        self.mask = self.capacity - 1
        self._write = self.q[sg.W_WRITE]
        self._read = self.q[sg.W_READ]
        self._read_cached = self._read     # producer's view of the consumer's cursor
        self._write_cached = self._write   # consumer's view of the producer's cursor

    @classmethod
    def create(cls, instance: str, channel: str, dtype: RecordDtype, *, capacity: int = 4096,
               wait: WaitKind = "block") -> EventRing:
        if capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two >= 2, not {capacity}")
        return cls._create(instance, channel, dtype, capacity, wait)

    @classmethod
    def attach(cls, instance: str, channel: str, dtype: RecordDtype, *,
               wait: WaitKind | None = None) -> EventRing:
        return cls._attach(instance, channel, dtype, wait)

    def _claim_role(self, word: int, role: str) -> None:
        other = int(self.words[word])
        if other and other != os.getpid() and sg.pid_alive(other):
            raise sg.ShmError(f"{self.name} already has a live {role}, process {other}")
        self.words[word] = os.getpid()

    def claim_producer(self) -> None:
        """Become the only producer; carry on from the last published record."""
        self._claim_role(sg.W_PRODUCER_PID, "producer")
        self._write = self.q[sg.W_WRITE]
        self._read_cached = self.q[sg.W_READ]

    def claim_consumer(self) -> None:
        """Become the only consumer; carry on from the first unreleased record."""
        self._claim_role(sg.W_CONSUMER_PID, "consumer")
        self._read = self.q[sg.W_READ]
        self._write_cached = self.q[sg.W_WRITE]

    def __len__(self) -> int:
        return self.q[sg.W_WRITE] - self.q[sg.W_READ]

    def _offset(self, seq: int) -> int:
        return sg.HEADER_BYTES + (seq & self.mask) * self.itemsize

    def _room(self) -> bool:
        w = self._write
        if w - self._read_cached < self.capacity:
            return True
        self._read_cached = self.q[sg.W_READ]
        return w - self._read_cached < self.capacity

    # -- producer -------------------------------------------------------------------------------
    def push(self) -> int:
        """Copy ``tx`` into the next slot and publish it: its sequence number (from 1), 0 if full.

        The hot path of every producer, so it is written out flat: each Python call or attribute
        lookup it avoids is tens of nanoseconds on a path that costs a few hundred.
        """
        w = self._write
        if w - self._read_cached >= self.capacity and not self._room():
            return 0
        off = sg.HEADER_BYTES + (w & self.mask) * self.itemsize
        q = self.q
        self.mv[off:off + self.itemsize] = self._tx_bytes
        w += 1
        q[off >> 3] = w                 # the record's ``seq`` field
        q[sg.W_WRITE] = w               # publish: after the slot's bytes (x86 store order)
        self._write = w
        if self._notify_fd >= 0:
            os.eventfd_write(self._notify_fd, 1)
        return w

    def _publish_at(self, w: int, off: int) -> int:
        q = self.q
        w += 1
        q[off >> 3] = w
        q[sg.W_WRITE] = w
        self._write = w
        if self._notify_fd >= 0:
            os.eventfd_write(self._notify_fd, 1)
        return w

    def try_put(self, rec: np.void | Records | tuple[Any, ...]) -> bool:
        if not self._room():
            return False
        self.tx[0] = rec
        return self.push() > 0

    def put(self, rec: np.void | Records | tuple[Any, ...], timeout_s: float = 1.0) -> int:
        """Publish, waiting up to ``timeout_s`` for room; a consumer that stays behind is an error."""
        self.tx[0] = rec
        seq = self.push()
        if seq:
            return seq
        deadline = time.monotonic() + timeout_s
        delay = 1e-6
        while True:
            time.sleep(delay)
            seq = self.push()
            if seq:
                return seq
            if time.monotonic() > deadline:
                raise RingFull(f"{self.name}: ring full ({self.capacity} records) for {timeout_s} s; "
                               f"the consumer (pid {int(self.words[sg.W_CONSUMER_PID])}) is not reading")
            delay = min(delay * 2, 1e-3)

    def try_claim(self) -> np.void | None:
        """The next free slot as a writable view into shared memory; None when the ring is full."""
        if not self._room():
            return None
        slot: np.void = self.slots[self._write & self.mask]  # an integer index: one record
        return slot

    def publish(self) -> int:
        """Publish the slot returned by :meth:`try_claim`."""
        return self._publish_at(self._write, self._offset(self._write))

    # -- consumer -------------------------------------------------------------------------------
    def _available(self) -> bool:
        if self._read != self._write_cached:
            return True
        self._write_cached = self.q[sg.W_WRITE]
        return self._read != self._write_cached

    def pop(self) -> bool:
        """Copy the oldest unread record into ``rx`` and release its slot; False when empty."""
        if not self._available():
            return False
        r = self._read
        off = sg.HEADER_BYTES + (r & self.mask) * self.itemsize
        self.rx_bytes[:] = self.mv[off:off + self.itemsize]
        self._read = r + 1
        self.q[sg.W_READ] = r + 1
        return True

    def try_read(self, out: Records) -> bool:
        """Like :meth:`pop`, copying into ``out`` (a one-record array) as well."""
        if not self.pop():
            return False
        out[...] = self.rx
        return True

    def try_peek(self) -> np.void | None:
        """The oldest unread record as a view into shared memory (valid until :meth:`release`)."""
        if not self._available():
            return None
        slot: np.void = self.slots[self._read & self.mask]
        return slot

    def release(self) -> None:
        """Give the peeked slot back to the producer."""
        self._read += 1
        self.q[sg.W_READ] = self._read

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until a record is available: True, or False when the timeout passes first."""
        if self._available():
            return True
        q = self.q
        if self.wait_kind == "block":
            waiter = self._block_waiter()
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                slept = waiter.sleep(left)
                if self._available():
                    return True
                if not slept:
                    return False
        r = self._read
        if timeout_s is None:
            while q[sg.W_WRITE] == r:
                pass
            self._write_cached = q[sg.W_WRITE]
            return True
        deadline_ns = time.monotonic_ns() + int(timeout_s * 1e9)
        n = 0
        while q[sg.W_WRITE] == r:
            n += 1
            if not n & 1023 and time.monotonic_ns() > deadline_ns:
                return False
        self._write_cached = q[sg.W_WRITE]
        return True
