"""asyncio/websockets shell shared by the replaying WebSocket simulators (Coinbase, Kraken v2).

A core (:class:`WsCore`) owns all protocol and replay state and takes time as an argument; this shell
only moves text. One driver task advances the core on the wall clock; one writer task per connection
writes what the core queued, so a slow client back-pressures only itself (except at max speed, where the
core's flow control makes the replay wait for the slowest client). A core that asks to close a
connection (a disconnect fault, a slow consumer) gets the TCP connection aborted without a close frame,
as a network loss would.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

_BUDGET = 500
CLOSE_TIMEOUT_S = 2.0     # how long a stop waits for a client to answer its close frame


def _stamp(hook: Callable[[int, str, int], None], cid: int, frame: str) -> None:
    hook(cid, frame, time.monotonic_ns())


class WsCore(Protocol):
    def open(self, now_ns: int) -> int: ...
    def close(self, cid: int) -> None: ...
    def receive(self, cid: int, data: str | bytes, now_ns: int) -> None: ...
    def advance(self, now_ns: int, budget: int = ...) -> bool: ...
    def next_wakeup_ns(self) -> int | None: ...
    def data_to_send(self, cid: int, now_ns: int) -> list[str]: ...
    def should_close(self, cid: int) -> str | None: ...
    def start_replay(self, now_ns: int) -> None: ...


class StampingConnection(ServerConnection):
    """A server connection that calls ``before_write`` (once) just before it writes the next bytes to the
    socket: the latency harness's frame write time, taken after websockets has framed the message."""

    before_write: Callable[[], None] | None = None

    def send_data(self) -> None:
        hook = self.before_write
        if hook is not None:
            self.before_write = None
            hook()
        super().send_data()


class WsReplayServer:
    """``await start(host, port) -> port`` (0 = ephemeral), ``await stop()``, ``begin_replay()``."""

    name = "ws sim"

    def __init__(self, core: WsCore, *, max_message_bytes: int, autostart: bool = True,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.core = core
        self.autostart = autostart
        self._max_message_bytes = max_message_bytes
        self._clock = clock
        self._server: Server | None = None
        self._driver: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._wakes: dict[int, asyncio.Event] = {}
        # Latency harness hook: ``(connection id, frame text, CLOCK_MONOTONIC ns)`` for every frame, stamped
        # when websockets, having framed it, writes its bytes to the socket (StampingConnection).
        self.on_frame_written: Callable[[int, str, int], None] | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        # Messages up to the hard limit reach the core, which answers an oversized one with the venue's
        # error; beyond it websockets closes with 1009 (message too big), as a real server does.
        hard_limit = max(4 * self._max_message_bytes, 1 << 20)
        # A stop closes every connection: a client that does not answer the close frame within
        # CLOSE_TIMEOUT_S is cut (websockets' 10 s default made a stop under load take tens of seconds).
        self._server = await serve(self._handle, host, port, max_size=hard_limit, compression=None,
                                   ping_interval=20, ping_timeout=20, close_timeout=CLOSE_TIMEOUT_S,
                                   create_connection=StampingConnection)
        bound = self._server.sockets[0].getsockname()[1]
        if self.autostart:
            self.begin_replay()
        self._driver = asyncio.get_running_loop().create_task(self._drive())
        log.info("%s on %s:%d", self.name, host, bound)
        return bound

    def begin_replay(self) -> None:
        """Start the replay clock now (start() does it unless autostart=False)."""
        self.core.start_replay(self._clock())
        self._kick.set()

    async def stop(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _drive(self) -> None:
        core = self.core
        while True:
            now = self._clock()
            more = core.advance(now, _BUDGET)
            for w in self._wakes.values():
                w.set()
            if more:
                await asyncio.sleep(0)
                continue
            nxt = core.next_wakeup_ns()
            timeout = None if nxt is None else max(0.0, (nxt - self._clock()) / 1e9)
            self._kick.clear()
            if timeout == 0.0:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout)

    async def _handle(self, ws: ServerConnection) -> None:
        core = self.core
        cid = core.open(self._clock())
        wake = asyncio.Event()
        wake.set()  # anything queued on open (a status message) goes out at once
        self._wakes[cid] = wake
        writer = asyncio.get_running_loop().create_task(self._write(cid, ws, wake))
        try:
            async for msg in ws:
                core.receive(cid, msg, self._clock())
                wake.set()
                self._kick.set()
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer
            core.close(cid)
            self._wakes.pop(cid, None)

    async def _write(self, cid: int, ws: ServerConnection, wake: asyncio.Event) -> None:
        core = self.core
        while True:
            await wake.wait()
            wake.clear()
            while True:
                frames = core.data_to_send(cid, self._clock())
                hook = self.on_frame_written
                for f in frames:
                    if hook is not None:
                        ws.before_write = functools.partial(_stamp, hook, cid, f)  # type: ignore[attr-defined]
                    await ws.send(f)
                reason = core.should_close(cid)
                if reason is not None:
                    log.info("%s: dropping connection %d (%s)", self.name, cid, reason)
                    ws.transport.abort()
                    return
                if not frames:
                    break
                self._kick.set()
