"""The Kraken WebSocket v2 book/ticker simulator on a websockets server (logic in kraken_ws.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from fastmm.data.binance import read_capture
from fastmm.data.events import Event
from fastmm.sim.kraken_ws import KrakenWsSettings, KrakenWsSim
from fastmm.sim.ws_server import WsReplayServer


class KrakenWsSimServer(WsReplayServer):
    """``await start(host, port) -> port`` (0 = ephemeral), ``await stop()``; ``core`` is the KrakenWsSim."""

    name = "kraken ws sim"
    core: KrakenWsSim

    def __init__(self, events: Iterable[Event] | None = None, settings: KrakenWsSettings | None = None,
                 *, autostart: bool = True, clock: Callable[[], int] = time.time_ns) -> None:
        self.settings = settings or KrakenWsSettings()
        core = KrakenWsSim(read_capture() if events is None else events, self.settings)
        super().__init__(core, max_message_bytes=self.settings.max_message_bytes, autostart=autostart,
                         clock=clock)

    @classmethod
    def from_capture(cls, path: str | Path | None = None, settings: KrakenWsSettings | None = None, *,
                     max_lines: int | None = None, autostart: bool = True) -> KrakenWsSimServer:
        return cls(read_capture(path, max_lines=max_lines), settings, autostart=autostart)
