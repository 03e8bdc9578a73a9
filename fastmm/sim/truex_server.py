"""The TrueX simulator on loopback: FIX acceptors for order entry and market data around TruexExchange.

Two listening ports like the real venue (order entry, market data), each a FIXT.1.1 acceptor built on
fastmm's own session core in the acceptor role. Logon is checked with TrueX's HMAC password (a wrong one
gets Reject 373=8 and a Logout); a MarketDataRequest on the order-entry session is refused the way
TrueX's documentation warns about (BusinessMessageReject). A replay task drives the recorded market.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable

from fastmm.data.binance import read_capture
from fastmm.data.events import Event
from fastmm.fix.codec import Message, format_timestamp
from fastmm.fix.session import (
    AppMessage,
    DisconnectWanted,
    FixSession,
    LoggedOn,
    LoggedOut,
    Role,
    SessionSettings,
)
from fastmm.fix.store import MemorySeqStore
from fastmm.fix.transport import FixConnection, serve
from fastmm.instrument import Instrument
from fastmm.sim.truex import TruexExchange, TruexSimSettings, levels_of
from fastmm.venues.truex.auth import logon_password

log = logging.getLogger("fastmm.sim.truex")

OE_TYPES = frozenset({b"D", b"F", b"G", b"V"})
MD_TYPES = frozenset({b"V"})


class _ReadStampedConnection(FixConnection):
    """An order-entry connection that stamps when its bytes were read (CLOCK_MONOTONIC ns), before the
    session parses them: the far end of the latency harness's wire-to-wire measurement."""

    read_ns = 0
    on_lost: Callable[[FixConnection], None] | None = None  # the venue sees the socket go (kill -9 too)

    def data_received(self, data: bytes) -> None:
        self.read_ns = time.monotonic_ns()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost(self)


