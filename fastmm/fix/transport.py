"""asyncio shells around :class:`~fastmm.fix.session.FixSession`: they only move bytes and run timers.

* :class:`FixConnection` (an ``asyncio.Protocol``) feeds received bytes to the session, writes what it
  returns at once, runs one timer at the session's ``next_deadline()``, closes the socket when the
  session wants a disconnect, and hands every event to a handler ``(connection, event)``.
* :class:`FixInitiator` keeps one client session up: connect with a timeout (the Logon timeout is the
  session core's), reconnect with exponential backoff and seeded jitter (:class:`Backoff`), and a clean
  :meth:`~FixInitiator.stop` (Logout, wait for the answer, close).
* :func:`serve` is the acceptor side (the simulator's FIX exchange): one new session per connection.
* TLS: :func:`client_ssl_context` builds the initiator's context from a session's ``tls`` table
  (verification always on, minimum version, CA file, client certificate); with a context the initiator
  connects over TLS only. A certificate that does not verify raises :class:`TlsVerifyError` out of
  :meth:`FixInitiator.run` with the reason: a configuration problem, never retried in plain text.

:func:`run` runs a coroutine on uvloop where it is installed, else on the standard loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from fastmm.backoff import Backoff
from fastmm.fix._state import InvalidState, State
from fastmm.fix.session import DisconnectWanted, Event, FixSession, LoggedOn
from fastmm.logs import reason

if TYPE_CHECKING:
    from fastmm.config import TlsConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], int]
Handler = Callable[["FixConnection", Event], None]


class TlsVerifyError(ConnectionError):
    """The venue's TLS certificate did not verify (wrong CA, name, expired): never retried in plain text."""


_TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def client_ssl_context(tls: TlsConfig) -> ssl.SSLContext | None:
    """The initiator's TLS context from a session's ``tls`` table; None when TLS is off.

    Verification is always on (certificate chain and host name); ``ca_file`` replaces the system's CAs,
    ``cert_file``/``key_file`` add a client certificate. A file that cannot be loaded raises
    ``ssl.SSLError``/``OSError`` at start, before any connection."""
    if not tls.enabled:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file or None)
    ctx.minimum_version = _TLS_VERSIONS[tls.min_version]
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file or None)
    return ctx


def server_ssl_context(cert_file: str, key_file: str, *, client_ca_file: str = "",
                       min_version: str = "TLSv1.2") -> ssl.SSLContext:
    """An acceptor's context (the simulator behind TLS); ``client_ca_file`` requires client certificates."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = _TLS_VERSIONS[min_version]
    ctx.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        ctx.load_verify_locations(client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@runtime_checkable
class StreamTransport(Protocol):
    """What a connection uses of its transport. asyncio's stream transports have it, and so have
    uvloop's, which do not subclass ``asyncio.Transport``."""

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


