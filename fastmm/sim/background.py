"""Venue simulators in a background thread with its own event loop.

``fastmm paper`` runs the simulators this way next to the supervisor, and the process tests use it to
give real child processes real venues on 127.0.0.1 while the test itself drives the supervisor."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any


class SimThread:
    """Start simulator servers (objects with ``async start(host, port) -> port`` and ``async stop()``)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[Any] = []

    def call(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def start(self, make: Callable[[], Any], timeout: float = 30.0) -> tuple[Any, int]:
        async def go() -> tuple[Any, int]:
            server = make()
            port = await server.start("127.0.0.1", 0)
            return server, port
        server, port = asyncio.run_coroutine_threadsafe(go(), self.loop).result(timeout)
        self.servers.append(server)
        return server, port

    def close(self) -> None:
        async def stop_all() -> None:
            for s in self.servers:
                await s.stop()
        try:
            asyncio.run_coroutine_threadsafe(stop_all(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
