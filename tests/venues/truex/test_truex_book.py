"""TrueX market data applied to the L2 book: W snapshots, X new/change/delete, empty-book entries."""

from __future__ import annotations

from fastmm.config import InstrumentConfig
from fastmm.fix.codec import FrameParser, Message
from fastmm.instrument import Instrument
from fastmm.venues.truex.book import TruexBook
from fastmm.venues.truex.codec import TruexCodec

CODEC = TruexCodec(Instrument.from_config(InstrumentConfig()))


def parse(frame: bytes) -> Message:
    parser = FrameParser(65536)
    msgs = [m for m in parser.feed(frame.replace(b"|", b"\x01")) if isinstance(m, Message)]
    assert len(msgs) == 1, msgs
    return msgs[0]


def frame(body: str, mt: str) -> bytes:
    from fastmm.fix.codec import Encoder, format_timestamp

    return Encoder("FIXT.1.1", "TRUEX_UAT_MD", "CLI").encode(mt.encode(), 2, format_timestamp(0),
                                                             body.replace("|", "\x01").encode())


def test_real_empty_book_snapshot_from_uat() -> None:
    raw = (b"8=FIXT.1.1|9=236|35=W|49=TRUEX_UAT_GW|56=CLI_CLIENT|34=2|52=20250910-14:39:14.463394|"
           b"262=MD_BTC_1757515154372|55=BTC-PYUSD|167=CSPOT|268=2|269=0|270=0|271=0|1023=1|"
           b"273=19700101-00:00:00.000000000|269=1|270=0|271=0|1023=1|273=19700101-00:00:00.000000000|10=019|")
    book = TruexBook()
    book.snapshot(CODEC.md_snapshot(parse(raw)))
    assert book.synced and book.top(5) == ([], [])
    assert book.best_bid_ask() == (None, None) and book.top(10) == ([], [])


def test_snapshot_then_incrementals() -> None:
    book = TruexBook()
    snap = frame("262=m|55=BTC-PYUSD|167=CSPOT|268=3|269=0|270=60000|271=0.5|1023=1|"
                 "269=0|270=59999.5|271=1|1023=2|269=1|270=60001|271=0.25|1023=1|", "W")
    book.snapshot(CODEC.md_snapshot(parse(snap)))
    assert book.top(5) == ([(120000, 5000), (119999, 10000)], [(120002, 2500)])
    inc = frame("262=m|268=4|279=0|269=1|270=60000.5|271=0.1|279=1|269=0|270=60000|271=0.75|"
                "279=2|269=0|270=59999.5|271=0|279=0|269=2|270=60000.5|271=0.01|", "X")
    assert book.incremental(CODEC.md_incremental(parse(inc)))
    assert book.top(5) == ([(120000, 7500)], [(120001, 1000), (120002, 2500)])
    assert book.best_bid_ask() == ((120000, 7500), (120001, 1000))
    assert book.top(1) == ([(120000, 7500)], [(120001, 1000)])
    trade_only = frame("262=m|268=1|279=0|269=2|270=60000.5|271=0.01|", "X")
    assert not book.incremental(CODEC.md_incremental(parse(trade_only)))