class FixConnection(asyncio.Protocol):
    """One TCP connection driving one session (see the module docstring)."""

    def __init__(self, session: FixSession, handler: Handler, clock: Clock = time.time_ns,
                 trace_out: Callable[[bytes], None] | None = None) -> None:
        self.session = session
        self._handler = handler
        self._clock = clock
        self.trace_out = trace_out     # called with every frame before it is written; None: off
        self._transport: StreamTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.logged_on: asyncio.Future[None] = self._loop.create_future()
        self.peer = ""

    @property
    def transport(self) -> StreamTransport | None:
        """The connection's transport while connected (a harness reads its socket's options)."""
        return self._transport

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, StreamTransport):  # a datagram or pipe transport: not for FIX
            raise TypeError(f"FIX needs a stream transport, got {type(transport).__name__}")
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        try:
            self.session.connection_made(self._clock())
        except Exception:  # e.g. a sequence store that cannot be written: never run half a session
            log.exception("FIX session could not start on %s; closing", self.peer)
            transport.abort()
            return
        self._pump()

    def data_received(self, data: bytes) -> None:
        try:
            self.session.receive_data(data, self._clock())
        except Exception:  # the core never raises on bad input; this is a store failure or a bug
            log.exception("FIX session failed on input from %s; closing", self.peer)
            if self._transport is not None:
                self._transport.abort()
            return
        self._pump()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        if self.session.state is not State.DISCONNECTED:
            self.session.connection_lost()
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.logged_on.done():
            self.logged_on.set_exception(ConnectionError(f"connection closed before logon ({exc or 'EOF'})"))
            self.logged_on.exception()  # mark retrieved: nobody may be waiting

    # -- application side ----------------------------------------------------------------------------
    def send(self, msg_type: bytes, body: bytes) -> int:
        """Frame an application message and write it now; returns its MsgSeqNum."""
        seq = self.session.send(msg_type, body, self._clock())
        self._pump()
        return seq

    def logout(self, text: str = "") -> None:
        self.session.logout(text, self._clock())
        self._pump()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        elif not self.closed.done():
            self.closed.set_result(None)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        elif not self.closed.done():
            self.closed.set_result(None)

    # -- internals -------------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Write what the session produced, hand over its events, re-arm the timer."""
        s = self.session
        out = s.data_to_send()
        tr = self._transport
        if out and tr is not None:
            if self.trace_out is not None:
                for frame in out:
                    self.trace_out(frame)
            tr.write(out[0] if len(out) == 1 else b"".join(out))
        disconnect = False
        for ev in s.events_received():
            if isinstance(ev, DisconnectWanted):
                disconnect = True
            elif isinstance(ev, LoggedOn) and not self.logged_on.done():
                self.logged_on.set_result(None)
            try:
                self._handler(self, ev)
            except Exception:  # a handler bug must not break the session shell
                log.exception("FIX event handler failed on %s", type(ev).__name__)
        if disconnect and tr is not None:
            tr.close()
            return
        self._arm()

    def _arm(self) -> None:
        deadline = self.session.next_deadline()
        if not deadline:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if self._timer is not None and self._timer_at <= deadline:
            return  # the armed timer fires first and re-arms
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_later(max(0.0, (deadline - self._clock()) / 1e9), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._transport is None:
            return
        self.session.on_timer(self._clock())
        self._pump()


class FixInitiator:
    """Keeps one initiator session connected and logged on until :meth:`stop`."""

    def __init__(self, session: FixSession, host: str, port: int, handler: Handler | None = None, *,
                 connect_timeout_s: float = 5.0, backoff: Backoff | None = None, clock: Clock = time.time_ns,
                 trace_out: Callable[[bytes], None] | None = None, reconnect: bool = True,
                 ssl_context: ssl.SSLContext | None = None, server_hostname: str = "") -> None:
        self.session = session
        self.ssl_context = ssl_context  # None: plain TCP; set: TLS only, never a plain-text fallback
        self.server_hostname = server_hostname or host
        self.host, self.port = host, port
        self._handler = handler or (lambda c, e: None)
        self.connect_timeout_s = connect_timeout_s
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._trace_out = trace_out
        self.reconnect = reconnect
        self.conn: FixConnection | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._logged_on = asyncio.Event()
        self.connects = 0  # successful TCP connects, for tests and status

    @property
    def logged_on(self) -> bool:
        return self.conn is not None and self.session.state is State.ACTIVE

    async def wait_logged_on(self, timeout: float) -> None:
        """Wait for the next LoggedOn (or the current one); raises TimeoutError."""
        await asyncio.wait_for(self._logged_on.wait(), timeout)

    def send(self, msg_type: bytes, body: bytes) -> int:
        if self.conn is None:
            raise InvalidState("not connected")
        return self.conn.send(msg_type, body)

    def _on_event(self, conn: FixConnection, ev: Event) -> None:
        if isinstance(ev, LoggedOn):
            self._logged_on.set()
        elif isinstance(ev, DisconnectWanted):
            self._logged_on.clear()
        self._handler(conn, ev)

    async def run(self) -> None:
        """Connect, stay up, reconnect after a loss (unless stopping or ``reconnect`` is off)."""
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while not self._stopping:
            conn: FixConnection | None = None
            try:
                tls: dict[str, Any] = {} if self.ssl_context is None else {
                    "ssl": self.ssl_context, "server_hostname": self.server_hostname,
                    "ssl_handshake_timeout": self.connect_timeout_s}
                _, proto = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: FixConnection(self.session, self._on_event, self._clock, self._trace_out),
                        self.host, self.port, **tls),
                    self.connect_timeout_s)
                conn = proto
            except ssl.SSLCertVerificationError as e:
                why = (f"FIX {self.host}:{self.port}: TLS certificate of {self.server_hostname!r} did not "
                       f"verify: {e.verify_message or e}")
                log.error("%s", why)
                raise TlsVerifyError(why) from e
            except (OSError, TimeoutError) as e:
                log.warning("FIX %s:%d connect failed: %s", self.host, self.port,
                            reason(e))
            if conn is not None:
                self.connects += 1
                self.conn = conn
                await conn.closed
                self._logged_on.clear()
                self.conn = None
                if conn.logged_on.done() and not conn.logged_on.exception():
                    self.backoff.reset()
            if self._stopping or not self.reconnect:
                break
            delay = self.backoff.next_delay()
            log.info("FIX %s:%d reconnecting in %.2f s", self.host, self.port, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def stop(self, text: str = "", timeout_s: float | None = None) -> None:
        """Logout, wait for the peer's Logout (or the logout timeout), close; no reconnect after."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        conn = self.conn
        if conn is None:
            return
        if self.session.state is State.ACTIVE:
            conn.logout(text)
        else:
            conn.close()
        wait = timeout_s if timeout_s is not None else self.session.settings.logout_timeout_s + 1.0
        try:
            await asyncio.wait_for(asyncio.shield(conn.closed), wait)
        except TimeoutError:
            conn.abort()
            await conn.closed


async def serve(host: str, port: int, session_factory: Callable[[], tuple[FixSession, Handler]], *,
                clock: Clock = time.time_ns, ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    """Acceptor side: every accepted connection gets a fresh session (role ACCEPTOR) and handler."""
    loop = asyncio.get_running_loop()

    def make() -> FixConnection:
        session, handler = session_factory()
        return FixConnection(session, handler, clock)

    return await loop.create_server(make, host, port, ssl=ssl_context)