class TruexSimServer:
    """``await start(host, oe_port, md_port) -> (oe_port, md_port)`` (0 = ephemeral), ``await stop()``."""

    name = "truex sim"

    def __init__(self, instrument: Instrument, events: Iterable[Event] | None = None,
                 settings: TruexSimSettings | None = None, *, clock: Callable[[], int] = time.time_ns,
                 heartbeat_s: int = 30) -> None:
        self.settings = settings or TruexSimSettings()
        self.exchange = TruexExchange(instrument, events, self.settings)
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        self._servers: list[asyncio.Server] = []
        self._oe: dict[str, FixConnection] = {}         # owner (client CompID) -> live order-entry connection
        # Order-entry session state outlives a connection, as at a real venue: sequence numbers and the
        # messages sent (also while the client was away), so a reconnecting client's ResendRequest gets
        # every ExecutionReport it missed, with PossDupFlag.
        self._oe_store: dict[str, MemorySeqStore] = {}
        self._oe_log: dict[str, list[tuple[int, bytes, bytes, bytes]]] = {}
        self._md: dict[FixConnection, str] = {}           # subscriber -> its MDReqID
        self._md_known: dict[tuple[str, int], int] = {}   # the book as subscribers have it
        self._task: asyncio.Task[None] | None = None
        self.logons = 0
        self.bad_logons = 0
        # (owner, MsgType, CLOCK_MONOTONIC ns) of every order-entry message, for tests and latency
        self.received: list[tuple[str, bytes, int]] = []
        # (MsgType, ClOrdID, CLOCK_MONOTONIC ns when the bytes carrying it were read) of every order-entry
        # application message, for the latency harness
        self.order_reads: list[tuple[bytes, bytes, int]] = []
        self.md_requests = 0

    @classmethod
    def from_capture(cls, instrument: Instrument, settings: TruexSimSettings | None = None, *,
                     max_lines: int | None = None, **kw: object) -> TruexSimServer:
        return cls(instrument, read_capture(None, max_lines=max_lines), settings, **kw)  # type: ignore[arg-type]

    # -- sessions ---------------------------------------------------------------------------------
    def _authenticate(self, msg: Message) -> str | None:
        s = self.settings
        key = (msg.get(553) or b"").decode("ascii", "replace")
        pw = (msg.get(554) or b"").decode("ascii", "replace")
        want = logon_password(s.api_secret, msg.sending_time, msg.seq, msg.sender.decode(),
                              msg.target.decode(), s.api_key_id)
        if key != s.api_key_id or pw != want:
            self.bad_logons += 1
            return "Authentication failed"
        return None

    def _session(self, comp_id: str, app_types: frozenset[bytes], owner: str | None = None) -> FixSession:
        s = self.settings
        store = MemorySeqStore() if owner is None else self._oe_store.setdefault(owner, MemorySeqStore())
        resend = None if owner is None else (lambda b, e: self._stored(owner, b, e))
        return FixSession(SessionSettings(comp_id, s.client_comp_id, role=Role.ACCEPTOR,
                                          heartbeat_s=self._heartbeat_s, app_msg_types=app_types),
                          store, authenticate=self._authenticate, resend_source=resend)

    def _stored(self, owner: str, begin: int, end: int) -> list[tuple[int, bytes, bytes, bytes]]:
        return [m for m in self._oe_log.get(owner, ()) if begin <= m[0] <= end]

    def _send_oe(self, owner: str, mt: bytes, body: bytes) -> None:
        """Send to the owner's session, or, while it is away, take the next MsgSeqNum and keep the
        message for its ResendRequest."""
        conn = self._oe.get(owner)
        if conn is not None:
            try:
                seq = conn.send(mt, body)
            except Exception:        # logged out or closing: keep it for the resend
                conn = None
        if conn is None:
            store = self._oe_store.setdefault(owner, MemorySeqStore())
            seq = store.next_sender
            store.set(seq + 1, store.next_target)
        log_ = self._oe_log.setdefault(owner, [])
        log_.append((seq, mt, body, format_timestamp(self._clock())))
        if len(log_) > 200_000:
            del log_[:100_000]

    def _oe_factory(self) -> tuple[FixSession, Callable[[FixConnection, object], None]]:
        owner = self.settings.client_comp_id

        def handler(conn: FixConnection, ev: object) -> None:
            now = self._clock()
            if isinstance(ev, LoggedOn):
                self.logons += 1
                old = self._oe.get(owner)
                if old is not None and old is not conn:
                    old.abort()
                if ev.reset:
                    self._oe_log.pop(owner, None)     # a reset session starts a new message history
                self._oe[owner] = conn
            elif isinstance(ev, AppMessage):
                t_handled = time.monotonic_ns()
                self.received.append((owner, ev.msg.msg_type, t_handled))
                self.order_reads.append((ev.msg.msg_type, ev.msg.get(11) or b"",
                                         getattr(conn, "read_ns", 0) or t_handled))
                if ev.msg.msg_type == b"V":
                    conn.send(b"j", b"372=V\x01380=3\x0158=MarketDataRequest on the order-entry session\x01")
                    return
                self.exchange.on_order_message(owner, ev.msg, now)
                self._flush()
            elif isinstance(ev, LoggedOut | DisconnectWanted) and self._oe.get(owner) is conn:
                self._oe_gone(owner, conn)

        return self._session(self.settings.oe_comp_id, OE_TYPES, owner), handler

    def _oe_gone(self, owner: str, conn: FixConnection) -> None:
        """The owner's order-entry connection ended (Logout, timeout or a dropped socket)."""
        if self._oe.get(owner) is not conn:
            return
        del self._oe[owner]
        if self.exchange.session_dropped(owner, self._clock()):
            self._flush()

    def _md_factory(self) -> tuple[FixSession, Callable[[FixConnection, object], None]]:
        def handler(conn: FixConnection, ev: object) -> None:
            if isinstance(ev, AppMessage) and ev.msg.msg_type == b"V":
                self.md_requests += 1
                msg = ev.msg
                req = (msg.get(262) or b"").decode("ascii", "replace")
                kind = msg.get(263)
                symbol = (msg.get(55) or b"").decode("ascii", "replace")
                if not req:
                    conn.send(b"Y", b"262=\x01281=0\x0158=MDReqID missing\x01")
                elif symbol != self.exchange.instrument.symbol:
                    conn.send(b"Y", b"262=%b\x01281=0\x0158=Unknown symbol\x01" % req.encode())
                elif kind == b"2":
                    self._md.pop(conn, None)
                elif kind == b"1":
                    self._flush()   # bring every subscriber's view up to now, then snapshot
                    if not self._md:
                        self._md_known = levels_of(self.exchange.engine.depth(10**6))
                    self._md[conn] = req
                    conn.send(b"W", self.exchange.md_snapshot(req))
                else:
                    conn.send(b"Y", b"262=%b\x01281=4\x0158=Unsupported SubscriptionRequestType\x01"
                              % req.encode())
            elif isinstance(ev, LoggedOut):
                self._md.pop(conn, None)

        return self._session(self.settings.md_comp_id, MD_TYPES), handler

    # -- output -----------------------------------------------------------------------------------
    def clock(self) -> int:
        return self._clock()

    def flush(self) -> None:
        """Send what the exchange has for the sessions now (after a REST action on it)."""
        self._flush()

    def _flush(self) -> None:
        """Send every pending order-entry answer, then the market-data changes they caused."""
        ex = self.exchange
        for owner in ex.owners_with_output():
            for mt, body in ex.outbox(owner):
                self._send_oe(owner, mt, body)
        trades = ex.drain_trades()
        if not self._md:
            ex.engine.drain_level_changes()
            return
        md_body = ex.md_incremental(self._md_known, trades, self._clock())
        if md_body is None:
            return
        for conn, req in list(self._md.items()):
            try:
                conn.send(b"X", b"262=%b\x01" % req.encode() + md_body)
            except Exception as e:     # a subscriber that just went away; its LoggedOut will follow
                log.debug("truex sim: market data to a closing connection: %s", e)

    async def _drive(self) -> None:
        ex = self.exchange
        ex.start(self._clock())
        while True:
            now = self._clock()
            n = ex.advance(now)
            if n:
                self._flush()
            nxt = ex.next_wakeup_ns()
            if nxt is None:
                if ex.finished:
                    log.info("truex sim: replay finished (%d events, %d taker orders)", ex.replayed,
                             ex.taker_orders)
                    return
                await asyncio.sleep(0.01)
                continue
            await asyncio.sleep(0 if n >= 2000 else max(0.0, min(0.05, (nxt - self._clock()) / 1e9)))

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", oe_port: int = 0, md_port: int = 0, *,
                    ssl_context: ssl.SSLContext | None = None) -> tuple[int, int]:
        """Listen for both sessions; with ``ssl_context`` both are TLS only (a venue behind TLS)."""
        def make_oe() -> FixConnection:
            session, handler = self._oe_factory()
            conn = _ReadStampedConnection(session, handler, self._clock)
            conn.on_lost = lambda c: self._oe_gone(self.settings.client_comp_id, c)
            return conn

        oe = await asyncio.get_running_loop().create_server(make_oe, host, oe_port, ssl=ssl_context)
        md = await serve(host, md_port, self._md_factory, clock=self._clock, ssl_context=ssl_context)
        self._servers = [oe, md]
        self._task = asyncio.get_running_loop().create_task(self._drive())
        ports = (oe.sockets[0].getsockname()[1], md.sockets[0].getsockname()[1])
        log.info("truex sim: order entry on %s:%d, market data on %s:%d", host, ports[0], host, ports[1])
        return ports

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for conn in list(self._oe.values()) + list(self._md):
            conn.abort()
        for s in self._servers:
            s.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 2)
        self._servers = []
