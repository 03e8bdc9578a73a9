"""What a venue's sans-I/O book codec answers a frame with: the shell acts on these, never on the codec's
insides. Plain frozen values, so a codec, the feed shell and the backtest reader share them without
importing one another."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopChanged:
    """The book's top levels changed: publish them."""

    t_venue_ns: int
    t_recv_ns: int
    sequence_num: int


@dataclass(frozen=True, slots=True)
class Resubscribe:
    """A sequence gap, a checksum mismatch or a broken snapshot: the book is dropped; resubscribe."""

    reason: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The venue's heartbeat: proof the connection is alive while the book is quiet."""

    counter: int
    t_recv_ns: int
