"""The feeds' WebSocket client (:class:`fastmm.venues.ws_feed.WsFeedClient`) through its real interface,
over loopback: against a server that writes raw frame bytes in chosen pieces (frames split over reads,
several frames in one read, an oversized frame, pings, a close, silence), against the Coinbase simulator
(both clients), and over TLS."""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from fastmm.backoff import Backoff
from fastmm.logs import OnceLogger
from fastmm.sim.coinbase import CoinbaseFaults, CoinbaseSettings
from fastmm.sim.coinbase_server import CoinbaseSimServer
from fastmm.venues.coinbase.codec import CoinbaseFeed
from fastmm.venues.frames import MAX_FRAME_BYTES
from fastmm.venues.ws_feed import WsFeedClient, make_feed_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tls_certs import make_certs


class Recorder:
    """A codec that keeps every frame it is given (a BookCodec to the client)."""

    venue = "test"

    def __init__(self) -> None:
        self.synced = True
        self.last_recv_ns = 0
        self.messages = 0
        self.gaps = 0
        self.bad = OnceLogger(logging.getLogger("test.recorder"))
        self.frames: list[bytes] = []
        self.resets = 0

    def connection_reset(self) -> None:
        self.resets += 1

    def subscriptions(self) -> list[bytes]:
        return [b'{"type":"subscribe"}']

    def resubscription(self) -> list[bytes]:
        return self.subscriptions()

    def on_frame(self, frame: bytes | bytearray | str, t_recv_ns: int) -> list:
        self.frames.append(bytes(frame) if not isinstance(frame, str) else frame.encode())
        self.last_recv_ns = t_recv_ns
        self.messages += 1
        return [frame]          # an event per frame: the client sees the source fresh

    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return [], []


class RawConn:
    """The server's side of one connection: websockets' ServerProtocol for the handshake and for parsing
    what the client sends; frames to the client written as raw bytes, in whatever pieces a test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proto: ServerProtocol) -> None:
        self.reader, self.writer, self.proto = reader, writer, proto
        self.received: list[Frame] = []
        self.got = asyncio.Event()
        self.closed = asyncio.Event()

    async def pump(self) -> None:
        """Everything the client sends, parsed (subscriptions, pongs, close frames)."""
        try:
            while data := await self.reader.read(65536):
                self.proto.receive_data(data)
                for ev in self.proto.events_received():
                    if isinstance(ev, Frame):
                        self.received.append(ev)
                        self.got.set()
                for out in self.proto.data_to_send():
                    if out:
                        self.writer.write(out)
        except ConnectionError:
            pass
        finally:
            self.closed.set()

    async def write(self, data: bytes, pieces: int = 1, pause_s: float = 0.005) -> None:
        """``data`` in ``pieces`` writes, each flushed and followed by a pause: separate TCP segments,
        separate reads on the client."""
        step = max(1, -(-len(data) // pieces))
        for i in range(0, len(data), step):
            self.writer.write(data[i:i + step])
            await self.writer.drain()
            if pieces > 1:
                await asyncio.sleep(pause_s)

    async def wait_for(self, pred: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        async with asyncio.timeout(timeout):
            while True:
                for f in self.received:
                    if pred(f):
                        return f
                self.got.clear()
                await self.got.wait()

    def abort(self) -> None:
        self.writer.transport.abort()


class RawServer:
    def __init__(self) -> None:
        self.conns: list[RawConn] = []
        self.new_conn = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proto = ServerProtocol(max_size=None)
        while True:
            data = await reader.read(65536)
            if not data:
                return
            proto.receive_data(data)
            reqs = [e for e in proto.events_received() if isinstance(e, Request)]
            if reqs:
                proto.send_response(proto.accept(reqs[0]))
                writer.write(b"".join(proto.data_to_send()))
                break
        conn = RawConn(reader, writer, proto)
        self.conns.append(conn)
        self.new_conn.set()
        await conn.pump()

    async def connection(self, n: int, timeout: float = 5.0) -> RawConn:
        """The ``n``-th connection (1-based), once its client's subscription has arrived."""
        async with asyncio.timeout(timeout):
            while len(self.conns) < n:
                self.new_conn.clear()
                await self.new_conn.wait()
        conn = self.conns[n - 1]
        await conn.wait_for(lambda f: f.opcode is Opcode.TEXT, timeout)
        return conn

    async def stop(self) -> None:
        for c in self.conns:
            c.abort()
        self.server.close()
        await self.server.wait_closed()


def frame(payload: bytes, opcode: Opcode = Opcode.TEXT, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin).serialize(mask=False)


