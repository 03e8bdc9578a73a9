"""The Coinbase client against the Coinbase simulator over a real websocket on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from fastmm.backoff import Backoff
from fastmm.sim.coinbase import CoinbaseFaults, CoinbaseSettings
from fastmm.sim.coinbase_server import CoinbaseSimServer
from fastmm.venues.coinbase.codec import CoinbaseFeed, FeedEvent
from fastmm.venues.events import TopChanged
from fastmm.venues.ws_feed import WsFeedClient


async def follow(settings: CoinbaseSettings, max_lines: int, timeout: float = 30.0, stale_after_s: float = 2.0
                 ) -> tuple[CoinbaseFeed, WsFeedClient, CoinbaseSimServer, list[str], int]:
    server = CoinbaseSimServer.from_capture(settings=settings, max_lines=max_lines, autostart=False)
    port = await server.start("127.0.0.1", 0)
    feed = CoinbaseFeed(depth=5)
    stale: list[str] = []
    tops = 0

    def on_events(events: list[FeedEvent]) -> None:
        nonlocal tops
        tops += sum(isinstance(e, TopChanged) for e in events)

    client = WsFeedClient(f"ws://127.0.0.1:{port}", feed, on_events, stale.append, stale_after_s=stale_after_s,
                            backoff=Backoff(0.05, 0.5, seed=1))
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (client.connected and server.core.connections >= 1) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)   # the three subscriptions reach the server
        server.begin_replay()
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            if server.core.finished and feed.synced and feed.top() == server.core.book.top(5):
                break
        else:
            pytest.fail(f"client never caught up: synced={feed.synced} gaps={feed.gaps}")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await server.stop()
    return feed, client, server, stale, tops


def test_client_follows_the_replayed_book_exactly() -> None:
    feed, client, _server, _stale, tops = asyncio.run(follow(CoinbaseSettings(speed=0), 20000))
    assert feed.gaps == 0 and not feed.bad.counts and tops > 100
    assert client.connects == 1


def test_sequence_gap_resubscribes_and_rebuilds() -> None:
    faults = CoinbaseFaults(drop_seq=40)
    feed, _client, _server, stale, _tops = asyncio.run(follow(CoinbaseSettings(speed=0, faults=faults), 20000))
    assert feed.gaps == 1
    assert any("sequence gap" in s for s in stale)


def test_disconnect_reconnects_and_rebuilds() -> None:
    faults = CoinbaseFaults(disconnect_seq=60)
    _feed, client, _server, stale, _tops = asyncio.run(follow(CoinbaseSettings(speed=0, faults=faults), 20000))
    assert client.connects == 2 and "disconnected" in stale


def test_silence_marks_the_source_stale_then_reconnects() -> None:
    """The venue holds every message (heartbeats too) for 2.5 s: past stale_after (0.4 s) the source is
    stale, past twice that (at least RECONNECT_AFTER_MIN_S, 2 s) the connection is replaced, and the new
    one rebuilds the book."""
    faults = CoinbaseFaults(stall_seq=60, stall_ms=2500)
    feed, client, _server, stale, _tops = asyncio.run(
        follow(CoinbaseSettings(speed=0, faults=faults), 20000, stale_after_s=0.4))
    assert any(s.startswith("silent for") for s in stale), stale
    assert client.connects >= 2 and feed.synced and feed.gaps == 0
