"""The asyncio shell shared by the WebSocket reference feeds (Coinbase, Kraken): connect, subscribe,
move frames into the venue's sans-I/O codec, and back.

It only moves bytes and time: every decision (sequence gaps, checksums, the book, bad frames) is the
codec's. When the codec asks for it (:class:`Resubscribe`) it sends the codec's resubscription; on
silence past ``stale_after`` it tells its owner the source is stale and, after twice that (at least
``RECONNECT_AFTER_MIN_S``, so a venue's once-a-second heartbeat never causes a reconnect), reconnects;
a lost connection is retried with exponential backoff and jitter (seeded, so tests are deterministic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

import websockets

from fastmm.backoff import Backoff
from fastmm.logs import OnceLogger, reason
from fastmm.venues.events import Resubscribe
from fastmm.venues.frames import MAX_FRAME_BYTES

log = logging.getLogger("fastmm.feed")

RECONNECT_AFTER_MIN_S = 2.0


class BookCodec(Protocol):
    """What a venue's sans-I/O book codec offers the shell."""

    venue: str
    synced: bool
    last_recv_ns: int
    messages: int            # frames received
    gaps: int                # book resynchronisations (sequence gaps, checksum mismatches)
    bad: OnceLogger          # bad input, counted by reason

    def connection_reset(self) -> None: ...
    def subscriptions(self) -> list[bytes]: ...
    def resubscription(self) -> list[bytes]: ...
    def on_frame(self, frame: bytes | str, t_recv_ns: int) -> list: ...
    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...


class FrameStamper(Protocol):
    """A harness's hook on the reads (``fastmm.venues.ws_rx_stamps.RxStampLog``): the connection class to
    read with, and a call per frame with the client's receive time. Production runs without one."""

    connection: type[websockets.ClientConnection]

    def frame(self, ws: websockets.ClientConnection, t_recv_ns: int) -> None: ...


class WsFeedClient:
    def __init__(self, url: str, feed: BookCodec, on_events: Callable[[list], None],
                 on_stale: Callable[[str], None], *, stale_after_s: float = 2.0,
                 open_timeout_s: float = 5.0, backoff: Backoff | None = None,
                 clock: Callable[[], int] = time.monotonic_ns, stamper: FrameStamper | None = None) -> None:
        self.url = url
        self.stamper = stamper
        self.feed = feed
        self.on_events = on_events
        self.on_stale = on_stale
        self.stale_after_s = stale_after_s
        self.open_timeout_s = open_timeout_s
        self.backoff = backoff or Backoff(0.1, 10.0)
        self.clock = clock
        self.connected = False
        self.connects = 0
        self.stale = True
        self._ws: websockets.ClientConnection | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a connection up until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self._session(stop)
            except (TimeoutError, OSError, websockets.WebSocketException) as e:
                log.warning("%s: connection to %s failed or lost: %s", self.feed.venue, self.url,
                            reason(e))
            finally:
                self.connected = False
                self._ws = None
                self._mark_stale("disconnected")
            if stop.is_set():
                break
            delay = self.backoff.next_delay()
            log.info("%s: reconnecting in %.2f s", self.feed.venue, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _session(self, stop: asyncio.Event) -> None:
        stamper = self.stamper
        async with websockets.connect(self.url, max_size=MAX_FRAME_BYTES, open_timeout=self.open_timeout_s,
                                      ping_interval=None, compression=None,
                                      create_connection=stamper.connection if stamper else None) as ws:
            self._ws = ws
            self.connected = True
            self.connects += 1
            self.feed.connection_reset()
            for msg in self.feed.subscriptions():
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
                        if any(isinstance(e, Resubscribe) for e in events):
                            self._mark_stale(next(e.reason for e in events if isinstance(e, Resubscribe)))
                            for msg in self.feed.resubscription():
                                await ws.send(msg.decode())
                        else:
                            self.stale = not self.feed.synced
                        self.backoff.reset()
                        self.on_events(events)
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
            silent_s = (self.clock() - self.feed.last_recv_ns) / 1e9 if self.feed.last_recv_ns else 0.0
            if silent_s > self.stale_after_s:
                self._mark_stale(f"silent for {silent_s:.1f} s")
            if silent_s > reconnect_s:
                log.warning("%s: silent for %.1f s; reconnecting", self.feed.venue, silent_s)
                await ws.close()
                return
        await ws.close()

    def _mark_stale(self, why: str) -> None:
        if not self.stale:
            self.stale = True
            log.warning("%s: source stale: %s", self.feed.venue, why)
            self.on_stale(why)
