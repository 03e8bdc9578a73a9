"""Coinbase simulator fault injection (drop, stall, disconnect, heartbeats stop) and bad input, both in
the sans-I/O core with explicit time and over a real websocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fastmm.sim.coinbase import CbTrade, CbTrades, CoinbaseFaults, CoinbaseSettings, CoinbaseSim
from fastmm.sim.coinbase_server import CoinbaseSimServer

SUB_TRADES = '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"market_trades"}'
SUB_HB = '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"heartbeats"}'
MS = 1_000_000


def run(coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def trades(n: int, step_ms: int = 1) -> list[CbTrades]:
    return [CbTrades(i * step_ms * MS, i * step_ms * MS,
                     (CbTrade(str(i), 10**12, 10**6, "BUY", i * step_ms * MS),)) for i in range(n)]


def core_with(faults: CoinbaseFaults, n: int = 20) -> tuple[CoinbaseSim, int]:
    core = CoinbaseSim(trades(n), CoinbaseSettings(speed=0, faults=faults, rebase_time=False))
    cid = core.open(0)
    core.receive(cid, SUB_TRADES, 0)
    core.start_replay(0)
    core.advance(0)
    return core, cid


def seqs(frames: list[str]) -> list[int]:
    return [orjson.loads(f)["sequence_num"] for f in frames]


def test_core_drop_makes_a_sequence_gap() -> None:
    core, cid = core_with(CoinbaseFaults(drop_seq=5))
    assert seqs(core.data_to_send(cid, 0)) == [0, 1, 2, 3, 4, *range(6, 22)]


def test_core_stall_holds_output_for_the_time() -> None:
    core, cid = core_with(CoinbaseFaults(stall_seq=4, stall_ms=250))
    assert seqs(core.data_to_send(cid, 10)) == [0, 1, 2, 3]
    assert core.data_to_send(cid, 10 + 249 * MS) == []
    assert core.next_wakeup_ns() == 10 + 250 * MS
    assert seqs(core.data_to_send(cid, 10 + 250 * MS)) == list(range(4, 22))


def test_core_disconnect_and_faults_hit_only_the_first_connections() -> None:
    core, cid = core_with(CoinbaseFaults(disconnect_seq=3, connections=1))
    assert seqs(core.data_to_send(cid, 0)) == [0, 1, 2]
    assert core.should_close(cid) == "fault: disconnect at sequence_num 3"
    assert core.data_to_send(cid, 0) == []
    core.close(cid)
    second = core.open(0)
    core.receive(second, SUB_TRADES, 0)
    assert core.should_close(second) is None and len(core.data_to_send(second, 0)) == 2


def test_core_heartbeats_stop() -> None:
    faults = CoinbaseFaults(heartbeats_stop_after=2)
    core = CoinbaseSim([], CoinbaseSettings(heartbeat_interval_ms=100, faults=faults))
    cid = core.open(0)
    core.receive(cid, SUB_HB, 0)
    for t in range(0, 10**9, 10 * MS):
        core.advance(t)
    hb = [orjson.loads(f) for f in core.data_to_send(cid, 0)]
    assert [m["channel"] for m in hb] == ["subscriptions", "heartbeats", "heartbeats"]
    assert core.next_wakeup_ns() is None


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "malformed JSON"),
    ("[1,2]", "message is not a JSON object"),
    ('{"type":"hello"}', "unknown message type 'hello'"),
    ('{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level3"}', "Failed to subscribe: unknown"),
    ('{"type":"subscribe","product_ids":["BTC-USD"]}', "Failed to subscribe: channel is required"),
    ('{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2"]}', "channel is required"),
    ('{"type":"subscribe","product_ids":"BTC-USD","channel":"level2"}', "product_ids must be a list"),
    ('{"type":"subscribe","product_ids":["ETH-EUR"],"channel":"level2"}', "ETH-EUR is not a valid product"),
    ('{"type":"subscribe","channel":"market_trades"}', "product_ids is required"),
    ("x" * 70_000, "message too large"),
    (b"\xff\xfe", "malformed JSON"),
])
def test_core_bad_input_gets_an_error_and_no_state_change(text: str | bytes, message: str) -> None:
    core = CoinbaseSim([], CoinbaseSettings())
    cid = core.open(0)
    core.receive(cid, text, 0)
    (err,) = [orjson.loads(f) for f in core.data_to_send(cid, 0)]
    assert err["type"] == "error" and message in err["message"]
    core.receive(cid, SUB_TRADES, 0)  # the connection still works, sequence untouched by the error
    assert [orjson.loads(f)["sequence_num"] for f in core.data_to_send(cid, 0)] == [0, 1]
    assert core.bad.total == 1


def test_core_unknown_fields_are_ignored() -> None:
    core = CoinbaseSim([], CoinbaseSettings())
    cid = core.open(0)
    core.receive(cid, '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"heartbeats","jwt":"x",'
                      '"extra":{"a":[1]}}', 0)
    (ack,) = [orjson.loads(f) for f in core.data_to_send(cid, 0)]
    assert ack["events"] == [{"subscriptions": {"heartbeats": ["BTC-USD"]}}]


# ------------------------------------------------------------------------------------------------
# over the wire
# ------------------------------------------------------------------------------------------------
async def _subscribed(ws: Any, server: CoinbaseSimServer) -> list[int]:
    """Subscribe to trades, read the answer and the (empty) trades snapshot, then start the replay:
    nothing is replayed before the subscription is in place."""
    await ws.send(SUB_TRADES)
    first = [orjson.loads(await ws.recv())["sequence_num"] for _ in range(2)]
    server.begin_replay()
    return first


async def _serve(faults: CoinbaseFaults, n: int = 200, **kw: Any) -> tuple[CoinbaseSimServer, int]:
    server = CoinbaseSimServer(trades(n), CoinbaseSettings(speed=0, faults=faults, **kw), autostart=False)
    return server, await server.start("127.0.0.1", 0)


def test_wire_drop_is_seen_as_a_gap() -> None:
    async def scenario() -> list[int]:
        server, port = await _serve(CoinbaseFaults(drop_seq=50))
        try:
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                first = await _subscribed(ws, server)
                return first + [orjson.loads(await ws.recv())["sequence_num"] for _ in range(199)]
        finally:
            await server.stop()
    got = run(scenario())
    assert got == [*range(50), *range(51, 202)]


def test_wire_stall_pauses_the_stream() -> None:
    async def scenario() -> float:
        server, port = await _serve(CoinbaseFaults(stall_seq=10, stall_ms=300))
        try:
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await _subscribed(ws, server)
                stamps = [(0, 0.0), (1, 0.0)]
                for _ in range(200):  # read everything: a client that stops reading delays its close
                    m = orjson.loads(await ws.recv())
                    stamps.append((m["sequence_num"], time.monotonic()))
                assert [s for s, _ in stamps] == list(range(202))
                return stamps[10][1] - stamps[9][1]
        finally:
            await server.stop()
    assert run(scenario()) >= 0.29


def test_wire_disconnect_drops_tcp_without_close_frame_and_reconnect_works() -> None:
    async def scenario() -> tuple[int | None, list[int]]:
        server, port = await _serve(CoinbaseFaults(disconnect_seq=30))
        try:
            got: list[int] = []
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                got += await _subscribed(ws, server)
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        got.append(orjson.loads(await ws.recv())["sequence_num"])
                assert got == list(range(30))
                code = closed.value.rcvd.code if closed.value.rcvd else None
            async with connect(f"ws://127.0.0.1:{port}") as ws2:  # the second connection is healthy
                await ws2.send(SUB_TRADES)
                again = [orjson.loads(await ws2.recv())["sequence_num"] for _ in range(2)]
            return code, again
        finally:
            await server.stop()
    code, again = run(scenario())
    assert code is None  # no close frame: an abrupt loss
    assert again == [0, 1]


def test_wire_heartbeats_stop() -> None:
    async def scenario() -> list[str]:
        server, port = await _serve(CoinbaseFaults(heartbeats_stop_after=3), n=0, heartbeat_interval_ms=50)
        try:
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                await ws.send(SUB_HB)
                got = []
                with pytest.raises(TimeoutError):
                    while True:
                        got.append(orjson.loads(await asyncio.wait_for(ws.recv(), 0.4))["channel"])
                return got
        finally:
            await server.stop()
    assert run(scenario()) == ["subscriptions", "heartbeats", "heartbeats", "heartbeats"]


def test_wire_bad_input_never_breaks_the_connection() -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        server, port = await _serve(CoinbaseFaults(), n=0, max_message_bytes=1000)
        try:
            async with connect(f"ws://127.0.0.1:{port}", max_size=None) as ws:
                answers = []
                for bad in ("nope", '{"type":"subscribe","channel":"level9","product_ids":["BTC-USD"]}',
                            "y" * 5000, b"\x00\x01binary"):
                    await ws.send(bad)
                    answers.append(orjson.loads(await ws.recv()))
                await ws.send(SUB_TRADES)
                answers.append(orjson.loads(await ws.recv()))
                await ws.send("z" * (2 << 20))  # over the hard limit: websockets closes with 1009
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                    await asyncio.wait_for(ws.recv(), 5)
                code = closed.value.rcvd.code if closed.value.rcvd else None
            return answers, code
        finally:
            await server.stop()
    answers, code = run(scenario())
    assert [a.get("type") for a in answers[:4]] == ["error"] * 4
    assert "message too large" in answers[2]["message"]
    assert answers[4]["channel"] == "subscriptions" and answers[4]["sequence_num"] == 0
    assert code == 1009
