"""What both WebSocket feed shells share (:mod:`fastmm.venues.ws_feed`, the sans-I/O one, and
:mod:`fastmm.venues.ws_feed_legacy`, websockets' asyncio client): the codec and stamper protocols, the
reconnect loop with backoff, staleness, and handing the codec's events on. Its own module so that the
two shells import it and not each other."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import websockets

from fastmm.backoff import Backoff
from fastmm.logs import OnceLogger, reason
from fastmm.venues.events import Resubscribe

log = logging.getLogger("fastmm.feed")

RECONNECT_AFTER_MIN_S = 2.0

WsClientKind = Literal["sansio", "websockets"]
WS_CLIENTS: tuple[WsClientKind, ...] = ("sansio", "websockets")


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
    def on_frame(self, frame: bytes | bytearray | str, t_recv_ns: int) -> list: ...
    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]: ...


class RxReader(Protocol):
    """A reader that took over a transport's reading (:class:`fastmm.net.timestamps.RecvmsgReader`)."""

    last_rx_ns: int

    def close(self) -> None: ...


class FrameStamper(Protocol):
    """A harness's hook on the reads (``fastmm.venues.ws_rx_stamps.RxStampLog``); production runs without
    one. :meth:`reader` takes over a plain (ws://) transport's reading for :class:`WsFeedClient`;
    ``connection`` is the connection class the websockets fallback reads with. :meth:`frame` is called per
    message with the client's receive time, ``conn.message_rx_ns`` being the kernel's stamp of the read
    that completed it."""

    connection: type[websockets.ClientConnection]

    def reader(self, transport: Any, protocol: Any) -> RxReader: ...
    def frame(self, conn: Any, t_recv_ns: int) -> None: ...


class FeedClientBase:
    """What both shells share: the reconnect loop, staleness, and the codec's events."""

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
                self._mark_stale("disconnected")
            if stop.is_set():
                break
            delay = self.backoff.next_delay()
            log.info("%s: reconnecting in %.2f s", self.feed.venue, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _session(self, stop: asyncio.Event) -> None:
        raise NotImplementedError

    def _opened(self) -> list[bytes]:
        """The connection is up: the codec starts over; its subscriptions, to send."""
        self.connected = True
        self.connects += 1
        self.feed.connection_reset()
        return self.feed.subscriptions()

    def _events(self, events: list) -> list[bytes]:
        """The codec's events of one frame, handed on; what to send back (a resubscription, or nothing)."""
        out: list[bytes] = []
        for e in events:
            if isinstance(e, Resubscribe):
                self._mark_stale(e.reason)
                out = self.feed.resubscription()
                break
        else:
            self.stale = not self.feed.synced
        self.backoff.reset()
        self.on_events(events)
        return out

    def _silent_s(self) -> float:
        last = self.feed.last_recv_ns
        return (self.clock() - last) / 1e9 if last else 0.0

    def _mark_stale(self, why: str) -> None:
        if not self.stale:
            self.stale = True
            log.warning("%s: source stale: %s", self.feed.venue, why)
            self.on_stale(why)
