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
from typing import NamedTuple

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
        self._tx = channel.tx.view(np.uint8).data
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


class Top(NamedTuple):
    """What the quoter needs of a reference book, read from shared memory (a named tuple: read on every
    wake-up, and a third of a frozen dataclass's cost to build)."""

    seq: int
    bid_e8: int
    ask_e8: int
    bid_sz_e8: int
    ask_sz_e8: int
    flags: int
    t_venue_ns: int
    t_recv_ns: int
    t_pub_ns: int
    venue_seq: int = 0

    @property
    def usable(self) -> bool:
        return not self.flags and self.bid_e8 > 0 and self.ask_e8 > 0


# The fields read_top needs, by offset into the record, in one unpack_from (numpy field reads cost ~1 us
# each): t_venue, t_recv, t_pub, venue_seq, (venue), flags, n_bids, n_asks, then the best level of each
# of the four arrays.
_HEAD = struct.Struct("<8xqqqQIIII")
_L = BOOK_LEVELS * 8
_OFF_BEST = _HEAD.size
_BEST = struct.Struct(f"<q{_L - 8}xq{_L - 8}xq{_L - 8}xq")


def read_top(channel: LatestValue) -> Top | None:
    """The newest consistent record, or None (nothing published yet, or its writer died mid-write)."""
    seq = channel.read()
    if seq <= 0:
        return None
    buf = channel.rx_bytes
    t_venue, t_recv, t_pub, venue_seq, _venue, flags, nb, na = _HEAD.unpack_from(buf, 0)
    bp, bs, ap, as_ = _BEST.unpack_from(buf, _OFF_BEST)
    if not nb:
        bp = bs = 0
    if not na:
        ap = as_ = 0
    return Top(seq, bp, ap, bs, as_, flags, t_venue, t_recv, t_pub, venue_seq)
