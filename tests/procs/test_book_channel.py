"""The top-of-book record: what a feed publishes is what the quoter reads, field by field."""

from __future__ import annotations

import os

from fastmm.procs.book_channel import BookPublisher, Top, read_top
from fastmm.shm import LatestValue, unlink_instance
from fastmm.shm.records import BOOK_CROSSED, BOOK_STALE, TOP_OF_BOOK, VENUE_KRAKEN


def test_publish_then_read_top_round_trip() -> None:
    instance = f"tbook{os.getpid()}"
    ch = LatestValue.create(instance, "ref.kraken", TOP_OF_BOOK)
    try:
        assert read_top(ch) is None                      # nothing published yet
        pub = BookPublisher(ch, VENUE_KRAKEN)
        bids = [(100 - i, 10 + i) for i in range(7)]      # more levels than the record keeps
        asks = [(101 + i, 20 + i) for i in range(2)]
        pub.publish(bids, asks, t_venue_ns=11, t_recv_ns=22, venue_seq=33)
        top = read_top(ch)
        assert isinstance(top, Top) and top.usable
        assert (top.bid_e8, top.bid_sz_e8, top.ask_e8, top.ask_sz_e8) == (100, 10, 101, 20)
        assert (top.t_venue_ns, top.t_recv_ns, top.venue_seq, top.flags, top.seq) == (11, 22, 33, 0, 1)
        assert top.t_pub_ns >= 22 and top.t_pub_ns == int(ch.rx["t_pub"][0])
        pub.publish([(105, 1)], [(104, 1)], t_venue_ns=0, t_recv_ns=23, venue_seq=34)   # crossed
        top = read_top(ch)
        assert top is not None and top.flags == BOOK_CROSSED and not top.usable and top.seq == 2
        pub.publish([], [(104, 1)], t_venue_ns=0, t_recv_ns=24, venue_seq=35)            # one-sided
        top = read_top(ch)
        assert top is not None and (top.bid_e8, top.bid_sz_e8, top.ask_e8) == (0, 0, 104) and not top.usable
        pub.publish_stale(25)
        top = read_top(ch)
        assert top is not None and top.flags == BOOK_STALE and (top.bid_e8, top.ask_e8) == (0, 0)
    finally:
        ch.close()
        unlink_instance(instance)
