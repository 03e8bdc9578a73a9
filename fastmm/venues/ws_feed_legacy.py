"""The feeds' former shell, kept as a fallback (``ws_client = "websockets"`` in a venue's config):
websockets' asyncio client, ``await ws.recv(decode=False)`` per message. Same behaviour as
:class:`fastmm.venues.ws_feed.WsFeedClient` (which it shares its reconnect loop and staleness with); each
message costs a trip through websockets' assembler and a task wake-up more.
"""

from __future__ import annotations

import asyncio
import contextlib

import websockets

from fastmm.venues.frames import MAX_FRAME_BYTES
from fastmm.venues.ws_feed_base import RECONNECT_AFTER_MIN_S, FeedClientBase, log


class WebsocketsFeedClient(FeedClientBase):
    async def _session(self, stop: asyncio.Event) -> None:
        stamper = self.stamper
        async with websockets.connect(self.url, max_size=MAX_FRAME_BYTES, open_timeout=self.open_timeout_s,
                                      ping_interval=None, compression=None,
                                      create_connection=stamper.connection if stamper else None) as ws:
            for msg in self._opened():
                await ws.send(msg.decode())
            log.info("%s: connected to %s and subscribed", self.feed.venue, self.url)
            watchdog = asyncio.create_task(self._watch(ws, stop))
            try:
                while True:
                    # bytes, not str: orjson parses (and checks the UTF-8 of) the raw payload itself, so
                    # websockets' decode to str is work done twice per frame
                    try:
                        frame = await ws.recv(decode=False)
                    except websockets.ConnectionClosedOK:
                        break
                    t = self.clock()
                    if stamper is not None:
                        stamper.frame(ws, t)
                    events = self.feed.on_frame(frame, t)
                    if events:
                        for msg in self._events(events):
                            await ws.send(msg.decode())
                    if stop.is_set():
                        break
            finally:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog

    async def _watch(self, ws: websockets.ClientConnection, stop: asyncio.Event) -> None:
        """Silence past stale_after marks the source stale; twice that, the connection is replaced."""
        period = min(0.05, self.stale_after_s / 4)
        reconnect_s = max(2 * self.stale_after_s, RECONNECT_AFTER_MIN_S)
        while not stop.is_set():
            await asyncio.sleep(period)
            silent_s = self._silent_s()
            if silent_s > self.stale_after_s:
                self._mark_stale(f"silent for {silent_s:.1f} s")
            if silent_s > reconnect_s:
                log.warning("%s: silent for %.1f s; reconnecting", self.feed.venue, silent_s)
                await ws.close()
                return
        await ws.close()
