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
        return got, stamps, [pairs[i + 1] - pairs[i] for i in range(0, len(pairs), 2)]

    got, stamps, kernel_to_recv = uvloop.run(main())
    assert [g.rstrip("x") for g in got] == [f"m{i}" for i in range(n)]
    assert all(rx > 0 for rx, _ in stamps)
    assert all(d < 0 for d in kernel_to_recv)            # t_kernel_rx - t_recv: the kernel first
    assert all(-d < 1_000_000_000 for d in kernel_to_recv)
