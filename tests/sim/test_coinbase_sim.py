"""Coinbase Advanced Trade simulator: the sans-I/O core driven with explicit time, and the websockets
server against a plain ``websockets`` client receiving the whole capture at maximum speed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from fastmm.data import binance_capture_dir
from fastmm.data.binance import read_capture, replay
from fastmm.data.coinbase_frames import RawFrame, write_frames
from fastmm.data.events import BookSnapshot, DepthDiff, Trade
from fastmm.sim import ws_server
from fastmm.sim.coinbase import (
    CbBook,
    CbTrade,
    CbTrades,
    CbUpdate,
    CoinbaseSettings,
    CoinbaseSim,
    from_binance,
)
from fastmm.sim.coinbase_server import CoinbaseSimServer
from fastmm.units import format_e8

SUB_L2 = '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}'
SUB_TRADES = '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"market_trades"}'
SUB_HB = '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"heartbeats"}'
MS = 1_000_000


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def small_source() -> list[Any]:
    return [
        CbBook(1000 * MS, 1000 * MS, ((10_000 * 10**8, 10**8),), ((10_001 * 10**8, 2 * 10**8),)),
        CbUpdate(1100 * MS, 1100 * MS, 1100 * MS, (("bid", 10_000 * 10**8, 0), ("offer", 10_002 * 10**8, 5))),
        CbTrades(1200 * MS, 1200 * MS, (CbTrade("7", 10_001 * 10**8, 10**6, "SELL", 1199 * MS),)),
        CbUpdate(3000 * MS, 3000 * MS, 3000 * MS, (("bid", 9_999 * 10**8, 10**8),)),
    ]


def msgs(core: CoinbaseSim, cid: int, now: int) -> list[dict[str, Any]]:
    return [orjson.loads(f) for f in core.data_to_send(cid, now)]


def test_subscribe_snapshot_updates_and_sequence() -> None:
    core = CoinbaseSim(small_source(), CoinbaseSettings(speed=1.0, rebase_time=False))
    cid = core.open(0)
    core.receive(cid, SUB_L2, 0)
    core.receive(cid, SUB_TRADES, 0)
    out = msgs(core, cid, 0)
    assert [m["channel"] for m in out] == ["subscriptions", "subscriptions", "market_trades"]
    assert out[1]["events"] == [{"subscriptions": {"level2": ["BTC-USD"], "market_trades": ["BTC-USD"]}}]
    assert out[2]["events"] == [{"type": "snapshot", "trades": []}]
    core.start_replay(5 * 10**9)
    core.advance(5 * 10**9 + 150 * MS)  # book and first update are due, the trade (at +200 ms) is not
    out = msgs(core, cid, 0)
    assert [m["sequence_num"] for m in out] == [3, 4]
    snap, upd = out
    assert snap["channel"] == "l2_data" and snap["events"][0]["type"] == "snapshot"
    assert [(u["side"], u["price_level"], u["new_quantity"]) for u in snap["events"][0]["updates"]] == [
        ("bid", "10000", "1"), ("offer", "10001", "2")]
    assert snap["timestamp"] == "1970-01-01T00:00:01.000000000Z"
    assert upd["events"][0]["updates"] == [
        {"side": "bid", "event_time": "1970-01-01T00:00:01.100000000Z", "price_level": "10000",
         "new_quantity": "0"},
        {"side": "offer", "event_time": "1970-01-01T00:00:01.100000000Z", "price_level": "10002",
         "new_quantity": "0.00000005"}]
    assert core.next_wakeup_ns() == 5 * 10**9 + 200 * MS
    core.advance(5 * 10**9 + 200 * MS)
    (trade,) = msgs(core, cid, 0)
    assert trade["sequence_num"] == 5 and trade["channel"] == "market_trades"
    assert trade["events"] == [{"type": "update", "trades": [
        {"trade_id": "7", "product_id": "BTC-USD", "price": "10001", "size": "0.01", "side": "SELL",
         "time": "1970-01-01T00:00:01.199000000Z"}]}]
    # a late subscriber gets the current book and the recent trades as snapshots
    late = core.open(0)
    core.receive(late, SUB_L2, 6 * 10**9)
    core.receive(late, SUB_TRADES, 6 * 10**9)
    out = msgs(core, late, 0)
    book = out[1]["events"][0]["updates"]
    assert [(u["side"], u["price_level"]) for u in book] == [("offer", "10001"), ("offer", "10002")]
    assert out[3]["events"][0]["trades"][0]["trade_id"] == "7"
    # unsubscribe stops the channel
    core.receive(cid, '{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}', 0)
    core.advance(10 * 10**9)
    out = msgs(core, cid, 0)
    assert [m["channel"] for m in out] == ["subscriptions"]
    assert out[0]["events"] == [{"subscriptions": {"market_trades": ["BTC-USD"]}}]
    assert [m["channel"] for m in msgs(core, late, 0)] == ["l2_data"]


def test_rebased_time_starts_at_replay_start() -> None:
    core = CoinbaseSim(small_source(), CoinbaseSettings(speed=2.0, rebase_time=True))
    cid = core.open(0)
    core.receive(cid, SUB_L2, 0)
    core.start_replay(1_700_000_000 * 10**9)
    core.advance(1_700_000_000 * 10**9 + 50 * MS)  # speed 2: the update at +100 ms data time is due
    out = msgs(core, cid, 0)
    assert out[1]["timestamp"] == "2023-11-14T22:13:20.000000000Z"
    assert out[2]["events"][0]["updates"][0]["event_time"] == "2023-11-14T22:13:20.100000000Z"


def test_heartbeats_every_interval_with_counter() -> None:
    core = CoinbaseSim([], CoinbaseSettings(heartbeat_interval_ms=1000))
    cid = core.open(0)
    core.receive(cid, SUB_HB, 10**9)
    for t in (10**9, 2 * 10**9 - 1, 2 * 10**9, 3 * 10**9, 3 * 10**9 + 5):
        core.advance(t)
    out = msgs(core, cid, 0)
    hbs = [m for m in out if m["channel"] == "heartbeats"]
    assert [h["events"][0]["heartbeat_counter"] for h in hbs] == ["1", "2", "3"]
    assert hbs[0]["events"][0]["current_time"].startswith("1970-01-01 00:00:01.000000000 +0000 UTC m=+")
    assert [m["sequence_num"] for m in out] == [0, 1, 2, 3]


def test_same_input_same_output() -> None:
    def frames() -> list[str]:
        core = CoinbaseSim(from_binance(read_capture(binance_capture_dir(), max_lines=3000)),
                           CoinbaseSettings(speed=0, rebase_time=False))
        cid = core.open(0)
        core.receive(cid, SUB_L2, 0)
        core.receive(cid, SUB_TRADES, 0)
        core.start_replay(0)
        out: list[str] = []
        while core.advance(0) or core.backlog():
            out += core.data_to_send(cid, 0)
        return out
    a, b = frames(), frames()
    assert len(a) > 500 and a == b


def _expected_from_reader(max_lines: int | None) -> tuple[list[str], int]:
    """(trade ids in order, number of l2 updates) straight from the reader, independently of the sim."""
    trades: list[str] = []
    updates = 0
    for ev in replay(read_capture(binance_capture_dir(), max_lines=max_lines)):
        if isinstance(ev, Trade):
            trades.append(str(ev.trade_id))
        elif isinstance(ev, DepthDiff) and (ev.bids or ev.asks):
            updates += 1
    return trades, updates


async def _collect(port: int, server: CoinbaseSimServer, idle_s: float = 0.5) -> list[dict[str, Any]]:
    async with connect(f"ws://127.0.0.1:{port}", max_size=None, open_timeout=5) as ws:
        await ws.send(SUB_L2)
        await ws.send(SUB_TRADES)
        got = [orjson.loads(await ws.recv()) for _ in range(3)]
        server.begin_replay()
        while True:
            try:
                got.append(orjson.loads(await asyncio.wait_for(ws.recv(), idle_s)))
            except TimeoutError:
                if server.core.finished and server.core.backlog() == 0:
                    return got


def test_whole_capture_at_max_speed_over_websocket() -> None:
    """Every recorded trade and book update reaches a plain websockets client, in order, with
    sequence_num increasing by one over all messages, content equal to the reader's."""
    trade_ids, n_updates = _expected_from_reader(None)
    last_diff = None
    for ev in replay(read_capture(binance_capture_dir())):
        if isinstance(ev, DepthDiff):
            last_diff = ev
    assert last_diff is not None

    async def scenario() -> list[dict[str, Any]]:
        server = CoinbaseSimServer.from_capture(settings=CoinbaseSettings(speed=0), autostart=False)
        port = await server.start("127.0.0.1", 0)
        try:
            return await _collect(port, server)
        finally:
            await server.stop()

    got = run(scenario())
    assert [m["sequence_num"] for m in got] == list(range(len(got)))
    data = got[3:]
    l2 = [m for m in data if m["channel"] == "l2_data"]
    tr = [m for m in data if m["channel"] == "market_trades"]
    assert len(data) == len(l2) + len(tr) == 1 + n_updates + len(trade_ids)
    assert l2[0]["events"][0]["type"] == "snapshot"
    assert all(m["events"][0]["type"] == "update" for m in l2[1:])
    assert len(l2) - 1 == n_updates
    assert [m["events"][0]["trades"][0]["trade_id"] for m in tr] == trade_ids
    last = l2[-1]["events"][0]["updates"]
    want = [("bid", format_e8(p), format_e8(q)) for p, q in last_diff.bids]
    want += [("offer", format_e8(p), format_e8(q)) for p, q in last_diff.asks]
    assert [(u["side"], u["price_level"], u["new_quantity"]) for u in last] == want


