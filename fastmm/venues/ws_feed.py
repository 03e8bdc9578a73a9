"""The asyncio shell shared by the WebSocket reference feeds (Coinbase, Kraken): connect, subscribe,
move frames into the venue's sans-I/O codec, and back.

It only moves bytes and time: every decision (sequence gaps, checksums, the book, bad frames) is the
codec's. When the codec asks for it (:class:`Resubscribe`) it sends the codec's resubscription; on
silence past ``stale_after`` it tells its owner the source is stale and, after twice that (at least
``RECONNECT_AFTER_MIN_S``, so a venue's once-a-second heartbeat never causes a reconnect), reconnects;
a lost connection is retried with exponential backoff and jitter (seeded, so tests are deterministic).

:class:`WsFeedClient` drives websockets' own sans-I/O core (``websockets.client.ClientProtocol``) from a
plain ``asyncio.Protocol``: every read goes through ``receive_data`` and each complete message reaches the
codec inside that same ``data_received`` call. Why: websockets' asyncio connection hands each message
through its assembler to a ``recv()`` awaiting in another task (a future and a task wake-up per
message), which in the feed's profile cost as much as the codec itself, and under load the feed was
still reading earlier frames when the next one arrived. Pings are answered, close frames echoed and bad
frames refused by that core, as websockets' own client does. The websockets-asyncio client is kept as a
fallback (``ws_client = "websockets"`` in a venue's config, :mod:`fastmm.venues.ws_feed_legacy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
import time
from collections.abc import Callable
from typing import Any, cast

import websockets
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import USER_AGENT, Response
from websockets.protocol import State
from websockets.uri import parse_uri

from fastmm.backoff import Backoff
from fastmm.logs import reason
from fastmm.venues.frames import MAX_FRAME_BYTES
from fastmm.venues.ws_feed_base import (
    RECONNECT_AFTER_MIN_S,
    WS_CLIENTS,
    BookCodec,
    FeedClientBase,
    FrameStamper,
    RxReader,
    WsClientKind,
    log,
)

__all__ = ["RECONNECT_AFTER_MIN_S", "WS_CLIENTS", "BookCodec", "FeedClientBase", "FrameStamper", "RxReader",
           "WsClientKind", "WsFeedClient", "make_feed_client"]

CLOSE_TIMEOUT_S = 2.0        # after a close frame, how long the venue has to close TCP before we abort it

_TEXT, _BINARY, _CONT, _CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.CLOSE


class _FeedConnection(asyncio.Protocol):
    """One WebSocket connection: websockets' ``ClientProtocol`` fed from ``data_received``, each complete
    message handed to the codec in that same call, the core's writes (handshake, subscriptions, pongs,
    close frames) flushed to the transport as soon as it makes them."""

    def __init__(self, client: WsFeedClient, ws: ClientProtocol) -> None:
        self.client = client
        self.ws = ws
        self.feed = client.feed
        self.clock = client.clock
        self.stamper = client.stamper
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.opened: asyncio.Future[None] = loop.create_future()   # handshake answered (or failed)
        self.closed: asyncio.Future[None] = loop.create_future()   # connection lost
        self.transport: asyncio.Transport | None = None
        self.rx: RxReader | None = None
        self.message_rx_ns = 0          # the kernel's stamp of the read that completed the current message
        self.error: Exception | None = None
        self._parts: list[bytes | bytearray] | None = None    # a fragmented message so far
        self._close_timer: asyncio.TimerHandle | None = None
        self.reads = 0
        self.frames = 0

    # -- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)    # uvloop's is no asyncio.Transport subclass
        if self.stamper is not None and not self.client.uri.secure:    # recvmsg under TLS: ciphertext
            self.rx = self.stamper.reader(self.transport, self)
        request = self.ws.connect()
        request.headers["User-Agent"] = USER_AGENT
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        self.reads += 1
        writes = ws.data_to_send()
        if writes:
            self._write(writes)
        for ev in ws.events_received():
            if type(ev) is Frame:
                op = ev.opcode
                if (op is _TEXT or op is _BINARY) and ev.fin:
                    self._message(ev.data)      # type: ignore[arg-type]  # memoryview: outgoing only
                else:
                    self._frame(ev)
            else:
                self._handshake(ev)
        if ws.parser_exc is not None and self.error is None:
            self._failed(ws.parser_exc)

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None             # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self.rx is not None:
            self.rx.close()
        if self._close_timer is not None:
            self._close_timer.cancel()
        ws = self.ws
        ws.receive_eof()        # idempotent: the core goes CLOSED and knows whether that was clean
        ws.data_to_send()
        if not self.opened.done():
            self.opened.set_exception(ws.handshake_exc or ConnectionError(
                f"connection closed during the opening handshake{f': {exc}' if exc else ''}"))
            self.opened.exception()     # retrieved by _session; never "exception never retrieved"
        if not self.closed.done():
            self.closed.set_result(None)

    # -- messages ------------------------------------------------------------------------------------

    def _message(self, data: bytes | bytearray) -> None:
        """One complete message: stamped and handed to the codec, its answers sent."""
        t = self.clock()
        self.frames += 1
        if self.stamper is not None:
            self.message_rx_ns = self.rx.last_rx_ns if self.rx is not None else 0
            self.stamper.frame(self, t)
        events = self.feed.on_frame(data, t)
        if events:
            out = self.client._events(events)
            if out:
                self.send_text(out)

    def _frame(self, frame: Frame) -> None:
        """The rare frames: fragments, and control frames (the core has answered pings and echoed a close)."""
        op = frame.opcode
        if op is _TEXT or op is _BINARY:
            self._parts = [frame.data]      # type: ignore[list-item]  # bytes or bytearray when read
        elif op is _CONT:
            if self._parts is not None:
                self._parts.append(frame.data)      # type: ignore[arg-type]
                if frame.fin:
                    parts, self._parts = self._parts, None
                    self._message(b"".join(parts))
        elif op is _CLOSE:
            close = self.ws.close_rcvd
            log.info("%s: %s closed the WebSocket: %s", self.feed.venue, self.client.url,
                     close if close is not None else "no close frame")
            self._expect_close()

    def _handshake(self, response: object) -> None:
        if not isinstance(response, Response) or self.opened.done():
            return
        exc = self.ws.handshake_exc
        if exc is not None:
            self.opened.set_exception(exc)
            self._expect_close()
            return
        self.opened.set_result(None)
        self.send_text(self.client._opened())

    def _failed(self, exc: Exception) -> None:
        """The core refused the input (a frame over MAX_FRAME_BYTES, a protocol error): it has queued a
        close frame; the connection ends and the client reconnects."""
        self.error = exc
        log.error("%s: bad input from %s: %s; closing the connection to reconnect", self.feed.venue,
                  self.client.url, reason(exc))
        self._flush()
        self._expect_close()

    # -- writing -------------------------------------------------------------------------------------

    def send_text(self, msgs: list[bytes]) -> None:
        ws = self.ws
        if ws.state is not State.OPEN:
            return
        for m in msgs:
            ws.send_text(m)
        self._flush()

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake (the venue closes TCP; past CLOSE_TIMEOUT_S we abort it)."""
        with contextlib.suppress(InvalidState):
            self.ws.send_close(code)
        self._flush()
        self._expect_close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        writes = self.ws.data_to_send()
        if writes:
            self._write(writes)

    def _write(self, writes: list[bytes]) -> None:
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        for data in writes:
            if not data:        # SEND_EOF: the core half-closes
                if tr.can_write_eof():
                    tr.write_eof()
                else:
                    tr.close()
                return
            tr.write(data)

    def _expect_close(self) -> None:
        if self._close_timer is None and not self.closed.done():
            self._close_timer = self.loop.call_later(CLOSE_TIMEOUT_S, self.abort)


