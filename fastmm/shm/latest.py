"""Latest-value channel: one record under a seqlock, one writer, any number of readers.

The writer makes the counter odd, writes the record, makes it even. A reader reads the counter, copies
the record, reads the counter again, and keeps the copy only if both reads are the same even number;
otherwise it retries. Readers never block the writer and may skip intermediate values, which is what a
price wants: only the newest top-of-book matters. Memory ordering: see :mod:`fastmm.shm.channel`.

A writer killed between "odd" and "even" leaves the counter odd; readers then report "no consistent
value" (after a bounded number of retries) instead of spinning forever or returning a torn record, and
the restarted writer repairs the counter before its first write.
"""

from __future__ import annotations

import os
import time

import numpy as np

from fastmm.shm import segment as sg
from fastmm.shm.channel import Channel
from fastmm.shm.records import RecordDtype, Records
from fastmm.shm.wait import WaitKind

READ_RETRIES = 10_000


class LatestValue(Channel):
    """Write: fill ``tx`` then :meth:`publish` (or :meth:`write` a record). Read: :meth:`read` copies
    the newest value into ``rx``."""

    KIND = sg.KIND_LATEST

    def __init__(self, seg: sg.Segment, dtype: RecordDtype, wait: WaitKind) -> None:
        super().__init__(seg, dtype, wait)
        self._lo = sg.HEADER_BYTES
        self._hi = sg.HEADER_BYTES + dtype.itemsize
        self._seq_word = sg.HEADER_BYTES // 8   # the record's own ``seq`` field (first field)
        self._writer_seq = -1
        self._last_seen = 0

    @classmethod
    def create(cls, instance: str, channel: str, dtype: RecordDtype, *,
               wait: WaitKind = "block") -> LatestValue:
        return cls._create(instance, channel, dtype, 1, wait)

    @classmethod
    def attach(cls, instance: str, channel: str, dtype: RecordDtype, *,
               wait: WaitKind | None = None) -> LatestValue:
        return cls._attach(instance, channel, dtype, wait)

    # -- writer ---------------------------------------------------------------------------------
    def claim_writer(self) -> None:
        """Become the channel's only writer; repair a counter left odd by a writer that died."""
        other = int(self.words[sg.W_PRODUCER_PID])
        if other and other != os.getpid() and sg.pid_alive(other):
            raise sg.ShmError(f"{self.name} already has a live writer, process {other}")
        self.words[sg.W_PRODUCER_PID] = os.getpid()
        seq = self.q[sg.W_WRITE]
        if seq & 1:
            seq += 1
            self.q[sg.W_WRITE] = seq
        self._writer_seq = seq

    def publish(self) -> int:
        """Copy ``tx`` into shared memory under the seqlock; returns the publish number (from 1)."""
        seq = self._writer_seq
        if seq < 0:
            self.claim_writer()
            seq = self._writer_seq
        q = self.q
        number = (seq >> 1) + 1
        q[sg.W_WRITE] = seq + 1
        self.mv[self._lo:self._hi] = self._tx_bytes
        q[self._seq_word] = number
        q[sg.W_WRITE] = seq + 2
        self._writer_seq = seq + 2
        if self._notify_fd >= 0:
            os.eventfd_write(self._notify_fd, 1)
        return number

    def write(self, rec: Records | np.void) -> int:
        self.tx[...] = rec
        return self.publish()

    # -- reader ---------------------------------------------------------------------------------
    def read(self) -> int:
        """Copy the newest consistent record into ``rx``.

        Returns its publish number, 0 if nothing was ever written, or -1 if the writer is stuck in the
        middle of a write (it died there): the caller treats the source as stale.
        """
        q = self.q
        lo, hi = self._lo, self._hi
        rx = self.rx_bytes
        for _ in range(READ_RETRIES):
            s1 = q[sg.W_WRITE]
            if s1 & 1:
                continue
            if s1 == 0:
                return 0
            rx[:] = self.mv[lo:hi]
            if q[sg.W_WRITE] == s1:
                self._last_seen = s1 >> 1
                return s1 >> 1
        return -1

    def version(self) -> int:
        """The publish count without copying (during a write: the count before it)."""
        return self.q[sg.W_WRITE] >> 1

    def read_new(self) -> int:
        """Like :meth:`read` but 0 when nothing was published since this reader's last read."""
        if self.q[sg.W_WRITE] >> 1 == self._last_seen:
            return 0
        return self.read()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until a value newer than the last one this reader saw is published."""
        if self.version() != self._last_seen:
            return True
        if self.wait_kind == "block":
            waiter = self._block_waiter()
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not waiter.sleep(left):
                    return self.version() != self._last_seen
                if self.version() != self._last_seen:
                    return True
        deadline_ns = None if timeout_s is None else time.monotonic_ns() + int(timeout_s * 1e9)
        q = self.q
        last = self._last_seen
        n = 0
        while q[sg.W_WRITE] >> 1 == last:
            n += 1
            if deadline_ns is not None and not n & 1023 and time.monotonic_ns() > deadline_ns:
                return False
        return True