def test_recorded_frames_replay_as_recorded(tmp_path: Path) -> None:
    """Frames recorded from one run (as a feed recorder would write them) replay through the frames
    source with the same channels and events, re-sequenced per connection."""
    async def record() -> list[dict[str, Any]]:
        server = CoinbaseSimServer.from_capture(settings=CoinbaseSettings(speed=0, rebase_time=False),
                                                max_lines=3000, autostart=False)
        port = await server.start()
        try:
            return await _collect(port, server, 0.3)
        finally:
            await server.stop()
    first = run(record())
    path = tmp_path / "frames.jsonl"
    write_frames(path, [RawFrame(10**18 + i * MS, orjson.dumps(m).decode()) for i, m in enumerate(first)])

    async def again() -> list[dict[str, Any]]:
        server = CoinbaseSimServer.from_frames(path, CoinbaseSettings(speed=0, rebase_time=False),
                                               autostart=False)
        port = await server.start()
        try:
            return await _collect(port, server, 0.3)
        finally:
            await server.stop()
    second = run(again())
    assert [m["sequence_num"] for m in second] == list(range(len(second)))
    strip = [(m["channel"], m["events"]) for m in first[3:]]
    assert [(m["channel"], m["events"]) for m in second[3:]] == strip
    assert [m["timestamp"] for m in second[4:]] == [m["timestamp"] for m in first[4:]]


