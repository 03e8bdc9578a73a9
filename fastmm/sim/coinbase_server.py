"""The Coinbase Advanced Trade simulator on a websockets server (logic: coinbase.py; shell: ws_server.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from fastmm.data.binance import read_capture
from fastmm.data.coinbase_frames import read_frames
from fastmm.sim.coinbase import CoinbaseSettings, CoinbaseSim, FeedEvent, from_binance, from_frames
from fastmm.sim.ws_server import WsReplayServer


class CoinbaseSimServer(WsReplayServer):
    """``await start(host, port) -> port`` (0 = ephemeral), ``await stop()``; ``core`` is the CoinbaseSim."""

    name = "coinbase sim"
    core: CoinbaseSim

    def __init__(self, source: Iterable[FeedEvent] | None = None, settings: CoinbaseSettings | None = None,
                 *, autostart: bool = True, clock: Callable[[], int] = time.time_ns) -> None:
        self.settings = settings or CoinbaseSettings()
        core = CoinbaseSim(from_binance() if source is None else source, self.settings)
        super().__init__(core, max_message_bytes=self.settings.max_message_bytes, autostart=autostart,
                         clock=clock)

    @classmethod
    def from_capture(cls, path: str | Path | None = None, settings: CoinbaseSettings | None = None, *,
                     max_lines: int | None = None, autostart: bool = True) -> CoinbaseSimServer:
        """Replay the Binance capture (default: the one under FASTMM_DATA_DIR)."""
        return cls(from_binance(read_capture(path, max_lines=max_lines)), settings, autostart=autostart)

    @classmethod
    def from_frames(cls, path: str | Path, settings: CoinbaseSettings | None = None, *,
                    autostart: bool = True) -> CoinbaseSimServer:
        """Replay a JSONL file of recorded Advanced Trade frames."""
        s = settings or CoinbaseSettings()
        return cls(from_frames(read_frames(path), s.product_id), s, autostart=autostart)