class WsFeedClient(FeedClientBase):
    """The feed's WebSocket client (see the module docstring). ``ssl``: the context for wss:// URLs (None:
    the system's default, verified); ws:// never uses one."""

    def __init__(self, url: str, feed: BookCodec, on_events: Callable[[list], None],
                 on_stale: Callable[[str], None], *, stale_after_s: float = 2.0,
                 open_timeout_s: float = 5.0, backoff: Backoff | None = None,
                 clock: Callable[[], int] = time.monotonic_ns, stamper: FrameStamper | None = None,
                 ssl: ssl_module.SSLContext | None = None) -> None:
        super().__init__(url, feed, on_events, on_stale, stale_after_s=stale_after_s,
                         open_timeout_s=open_timeout_s, backoff=backoff, clock=clock, stamper=stamper)
        self.uri = parse_uri(url)
        self.ssl = ssl
        self.conn: _FeedConnection | None = None

    def ssl_context(self) -> ssl_module.SSLContext | None:
        """What ``create_connection`` gets: a verified context for wss://, none for ws://."""
        if not self.uri.secure:
            return None
        return self.ssl or ssl_module.create_default_context()

    async def _session(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        uri = self.uri
        conn = _FeedConnection(self, ClientProtocol(uri, max_size=MAX_FRAME_BYTES))
        ctx = self.ssl_context()
        self.conn = conn
        try:
            async with asyncio.timeout(self.open_timeout_s):
                await loop.create_connection(lambda: conn, uri.host, uri.port, ssl=ctx,
                                             server_hostname=uri.host if ctx is not None else None)
                await conn.opened
            log.info("%s: connected to %s and subscribed", self.feed.venue, self.url)
            await self._watch(conn, stop)
        finally:
            conn.abort()
            self.conn = None
        if conn.error is not None:
            raise conn.error
        if conn.ws.state is State.CLOSED:
            exc = conn.ws.close_exc
            if not isinstance(exc, websockets.ConnectionClosedOK):
                raise exc

    async def _watch(self, conn: _FeedConnection, stop: asyncio.Event) -> None:
        """Until the connection ends: silence past stale_after marks the source stale; twice that, the
        connection is replaced; ``stop`` closes it."""
        period = min(0.05, self.stale_after_s / 4)
        reconnect_s = max(2 * self.stale_after_s, RECONNECT_AFTER_MIN_S)
        closing = False
        while not conn.closed.done():
            await asyncio.wait((conn.closed,), timeout=period)
            if closing or conn.closed.done():
                continue
            if stop.is_set():
                conn.close()
                closing = True
                continue
            silent_s = self._silent_s()
            if silent_s > self.stale_after_s:
                self._mark_stale(f"silent for {silent_s:.1f} s")
            if silent_s > reconnect_s:
                log.warning("%s: silent for %.1f s; reconnecting", self.feed.venue, silent_s)
                conn.close()
                closing = True


def make_feed_client(kind: WsClientKind, url: str, feed: BookCodec, on_events: Callable[[list], None],
                     on_stale: Callable[[str], None], **kw: Any) -> FeedClientBase:
    """The feed client a venue's ``ws_client`` setting names: ``sansio`` (:class:`WsFeedClient`, the
    default) or ``websockets`` (websockets' asyncio client, the fallback)."""
    if kind == "sansio":
        return WsFeedClient(url, feed, on_events, on_stale, **kw)
    if kind == "websockets":
        from fastmm.venues.ws_feed_legacy import WebsocketsFeedClient

        return WebsocketsFeedClient(url, feed, on_events, on_stale, **kw)
    raise ValueError(f"unknown ws_client {kind!r}; choose one of {', '.join(WS_CLIENTS)}")
