"""aiohttp shell of the Kraken REST simulator (the logic is in kraken.py).

Routes: ``/0/public/<Method>`` (GET query or POST form) and ``POST /0/private/<Method>``. Every API
answer is HTTP 200 with Kraken's JSON, as Kraken does, so real clients (krakenex raises on non-2xx)
read the error list; only transport-level problems (unknown path, a body over the hard size limit) get
an HTTP error status. A background task advances the replay so resting orders fill and dead-man
switches fire without requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
from aiohttp import web

from fastmm.data.binance import read_capture
from fastmm.data.events import Event
from fastmm.sim.kraken import E_ARGS, E_UNKNOWN_METHOD, KrakenSettings, KrakenSim

log = logging.getLogger(__name__)

_TICK_S = 0.05


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


class KrakenSimServer:
    """``await start(host, port) -> port`` (0 = ephemeral), ``await stop()``; ``core`` is the KrakenSim."""

    def __init__(self, events: Iterable[Event] | None = None, settings: KrakenSettings | None = None,
                 *, clock: Callable[[], int] = time.time_ns) -> None:
        self.settings = settings or KrakenSettings()
        self.core = KrakenSim(read_capture() if events is None else events, self.settings)
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    @classmethod
    def from_capture(cls, path: str | Path | None = None, settings: KrakenSettings | None = None,
                     *, max_lines: int | None = None, **kw: object) -> KrakenSimServer:
        return cls(read_capture(path, max_lines=max_lines), settings, **kw)  # type: ignore[arg-type]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=max(4 * self.settings.max_body_bytes, 1 << 20))
        app.router.add_route("*", "/0/public/{method}", self._public)
        app.router.add_route("*", "/0/private/{method}", self._private)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.core.start_replay(self._clock())
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        log.info("kraken sim on %s:%d (speed %s)", host, bound, self.settings.speed)
        return bound

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _tick(self) -> None:
        while True:
            now = self._clock()
            self.core.advance(now)
            nxt = self.core.next_wakeup_ns()
            delay = _TICK_S if nxt is None else min(_TICK_S, max(0.0, (nxt - now) / 1e9))
            await asyncio.sleep(delay)

    async def _public(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            try:
                form = await request.post()
            except (ValueError, UnicodeDecodeError):
                return _json({"error": [E_ARGS]})
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return _json(self.core.handle_public(method, params, self._clock()))

    async def _private(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.method != "POST":
            return _json({"error": [E_UNKNOWN_METHOD]}, 405)
        body = await request.read()
        h = request.headers
        ans = self.core.handle_private(method, h.get("API-Key"), h.get("API-Sign"), body,
                                       h.get("Content-Type", ""), self._clock())
        return _json(ans)