def run_with_client(body: Callable[[RawServer, WsFeedClient, Recorder, list[str]], Awaitable[None]],
                    stale_after_s: float = 2.0) -> tuple[WsFeedClient, Recorder, list[str]]:
    async def main() -> tuple[WsFeedClient, Recorder, list[str]]:
        server = RawServer()
        port = await server.start()
        rec = Recorder()
        stale: list[str] = []
        client = WsFeedClient(f"ws://127.0.0.1:{port}", rec, lambda evs: None, stale.append,
                              stale_after_s=stale_after_s, backoff=Backoff(0.05, 0.5, seed=1))
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        try:
            await body(server, client, rec, stale)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await server.stop()
        return client, rec, stale

    return asyncio.run(main())


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


def test_frames_arrive_complete_and_in_order_however_the_bytes_are_cut() -> None:
    payloads = [orjson.dumps({"i": i, "pad": "x" * (i * 37 % 5000)}) for i in range(40)]
    big = orjson.dumps({"big": "y" * 200_000})

    async def body(server: RawServer, client: WsFeedClient, rec: Recorder, _stale: list[str]) -> None:
        conn = await server.connection(1)
        assert client.conn is not None
        # 1. every byte its own piece for the first frames: headers and payloads split anywhere
        await conn.write(b"".join(frame(p) for p in payloads[:3]), pieces=len(b"".join(frame(p) for p in
                                                                                         payloads[:3])) // 9)
        await until(lambda: len(rec.frames) == 3)
        # 2. one frame of 200 kB over several reads
        reads = client.conn.reads
        await conn.write(frame(big), pieces=5, pause_s=0.01)
        await until(lambda: len(rec.frames) == 4)
        assert client.conn.reads - reads >= 3
        # 3. many frames in one write: one read hands several frames to the codec
        reads, frames = client.conn.reads, client.conn.frames
        await conn.write(b"".join(frame(p) for p in payloads[3:]))
        await until(lambda: len(rec.frames) == 4 + len(payloads) - 3)
        assert client.conn.reads - reads < client.conn.frames - frames
        # 4. a fragmented message (text + continuation) is handed over whole
        await conn.write(frame(b'{"frag":', fin=False) + frame(b'"ment"}', Opcode.CONT), pieces=3)
        await until(lambda: len(rec.frames) == 5 + len(payloads) - 3)

    client, rec, _stale = run_with_client(body)
    assert rec.frames == [*payloads[:3], big, *payloads[3:], b'{"frag":"ment"}']
    assert client.connects == 1 and rec.resets == 1


def test_ping_is_answered_with_its_payload() -> None:
    async def body(server: RawServer, _client: WsFeedClient, rec: Recorder, _stale: list[str]) -> None:
        conn = await server.connection(1)
        await conn.write(frame(b"abc", Opcode.PING) + frame(b'{"after":"ping"}'))
        pong = await conn.wait_for(lambda f: f.opcode is Opcode.PONG)
        assert pong.data == b"abc"
        await until(lambda: rec.frames == [b'{"after":"ping"}'])

    run_with_client(body)


def test_oversized_frame_is_refused_with_1009_then_the_client_reconnects(caplog: pytest.LogCaptureFixture
                                                                         ) -> None:
    async def body(server: RawServer, client: WsFeedClient, rec: Recorder, _stale: list[str]) -> None:
        conn = await server.connection(1)
        await conn.write(frame(b'{"ok":1}'))
        # a header announcing one byte over the limit: refused before any of its payload is read
        await conn.write(bytes([0x81, 127]) + (MAX_FRAME_BYTES + 1).to_bytes(8, "big") + b"z" * 1000)
        close = await conn.wait_for(lambda f: f.opcode is Opcode.CLOSE)
        assert Close.parse(close.data).code == 1009
        conn.abort()
        await server.connection(2)
        assert client.connects == 2

    with caplog.at_level(logging.INFO, "fastmm.feed"):
        _client, rec, stale = run_with_client(body)
    assert rec.frames == [b'{"ok":1}']
    assert "disconnected" in stale
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("bad input" in m and str(MAX_FRAME_BYTES) in m and "reconnect" in m for m in errors), errors


def test_server_close_is_echoed_then_the_client_reconnects_after_a_backoff() -> None:
    async def body(server: RawServer, client: WsFeedClient, _rec: Recorder, _stale: list[str]) -> None:
        loop = asyncio.get_running_loop()
        conn = await server.connection(1)
        await conn.write(frame(Close(1001, "going away").serialize(), Opcode.CLOSE))
        echo = await conn.wait_for(lambda f: f.opcode is Opcode.CLOSE)
        assert Close.parse(echo.data).code == 1001
        conn.abort()                # the server ends TCP, as RFC 6455 has it
        t0 = loop.time()
        await server.connection(2)
        assert loop.time() - t0 >= 0.05 * 0.8       # Backoff(0.05, ...) with 20 % jitter
        assert client.connects == 2

    run_with_client(body)


def test_a_dropped_connection_reconnects_with_growing_backoff() -> None:
    async def body(server: RawServer, client: WsFeedClient, rec: Recorder, _stale: list[str]) -> None:
        for n in (1, 2, 3):
            conn = await server.connection(n)
            conn.abort()        # no close frame, no data: the backoff is never reset
        await server.connection(4)
        assert client.connects == 4 and rec.resets == 4

    run_with_client(body)


def test_silence_marks_stale_then_the_watchdog_replaces_the_connection() -> None:
    async def body(server: RawServer, client: WsFeedClient, rec: Recorder, stale: list[str]) -> None:
        conn = await server.connection(1)
        await conn.write(frame(b'{"one":1}'))
        await until(lambda: client.stale is False)
        await until(lambda: any(s.startswith("silent for") for s in stale), timeout=2.0)
        close = await conn.wait_for(lambda f: f.opcode is Opcode.CLOSE, timeout=5.0)   # past 2 s
        assert Close.parse(close.data).code == 1000
        await server.connection(2)

    client, _rec, _stale = run_with_client(body, stale_after_s=0.2)
    assert client.connects == 2


def test_stop_closes_with_a_normal_close_frame() -> None:
    async def main() -> Frame:
        server = RawServer()
        port = await server.start()
        client = WsFeedClient(f"ws://127.0.0.1:{port}", Recorder(), lambda evs: None, lambda why: None)
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        conn = await server.connection(1)
        stop.set()
        close = await conn.wait_for(lambda f: f.opcode is Opcode.CLOSE)
        conn.abort()
        await asyncio.wait_for(task, 5)
        await server.stop()
        return close

    assert Close.parse(asyncio.run(main()).data).code == 1000


def test_wss_passes_a_verified_context_and_works_over_tls(tmp_path: Path) -> None:
    assert WsFeedClient("ws://127.0.0.1:1", Recorder(), print, print).ssl_context() is None
    default = WsFeedClient("wss://advanced-trade-ws.coinbase.com", Recorder(), print, print).ssl_context()
    assert isinstance(default, ssl.SSLContext) and default.verify_mode is ssl.CERT_REQUIRED
    assert default.check_hostname

    certs = make_certs(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs.server_cert, certs.server_key)
    client_ctx = ssl.create_default_context(cafile=str(certs.ca))

    async def handler(conn: ServerConnection) -> None:
        await conn.recv()
        for i in range(5):
            await conn.send(orjson.dumps({"i": i}).decode())
        await conn.wait_closed()

    async def main() -> Recorder:
        rec = Recorder()
        async with serve(handler, "127.0.0.1", 0, ssl=server_ctx) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            client = WsFeedClient(f"wss://localhost:{port}", rec, lambda evs: None, lambda why: None,
                                  ssl=client_ctx)
            stop = asyncio.Event()
            task = asyncio.create_task(client.run(stop))
            await until(lambda: len(rec.frames) == 5)
            assert client.conn is not None and client.conn.transport is not None
            assert client.conn.transport.get_extra_info("sslcontext") is client_ctx
            stop.set()
            await asyncio.wait_for(task, 5)
        return rec

    assert asyncio.run(main()).frames == [orjson.dumps({"i": i}) for i in range(5)]


@pytest.mark.parametrize("kind", ["sansio", "websockets"])
def test_both_clients_follow_the_coinbase_simulator_through_a_reconnect(kind: str) -> None:
    """The replay over loopback, the connection dropped mid-way by the simulator: every frame in order
    (no sequence gap but the one the drop makes), the book rebuilt, equal to the simulator's."""

    async def main() -> tuple[CoinbaseFeed, int]:
        faults = CoinbaseFaults(disconnect_seq=60)
        server = CoinbaseSimServer.from_capture(settings=CoinbaseSettings(speed=0, faults=faults),
                                                max_lines=8000, autostart=False)
        port = await server.start("127.0.0.1", 0)
        feed = CoinbaseFeed(depth=5)
        client = make_feed_client(kind, f"ws://127.0.0.1:{port}", feed, lambda evs: None, lambda why: None,
                                  backoff=Backoff(0.05, 0.5, seed=1))
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        try:
            await until(lambda: client.connected and server.core.connections >= 1)
            await asyncio.sleep(0.1)
            server.begin_replay()
            await until(lambda: server.core.finished and feed.synced and feed.top() == server.core.book.top(5),
                        timeout=30)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await server.stop()
        return feed, client.connects

    feed, connects = asyncio.run(main())
    assert connects == 2 and feed.gaps == 0 and not feed.bad.counts
