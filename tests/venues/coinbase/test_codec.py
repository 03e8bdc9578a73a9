"""Coinbase Advanced Trade codec: the venue facts' real shapes, and every kind of bad input."""

from __future__ import annotations

import orjson

from fastmm.venues.coinbase.codec import (
    CoinbaseFeed,
    Heartbeat,
    MarketTrade,
    Resubscribe,
    TopChanged,
    subscribe_message,
)
from fastmm.venues.wire_time import parse_timestamp_ns

SNAPSHOT = ('{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z","sequence_num":0,'
            '"events":[{"type":"snapshot","product_id":"BTC-USD","updates":[{"side":"bid","event_time":'
            '"1970-01-01T00:00:00Z","price_level":"21921.73","new_quantity":"0.06317902"}]}]}')
HEARTBEAT = ('{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:26.122969572Z","sequence_num":0,'
             '"events":[{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105",'
             '"heartbeat_counter":"3049"}]}')
TRADES = ('{"channel":"market_trades","client_id":"","timestamp":"2023-02-09T20:19:35.39625135Z","sequence_num":0,'
          '"events":[{"type":"snapshot","trades":[{"trade_id":"000000000","product_id":"ETH-USD","price":"1260.01",'
          '"size":"0.3","side":"BUY","time":"2019-08-14T20:42:27.265Z"}]}]}')


def l2(seq: int, kind: str, updates: list[tuple[str, str, str]], ts: str = "2023-02-09T20:32:50.7Z") -> bytes:
    return orjson.dumps({"channel": "l2_data", "client_id": "", "timestamp": ts, "sequence_num": seq,
                         "events": [{"type": kind, "product_id": "BTC-USD", "updates": [
                             {"side": s, "event_time": ts, "price_level": p, "new_quantity": q}
                             for s, p, q in updates]}]})


def book(feed: CoinbaseFeed) -> tuple[list, list]:
    return feed.top()


def test_subscribe_one_channel_per_message() -> None:
    assert orjson.loads(subscribe_message("BTC-USD", "level2")) == {
        "type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"}
    feed = CoinbaseFeed()
    assert [orjson.loads(m)["channel"] for m in feed.subscriptions()] == ["level2", "heartbeats", "market_trades"]


def test_real_snapshot_heartbeat_and_trades_shapes() -> None:
    feed = CoinbaseFeed()
    (ev,) = feed.on_frame(SNAPSHOT, 1)
    assert isinstance(ev, TopChanged) and ev.t_venue_ns == parse_timestamp_ns("2023-02-09T20:32:50.714964855Z")
    assert book(feed) == ([(2192173000000, 6317902)], [])
    feed2 = CoinbaseFeed()
    (hb,) = feed2.on_frame(HEARTBEAT, 2)
    assert hb == Heartbeat(3049, 2)
    feed3 = CoinbaseFeed(product_id="ETH-USD")
    (tr,) = feed3.on_frame(TRADES, 3)
    assert isinstance(tr, MarketTrade) and tr.price_e8 == 126001000000 and tr.size_e8 == 30000000
    assert tr.maker_side == "BUY"


def test_timestamps_with_any_fraction() -> None:
    assert parse_timestamp_ns("1970-01-01T00:00:01Z") == 1_000_000_000
    assert parse_timestamp_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_timestamp_ns("1970-01-01T00:00:01.000000001Z") == 1_000_000_001


def test_updates_are_absolute_and_zero_removes() -> None:
    feed = CoinbaseFeed()
    feed.on_frame(l2(0, "snapshot", [("bid", "100.00", "1"), ("bid", "99.50", "2"), ("offer", "101", "3")]), 1)
    feed.on_frame(l2(1, "update", [("bid", "100.00", "0"), ("offer", "101", "5"), ("offer", "100.5", "1")]), 2)
    assert book(feed) == ([(9950000000, 200000000)], [(10050000000, 100000000), (10100000000, 500000000)])


def test_sequence_gap_drops_book_and_asks_to_resubscribe() -> None:
    feed = CoinbaseFeed()
    feed.on_frame(l2(0, "snapshot", [("bid", "100", "1"), ("offer", "101", "1")]), 1)
    out = feed.on_frame(l2(2, "update", [("bid", "100", "2")]), 2)
    assert len(out) == 1 and isinstance(out[0], Resubscribe)
    assert not feed.synced and book(feed) == ([], []) and feed.gaps == 1
    # Updates before the new snapshot are ignored; the snapshot rebuilds.
    assert feed.on_frame(l2(3, "update", [("bid", "100", "2")]), 3) == []
    (ev,) = feed.on_frame(l2(4, "snapshot", [("bid", "99", "1"), ("offer", "101", "1")]), 4)
    assert isinstance(ev, TopChanged) and book(feed)[0] == [(9900000000, 100000000)]


def test_snapshot_twice_replaces_the_book() -> None:
    feed = CoinbaseFeed()
    feed.on_frame(l2(0, "snapshot", [("bid", "100", "1"), ("offer", "101", "1")]), 1)
    feed.on_frame(l2(1, "snapshot", [("bid", "98", "1"), ("offer", "99", "1")]), 2)
    assert book(feed) == ([(9800000000, 100000000)], [(9900000000, 100000000)])


