"""The WebSocket feed's reads through recvmsg: same messages, each with its kernel receive stamp."""

from __future__ import annotations

import asyncio
import time

import uvloop
import websockets
from websockets.asyncio.server import ServerConnection, serve

from fastmm.venues.ws_rx_stamps import RxStampLog, StampedClientConnection


def test_every_message_arrives_with_a_kernel_stamp_taken_before_it_was_read() -> None:
    n = 50

    async def handler(conn: ServerConnection) -> None:
        await conn.recv()
        for i in range(n):
            await conn.send(f"m{i}" + "x" * (i * 1000))      # up to ~50 kB: messages over several packets
            if i % 10 == 0:
                await asyncio.sleep(0.002)
        await conn.close()

    async def main() -> tuple[list[str], list[tuple[int, int]], list[int]]:
        log = RxStampLog()
        got: list[str] = []
        stamps: list[tuple[int, int]] = []
        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with websockets.connect(f"ws://127.0.0.1:{port}", create_connection=log.connection,
                                          max_size=None) as ws:
                assert isinstance(ws, StampedClientConnection)
                await ws.send("hi")
                try:
                    while True:
                        msg = await ws.recv()
                        t = time.monotonic_ns()
                        log.frame(ws, t)
                        got.append(str(msg)[:4])
                        stamps.append((ws.message_rx_ns, t))
                except websockets.ConnectionClosedOK:
                    pass
        pairs = log.pairs.tolist()
        return got, stamps, [pairs[i + 1] - pairs[i] for i in range(0, len(pairs), 2) if pairs[i + 1]]

    got, stamps, kernel_to_recv = uvloop.run(main())
    assert [g.rstrip("x") for g in got] == [f"m{i}" for i in range(n)]
    # the kernel turns stamping on through a deferred static key: the first packets may come without one
    assert all(rx > 0 for rx, _ in stamps[2:]) and len(kernel_to_recv) >= n - 2
    assert all(d < 0 for d in kernel_to_recv)            # t_kernel_rx - t_recv: the kernel first
    assert all(-d < 1_000_000_000 for d in kernel_to_recv)


def test_the_sansio_client_stamps_every_message_with_the_read_that_completed_it() -> None:
    """WsFeedClient with the harness's stamper: recvmsg takes over its transport's reading, and each message
    handed to the codec carries the kernel stamp of that read (before the client's own receive time)."""
    from fastmm.backoff import Backoff
    from fastmm.logs import OnceLogger
    from fastmm.venues.ws_feed import WsFeedClient

    n = 50
    got: list[bytes] = []

    class Codec:
        venue, synced, last_recv_ns, messages, gaps = "test", True, 0, 0, 0
        bad = OnceLogger(__import__("logging").getLogger("test"))

        def connection_reset(self) -> None: ...
        def subscriptions(self) -> list[bytes]: return [b"hi"]
        def resubscription(self) -> list[bytes]: return []
        def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: return [], []

        def on_frame(self, frame: bytes | bytearray | str, t_recv_ns: int) -> list:
            got.append(bytes(frame[:3]) if not isinstance(frame, str) else frame[:3].encode())
            return []

    async def handler(conn: ServerConnection) -> None:
        await conn.recv()
        for i in range(n):
            await conn.send(f"m{i:02d}" + "x" * (i * 1000))
            if i % 10 == 0:
                await asyncio.sleep(0.002)
        await conn.wait_closed()

    async def main() -> list[int]:
        log = RxStampLog()
        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            client = WsFeedClient(f"ws://127.0.0.1:{port}", Codec(), lambda evs: None, lambda why: None,
                                  stamper=log, backoff=Backoff(0.05, 0.5, seed=1))
            stop = asyncio.Event()
            task = asyncio.create_task(client.run(stop))
            deadline = time.monotonic() + 10
            while len(got) < n and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert client.conn is not None and client.conn.rx is not None and client.conn.rx.reads > 0
            stop.set()
            await asyncio.wait_for(task, 5)
        return log.pairs.tolist()

    pairs = uvloop.run(main())
    assert got == [f"m{i:02d}".encode() for i in range(n)]
    stamped = [(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2) if pairs[i + 1]]
    # the kernel turns stamping on through a deferred static key: the first packets may come without one
    assert len(pairs) == 2 * n and len(stamped) >= n - 2
    assert all(0 < t_recv - rx < 1_000_000_000 for t_recv, rx in stamped)
