"""Kraken WebSocket v2 book/ticker simulator: protocol answers, bad input, and a plain websockets client
that rebuilds the book from the stream and checks Kraken's CRC32 checksum on every message."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from fastmm.data import binance_capture_dir
from fastmm.data.binance import read_capture, replay
from fastmm.data.events import BookSnapshot, Trade
from fastmm.sim.kraken_ws import KrakenWsSettings, KrakenWsSim, checksum
from fastmm.sim.kraken_ws_server import KrakenWsSimServer

P = 10**8
SUB_BOOK = '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10},"req_id":1}'
SUB_TICKER = '{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD"]},"req_id":2}'


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def client_checksum(bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]) -> int:
    """Kraken's documented algorithm, written independently of the simulator."""
    text = ""
    for price, qty in sorted(asks.items())[:10] + sorted(bids.items(), reverse=True)[:10]:
        text += format(price, "f").replace(".", "").lstrip("0") + format(qty, "f").replace(".", "").lstrip("0")
    return zlib.crc32(text.encode())


def test_checksum_matches_documented_algorithm() -> None:
    bids = [(45283 * P + 5 * 10**7, 10**7), (45283 * P, 2 * P)]
    asks = [(45285 * P + 2 * 10**7, 1234)]
    ours = client_checksum({Decimal("45283.5"): Decimal("0.10000000"), Decimal("45283.0"): Decimal("2.00000000")},
                           {Decimal("45285.2"): Decimal("0.00001234")})
    assert checksum(bids, asks) == ours == zlib.crc32(b"452852" b"1234" b"452835" b"10000000" b"452830"
                                                      b"200000000")


def _core() -> tuple[KrakenWsSim, int]:
    snap = BookSnapshot(0, 5, ((100 * P + 5 * 10**6, P), (100 * P + 2 * 10**6, P)), ((101 * P, P),))
    core = KrakenWsSim([snap, Trade(10, 0, 0, 1, 101 * P, P, False)], KrakenWsSettings(speed=0))
    return core, core.open(0)


def _out(core: KrakenWsSim, cid: int) -> list[dict[str, Any]]:
    return [json.loads(f, parse_float=Decimal) for f in core.data_to_send(cid, 0)]


def test_core_subscribe_snapshot_and_aggregation() -> None:
    core, cid = _core()
    core.receive(cid, SUB_BOOK, 0)
    core.receive(cid, SUB_TICKER, 0)
    core.start_replay(0)
    core.advance(0)
    status, ack_book, ack_ticker, snap, tick_snap, tick = _out(core, cid)
    assert status["channel"] == "status" and status["data"][0]["system"] == "online"
    assert ack_book["success"] is True and ack_book["req_id"] == 1 and ack_book["result"]["depth"] == 10
    assert ack_ticker["result"]["event_trigger"] == "trades"
    d = snap["data"][0]
    # 100.05 and 100.02 both floor into the 100.0 tick: one level of 2 BTC
    assert d["bids"] == [{"price": Decimal("100.0"), "qty": Decimal("2.00000000")}]
    assert d["asks"] == [{"price": Decimal("101.0"), "qty": Decimal("1.00000000")}]
    assert d["checksum"] == client_checksum({Decimal("100.0"): Decimal("2.00000000")},
                                           {Decimal("101.0"): Decimal("1.00000000")})
    assert tick_snap["type"] == "snapshot" and tick["type"] == "update"
    assert tick["data"][0]["last"] == Decimal("101.0") and tick["data"][0]["bid"] == Decimal("100.0")


def test_core_ping_heartbeat_and_unsubscribe() -> None:
    core, cid = _core()
    _out(core, cid)
    core.receive(cid, '{"method":"ping","req_id":9}', 5)
    (pong,) = _out(core, cid)
    assert pong["method"] == "pong" and pong["req_id"] == 9 and "time_in" in pong
    core.receive(cid, SUB_TICKER, 0)
    core.advance(10**9)
    assert [m.get("channel") for m in _out(core, cid)][-1] == "heartbeat"
    core.receive(cid, SUB_TICKER.replace("subscribe", "unsubscribe"), 10**9)
    (ack,) = _out(core, cid)
    assert ack["method"] == "unsubscribe" and ack["success"] is True
    core.advance(5 * 10**9)
    assert _out(core, cid) == []