def test_snapshot_event_is_the_binance_book() -> None:
    snap = next(e for e in read_capture(binance_capture_dir(), max_lines=50) if isinstance(e, BookSnapshot))
    book = next(e for e in from_binance(read_capture(binance_capture_dir(), max_lines=50))
                if isinstance(e, CbBook))
    assert book.bids == snap.bids and book.asks == snap.asks


def test_speed_factor_paces_the_replay_on_the_wire() -> None:
    """At speed 5, trades recorded 500 ms apart arrive about 100 ms apart (lower bound checked only:
    a loaded machine may be slower, never faster)."""
    source = [CbTrades(t * MS, t * MS, (CbTrade(str(t), 10**12, 10**6, "BUY", t * MS),)) for t in (0, 500, 1000)]

    async def scenario() -> list[float]:
        server = CoinbaseSimServer(source, CoinbaseSettings(speed=5.0), autostart=False)
        port = await server.start()
        try:
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await ws.send(SUB_TRADES)
                for _ in range(2):
                    await ws.recv()
                loop = asyncio.get_running_loop()
                server.begin_replay()
                stamps = []
                for _ in range(3):
                    await ws.recv()
                    stamps.append(loop.time())
                return stamps
        finally:
            await server.stop()
    stamps = run(scenario())
    assert stamps[1] - stamps[0] >= 0.09 and stamps[2] - stamps[0] >= 0.19


def test_stop_cuts_a_client_that_never_answers_the_close_frame() -> None:
    """A stop closes every connection; a client that never answers the close frame (an engine starved of
    CPU, or gone silent) is cut after the sim's close timeout, not websockets' 10 s default."""
    async def scenario() -> float:
        server = CoinbaseSimServer(small_source(), CoinbaseSettings(speed=1.0))
        port = await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            t0 = time.monotonic()
            await server.stop()                      # the client reads nothing and answers nothing
            return time.monotonic() - t0
        finally:
            writer.close()

    took = run(scenario())
    assert ws_server.CLOSE_TIMEOUT_S <= took < 10.0, took
