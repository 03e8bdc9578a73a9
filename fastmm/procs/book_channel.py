"""Writing and reading a top-of-book record (``TOP_OF_BOOK``) on a latest-value channel.

Every feed publishes through :class:`BookPublisher` and the quoter reads through :func:`read_top`, so
the meaning of each field (levels best first, 1e-8 units, flags, the three timestamps) lives here once.
Timestamps ``t_recv`` and ``t_pub`` are CLOCK_MONOTONIC nanoseconds (``time.monotonic_ns``), one clock
for every process on the host; ``t_venue`` is the venue's own wall-clock time, ns since the epoch.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fastmm.shm import LatestValue
from fastmm.shm.records import BOOK_CROSSED, BOOK_LEVELS, BOOK_STALE, TOP_OF_BOOK

Levels = Sequence[tuple[int, int]]


class BookPublisher:
    """Fills the record with one ``struct.pack_into`` (about half a microsecond, where setting the
    numpy fields one by one costs several) and publishes it under the seqlock."""

    _LAYOUT = struct.Struct("<QqqqQIIII" + f"{BOOK_LEVELS}q" * 4 + "Q")

    def __init__(self, channel: LatestValue, venue: int) -> None:
        if self._LAYOUT.size != TOP_OF_BOOK.itemsize:
            raise TypeError("BookPublisher's layout no longer matches the TOP_OF_BOOK record")
        self.channel = channel
        self.venue = venue
        self._tx = memoryview(channel.tx.view(np.uint8))
        self.published = 0

    def publish(self, bids: Levels, asks: Levels, *, t_venue_ns: int, t_recv_ns: int, venue_seq: int,
                stale: bool = False) -> int:
        """Publish the best levels (best first). Returns ``t_pub``."""
        nb, na = min(len(bids), BOOK_LEVELS), min(len(asks), BOOK_LEVELS)
        pad = _ZEROS
        bp = [p for p, _ in bids[:nb]] + pad[nb:]
        bs = [q for _, q in bids[:nb]] + pad[nb:]
        ap = [p for p, _ in asks[:na]] + pad[na:]
        as_ = [q for _, q in asks[:na]] + pad[na:]
        flags = BOOK_STALE if stale else 0
        if nb and na and bp[0] >= ap[0]:
            flags |= BOOK_CROSSED
        t_pub = time.monotonic_ns()
        self._LAYOUT.pack_into(self._tx, 0, 0, t_venue_ns, t_recv_ns, t_pub, venue_seq, self.venue, flags,
                               nb, na, *bp, *bs, *ap, *as_, 0)
        self.channel.publish()
        self.published += 1
        return t_pub

    def publish_stale(self, t_recv_ns: int) -> int:
        return self.publish((), (), t_venue_ns=0, t_recv_ns=t_recv_ns, venue_seq=0, stale=True)


_ZEROS = [0] * BOOK_LEVELS


@dataclass(frozen=True, slots=True)
class Top:
    """What the quoter needs of a reference book, read from shared memory."""

    seq: int
    bid_e8: int
    ask_e8: int
    bid_sz_e8: int
    ask_sz_e8: int
    flags: int
    t_venue_ns: int
    t_recv_ns: int
    t_pub_ns: int

    @property
    def usable(self) -> bool:
        return not self.flags and self.bid_e8 > 0 and self.ask_e8 > 0


def read_top(channel: LatestValue) -> Top | None:
    """The newest consistent record, or None (nothing published yet, or its writer died mid-write)."""
    seq = channel.read()
    if seq <= 0:
        return None
    r = channel.rx[0]
    nb, na = int(r["n_bids"]), int(r["n_asks"])
    return Top(seq,
               int(r["bid_px"][0]) if nb else 0, int(r["ask_px"][0]) if na else 0,
               int(r["bid_sz"][0]) if nb else 0, int(r["ask_sz"][0]) if na else 0,
               int(r["flags"]), int(r["t_venue"]), int(r["t_recv"]), int(r["t_pub"]))