@pytest.mark.parametrize(("text", "error"), [
    ("{oops", "EGeneral:Invalid arguments:malformed JSON"),
    ("42", "EGeneral:Invalid arguments:not an object"),
    ('{"method":"trade","req_id":3}', "Method not found"),
    ('{"method":"subscribe","params":{"channel":"ohlc","symbol":["BTC/USD"]},"req_id":3}', "Channel ohlc not found"),
    ('{"method":"subscribe","params":{"channel":"book","symbol":["DOGE/USD"]},"req_id":3}',
     "Currency pair not supported DOGE/USD"),
    ('{"method":"subscribe","params":{"channel":"book","symbol":"BTC/USD"},"req_id":3}',
     "EGeneral:Invalid arguments:symbol"),
    ('{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":7},"req_id":3}',
     "EGeneral:Invalid arguments:depth"),
    ('{"method":"subscribe","params":"book","req_id":3}', "EGeneral:Invalid arguments:params"),
    ('{"method":"subscribe","req_id":"x"}', "EGeneral:Invalid arguments:req_id"),
    ('{"method":"ping","pad":"' + "x" * 20000 + '"}', "EGeneral:Invalid arguments:message too large"),
])
def test_core_bad_input(text: str, error: str) -> None:
    core, cid = _core()
    _out(core, cid)
    core.receive(cid, text, 0)
    (ans,) = _out(core, cid)
    assert ans["success"] is False and ans["error"] == error
    core.receive(cid, '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"extra":1},'
                      '"req_id":4,"unknown":true}', 0)  # unknown fields are ignored
    assert _out(core, cid)[0]["success"] is True


def test_book_and_ticker_stream_over_websocket_checksums_hold() -> None:
    """A plain websockets client keeps the book from snapshot + updates (truncating to depth as Kraken
    says) and every checksum matches; one ticker update per recorded trade after the book exists."""
    lines = 15000
    trades_after_snapshot = 0
    synced = False
    for ev in replay(read_capture(binance_capture_dir(), max_lines=lines)):
        synced = synced or isinstance(ev, BookSnapshot)
        trades_after_snapshot += synced and isinstance(ev, Trade)

    async def scenario() -> tuple[int, int, int, int]:
        server = KrakenWsSimServer.from_capture(settings=KrakenWsSettings(speed=0), max_lines=lines,
                                                autostart=False)
        port = await server.start("127.0.0.1", 0)
        try:
            async with connect(f"ws://127.0.0.1:{port}/v2", max_size=None) as ws:
                assert orjson.loads(await ws.recv())["channel"] == "status"
                await ws.send(SUB_BOOK)
                await ws.send(SUB_TICKER)
                assert orjson.loads(await ws.recv())["success"] and orjson.loads(await ws.recv())["success"]
                server.begin_replay()
                bids: dict[Decimal, Decimal] = {}
                asks: dict[Decimal, Decimal] = {}
                books = good = tickers = 0
                while True:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        if server.core.finished and server.core.backlog() == 0:
                            return books, good, tickers, len(bids)
                        continue
                    m = json.loads(raw, parse_float=Decimal)
                    if m.get("channel") == "ticker" and m["type"] == "update":
                        tickers += 1
                    if m.get("channel") != "book":
                        continue
                    d = m["data"][0]
                    if m["type"] == "snapshot":
                        bids, asks = {}, {}
                    for side, levels in ((bids, d["bids"]), (asks, d["asks"])):
                        for lv in levels:
                            if lv["qty"] == 0:
                                side.pop(lv["price"], None)
                            else:
                                side[lv["price"]] = lv["qty"]
                    bids = dict(sorted(bids.items(), reverse=True)[:10])
                    asks = dict(sorted(asks.items())[:10])
                    books += 1
                    good += client_checksum(bids, asks) == d["checksum"]
        finally:
            await server.stop()

    books, good, tickers, depth = run(scenario())
    assert books > 500 and good == books and depth == 10
    assert tickers == trades_after_snapshot
