"""Kraken WebSocket v2 book codec: checksum, truncation, bad input; and against the Kraken WS simulator."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from fastmm.backoff import Backoff
from fastmm.sim.kraken_ws import KrakenWsSettings
from fastmm.sim.kraken_ws import checksum as sim_checksum
from fastmm.sim.kraken_ws_server import KrakenWsSimServer
from fastmm.venues.events import Resubscribe, TopChanged
from fastmm.venues.kraken.ws_codec import KrakenBookFeed, book_checksum
from fastmm.venues.ws_feed import WsFeedClient

E8 = 100_000_000


def msg(kind: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]], checksum: int | None = None,
        symbol: str = "BTC/USD") -> bytes:
    if checksum is None:
        raise AssertionError
    return orjson.dumps({"channel": "book", "type": kind, "data": [{
        "symbol": symbol, "bids": [{"price": p, "qty": q} for p, q in bids],
        "asks": [{"price": p, "qty": q} for p, q in asks], "checksum": checksum,
        "timestamp": "2024-08-09T00:00:00.123456Z"}]})


def e8(levels: list[tuple[float, float]]) -> list[tuple[int, int]]:
    return [(round(p * E8), round(q * E8)) for p, q in levels]


def cs(bids, asks) -> int:
    return book_checksum(e8(bids), e8(asks), 1, 8)


def test_checksum_agrees_with_the_simulators_independent_implementation() -> None:
    bids = [(60000.1, 0.5), (59999.9, 1.25), (59000.0, 0.00000001)]
    asks = [(60000.2, 0.1), (60010.0, 3.0)]
    assert cs(bids, asks) == sim_checksum(e8(bids), e8(asks))


def test_snapshot_update_truncation_and_checksum() -> None:
    feed = KrakenBookFeed(depth=2, top_levels=2)
    bids, asks = [(100.0, 1.0), (99.9, 2.0)], [(100.2, 1.0), (100.3, 2.0)]
    (ev,) = feed.on_frame(msg("snapshot", bids, asks, cs(bids, asks)), 1)
    assert isinstance(ev, TopChanged) and feed.synced
    # A better bid pushes 99.9 out of depth 2: the client truncates it itself.
    new_bids = [(100.1, 1.0), (100.0, 1.0)]
    (ev,) = feed.on_frame(msg("update", [(100.1, 1.0)], [], cs(new_bids, asks)), 2)
    assert feed.top() == (e8(new_bids), e8(asks))
    # qty 0 removes
    (ev,) = feed.on_frame(msg("update", [], [(100.2, 0.0)], cs(new_bids, [(100.3, 2.0)])), 3)
    assert feed.top()[1] == e8([(100.3, 2.0)])


def test_checksum_mismatch_drops_book_and_resubscribes() -> None:
    feed = KrakenBookFeed()
    bids, asks = [(100.0, 1.0)], [(100.1, 1.0)]
    feed.on_frame(msg("snapshot", bids, asks, cs(bids, asks)), 1)
    (ev,) = feed.on_frame(msg("update", [(100.0, 2.0)], [], 12345), 2)
    assert isinstance(ev, Resubscribe) and not feed.synced and feed.checksum_failures == 1
    subs = [orjson.loads(m) for m in feed.resubscription()]
    assert [m["method"] for m in subs] == ["unsubscribe", "subscribe"]
    assert subs[1]["params"] == {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}


def test_bad_input_never_moves_the_book() -> None:
    feed = KrakenBookFeed()
    bids, asks = [(100.0, 1.0)], [(100.1, 1.0)]
    feed.on_frame(msg("snapshot", bids, asks, cs(bids, asks)), 1)
    before = feed.top()
    for frame in [b"{", b"7", b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":"x","qty":1}],"checksum":1}]}',
                  b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":100,"qty":-1}],"checksum":1}]}',
                  b'{"channel":"book","type":"weird","data":[{"symbol":"BTC/USD","checksum":1}]}',
                  b'{"channel":"ohlc"}', b'{"method":"subscribe","success":false,"error":"Currency pair not supported"}',
                  b'{"channel":"book","pad":"' + b"x" * (20 * 1024 * 1024) + b'"}']:
        assert feed.on_frame(frame, 2) == []
    assert feed.top() == before
    assert feed.bad.counts["bad book message"] == 3 and feed.bad.counts["frame too large"] == 1
    assert feed.bad.counts["request rejected"] == 1 and feed.bad.counts["unknown channel"] == 1


def test_other_symbol_ignored() -> None:
    feed = KrakenBookFeed()
    assert feed.on_frame(msg("snapshot", [(1.0, 1.0)], [(2.0, 1.0)], 0, symbol="ETH/USD"), 1) == []
    assert not feed.synced


def test_client_follows_the_kraken_ws_simulator_with_every_checksum_right() -> None:
    async def go() -> KrakenBookFeed:
        server = KrakenWsSimServer.from_capture(settings=KrakenWsSettings(speed=0), max_lines=15000,
                                                autostart=False)
        port = await server.start("127.0.0.1", 0)
        feed = KrakenBookFeed(depth=10)
        stale: list[str] = []
        client = WsFeedClient(f"ws://127.0.0.1:{port}", feed, lambda evs: None, stale.append,
                              backoff=Backoff(0.05, 0.5, seed=1))
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        loop = asyncio.get_running_loop()
        try:
            deadline = loop.time() + 30
            while not client.connected and loop.time() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            server.begin_replay()
            while loop.time() < deadline:
                await asyncio.sleep(0.05)
                if server.core.finished and feed.synced and feed.book_messages > 100 and \
                        feed.book.top(10) == server.core._view(10):
                    break
            else:
                pytest.fail(f"never caught up: {feed.book_messages} book messages, bad {feed.bad.counts}")
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await server.stop()
        return feed

    feed = asyncio.run(go())
    assert feed.checksum_failures == 0 and not feed.bad.counts