def test_crossed_book_is_kept_but_visible() -> None:
    feed = CoinbaseFeed()
    feed.on_frame(l2(0, "snapshot", [("bid", "100", "1"), ("offer", "101", "1")]), 1)
    feed.on_frame(l2(1, "update", [("bid", "102", "1")]), 2)
    assert feed.book.crossed


def test_bad_input_is_dropped_counted_and_never_moves_the_book() -> None:
    feed = CoinbaseFeed()
    feed.on_frame(l2(0, "snapshot", [("bid", "100", "1"), ("offer", "101", "1")]), 1)
    before = book(feed)
    bad = [
        b"not json",
        b"[1,2,3]",
        l2(1, "update", [("bid", "100", "-1")]),                       # negative size
        l2(2, "update", [("bid", "abc", "1")]),                        # non-numeric price
        l2(3, "update", [("bid", "100", "1e5")]),                      # exponent is not a decimal
        l2(4, "update", [("middle", "100", "1")]),                     # unknown side
        l2(5, "update", [("bid", "99", "1"), ("bid", "98", "x")]),     # half-bad message: none applied
        orjson.dumps({"channel": "l3_data", "sequence_num": 6, "events": []}),
        orjson.dumps({"channel": "l2_data", "sequence_num": 7, "events": "nope"}),
        orjson.dumps({"channel": "l2_data", "sequence_num": 8, "timestamp": "yesterday", "events": []}),
        b'{"channel":"l2_data","sequence_num":9,"events":[{"type":"update","updates":[{"side":"bid"}]}]}',
        b'{"channel":"l2_data","sequence_num":10,"events":[],"x":"\xff\xfe"}',  # not UTF-8 (raw payload)
    ]
    for frame in bad:
        assert feed.on_frame(frame, 5) == []
    assert book(feed) == before
    counts = feed.bad.counts
    assert counts["not JSON"] == 2 and counts["not a JSON object"] == 1
    assert counts["unknown channel"] == 1 and counts["bad l2_data message"] == 8
    assert feed.gaps == 0, "bad messages with valid sequence numbers are not gaps"


def test_huge_frame_is_refused_without_parsing() -> None:
    feed = CoinbaseFeed()
    frame = b'{"channel":"l2_data","pad":"' + b"x" * (20 * 1024 * 1024) + b'"}'
    assert feed.on_frame(frame, 1) == [] and feed.bad.counts["frame too large"] == 1


def test_out_of_order_timestamps_do_not_matter_sequence_does() -> None:
    feed = CoinbaseFeed()
    feed.on_frame(l2(0, "snapshot", [("bid", "100", "1"), ("offer", "101", "1")], ts="2023-02-09T20:32:51Z"), 1)
    (ev,) = feed.on_frame(l2(1, "update", [("bid", "100.5", "1")], ts="2023-02-09T20:32:49Z"), 2)
    assert isinstance(ev, TopChanged)
    assert feed.on_frame(l2(0, "update", [("bid", "100.5", "9")]), 3) == []   # sequence went backwards
    assert feed.bad.counts["sequence_num went backwards"] == 1


def test_no_event_when_top_levels_unchanged() -> None:
    feed = CoinbaseFeed(depth=1)
    feed.on_frame(l2(0, "snapshot", [("bid", "100", "1"), ("offer", "101", "1")]), 1)
    assert feed.on_frame(l2(1, "update", [("bid", "90", "1")]), 2) == []


def test_a_level_sink_sees_every_applied_change_and_resends_are_counted_as_duplicates() -> None:
    """What the backtest's reader of recorded frames relies on: the changes as applied (after the book
    has them), history trades marked, a frame seen again counted."""
    seen: list[tuple[str, list, tuple | None]] = []
    feed = CoinbaseFeed("BTC-USD")

    def sink(kind: str, changes: list) -> None:
        seen.append((kind, changes, feed.book.best_bid()))

    feed.level_sink = sink
    assert feed.on_frame(l2(0, "update", [("bid", "1", "1")]), 1) == []     # before the snapshot: not applied
    feed.on_frame(l2(1, "snapshot", [("bid", "100.5", "2"), ("offer", "101", "1")]), 2)
    feed.on_frame(l2(2, "update", [("bid", "100.5", "0"), ("bid", "100", "3")]), 3)
    assert seen == [("snapshot", [(True, 10_050_000_000, 200_000_000), (False, 10_100_000_000, 100_000_000)],
                     (10_050_000_000, 200_000_000)),
                    ("update", [(True, 10_050_000_000, 0), (True, 10_000_000_000, 300_000_000)],
                     (10_000_000_000, 300_000_000))]
    assert feed.on_frame(l2(2, "update", [("bid", "99", "1")]), 4) == [] and feed.duplicates == 1
    assert len(seen) == 2
    trade = TRADES.replace('"sequence_num":0', '"sequence_num":3')
    [t] = feed.on_frame(trade.replace("ETH-USD", "BTC-USD"), 5)
    assert isinstance(t, MarketTrade) and t.history
