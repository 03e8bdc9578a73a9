"""asyncio shells on real loopback sockets: fastmm to fastmm, and raw-socket peers that misbehave."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable

import pytest

from fastmm.backoff import Backoff
from fastmm.event_loop import run
from fastmm.fix.codec import Encoder, FrameParser, Message, format_timestamp
from fastmm.fix.session import (
    AppMessage,
    DisconnectWanted,
    Event,
    FixSession,
    LoggedOn,
    LoggedOut,
    Role,
    SessionSettings,
    TestRequestSent,
)
from fastmm.fix.store import MemorySeqStore
from fastmm.fix.transport import FixConnection, FixInitiator, serve
from fastmm.venues.truex.auth import LogonCredentials, LogonVerifier

KEY, SECRET = "k", "s"


def client(hb: int = 1, **kw: object) -> FixSession:
    return FixSession(SessionSettings("FASTMM", "TRUEX", heartbeat_s=hb, **kw),  # type: ignore[arg-type]
                      MemorySeqStore(), logon_fields=LogonCredentials(KEY, SECRET))


def test_backoff_is_seeded_exponential_and_capped() -> None:
    a, b = Backoff(0.1, 1.0, 2.0, 0.2, seed=7), Backoff(0.1, 1.0, 2.0, 0.2, seed=7)
    da = [a.next_delay() for _ in range(8)]
    assert da == [b.next_delay() for _ in range(8)]
    for i, d in enumerate(da):
        base = min(1.0, 0.1 * 2**i)
        assert base * 0.8 <= d <= base * 1.2
    a.reset()
    assert a.next_delay() <= 0.12
    with pytest.raises(ValueError):
        Backoff(0.0)


async def _until(cond: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_initiator_and_acceptor_over_loopback() -> None:
    async def main() -> None:
        acc_events: list[Event] = []

        def on_acc(conn: FixConnection, ev: Event) -> None:
            acc_events.append(ev)
            if isinstance(ev, AppMessage) and ev.msg.msg_type == b"D":
                conn.send(b"8", b"37=1\x0111=%b\x0117=e1\x01150=0\x0139=0\x0154=1\x01151=1\x0114=0\x01"
                          % (ev.msg.get(11) or b"?"))

        def factory() -> tuple[FixSession, Callable[[FixConnection, Event], None]]:
            s = FixSession(SessionSettings("TRUEX", "FASTMM", role=Role.ACCEPTOR), MemorySeqStore(),
                           authenticate=LogonVerifier({KEY: SECRET}))
            return s, on_acc

        server = await serve("127.0.0.1", 0, factory)
        port = server.sockets[0].getsockname()[1]
        got: list[Event] = []
        ini = FixInitiator(client(), "127.0.0.1", port, lambda c, e: got.append(e), backoff=Backoff(seed=1))
        task = asyncio.create_task(ini.run())
        try:
            await ini.wait_logged_on(5)
            ini.send(b"D", b"11=o1\x01")
            await _until(lambda: any(isinstance(e, AppMessage) for e in got), 5)
            await ini.stop("bye")
            await asyncio.wait_for(task, 5)
        finally:
            task.cancel()
            server.close()
            await server.wait_closed()
        er = next(e for e in got if isinstance(e, AppMessage))
        assert er.msg.get(11) == b"o1"
        assert LoggedOut("", by_peer=False) in got
        assert LoggedOut("bye", by_peer=True) in acc_events
        assert ini.connects == 1

    run(main())


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _raw_server(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_msgs(reader: asyncio.StreamReader, parser: FrameParser, timeout: float) -> list[Message]:
    data = await asyncio.wait_for(reader.read(65536), timeout)
    return [m for m in parser.feed(data) if isinstance(m, Message)]


def test_peer_that_stops_heartbeating_gets_test_request_then_disconnect_then_reconnect() -> None:
    """Raw peer: answers the Logon, then never sends anything again (QuickFIX cannot be made to)."""
    async def main() -> None:
        seen: list[list[bytes]] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            parser = FrameParser()
            types: list[bytes] = []
            seen.append(types)
            enc = Encoder("FIXT.1.1", "TRUEX", "FASTMM")
            while True:
                try:
                    msgs = await _read_msgs(reader, parser, 10)
                except (TimeoutError, ConnectionError):
                    break
                if not msgs and reader.at_eof():
                    break
                for m in msgs:
                    types.append(m.msg_type)
                    if m.msg_type == b"A":
                        writer.write(enc.encode(b"A", 1, format_timestamp(time.time_ns()),
                                                b"108=1\x01141=Y\x011137=9\x01"))
            writer.close()

        server, port = await _raw_server(silent)
        got: list[Event] = []
        ini = FixInitiator(client(hb=1, logout_timeout_s=0.3), "127.0.0.1", port, lambda c, e: got.append(e),
                           backoff=Backoff(0.05, 0.1, seed=3))
        task = asyncio.create_task(ini.run())
        t0 = time.monotonic()
        try:
            await _until(lambda: len(seen) >= 2, 8)
            elapsed = time.monotonic() - t0
            await ini.stop()
            await asyncio.wait_for(task, 5)
        finally:
            task.cancel()
            server.close()
            await server.wait_closed()
        assert 2.0 < elapsed < 5.0  # disconnect at 2.4 x HeartBtInt, then a quick reconnect
        first = seen[0]
        assert first[0] == b"A" and b"1" in first and b"0" in first  # Logon, TestRequest, Heartbeats
        assert any(isinstance(e, TestRequestSent) for e in got)
        reason = next(e for e in got if isinstance(e, DisconnectWanted)).reason
        assert "TestRequest unanswered" in reason
        assert sum(isinstance(e, LoggedOn) for e in got) >= 2

    run(main())


def test_logon_timeout_then_backoff_reconnect() -> None:
    async def main() -> None:
        conns: list[float] = []

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conns.append(time.monotonic())
            await reader.read()  # never answers, waits for the client to close
            writer.close()

        server, port = await _raw_server(mute)
        got: list[Event] = []
        ini = FixInitiator(client(hb=1, logon_timeout_s=0.3), "127.0.0.1", port, lambda c, e: got.append(e),
                           backoff=Backoff(0.05, 0.2, seed=5))
        task = asyncio.create_task(ini.run())
        try:
            await _until(lambda: len(conns) >= 3, 5)
            await ini.stop()
            await asyncio.wait_for(task, 5)
        finally:
            task.cancel()
            server.close()
            await server.wait_closed()
        assert DisconnectWanted("no Logon within 0.3 s") in got
        assert conns[1] - conns[0] >= 0.3

    run(main())


def test_connect_timeout_is_bounded() -> None:
    """A listener whose accept queue is full drops SYNs: connect hangs until our timeout."""
    srv = socket.socket()
    fillers: list[socket.socket] = []
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        port = srv.getsockname()[1]
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            fillers.append(c)

        async def main() -> float:
            ini = FixInitiator(client(), "127.0.0.1", port, connect_timeout_s=0.3, reconnect=False)
            t0 = time.monotonic()
            await asyncio.wait_for(ini.run(), 5)
            assert ini.connects == 0
            return time.monotonic() - t0

        took = run(main())
        assert 0.25 < took < 2.0
    finally:
        for c in fillers:
            c.close()
        srv.close()


def test_connection_refused_retries_with_backoff() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def main() -> None:
        ini = FixInitiator(client(), "127.0.0.1", port, backoff=Backoff(0.02, 0.05, seed=9))
        task = asyncio.create_task(ini.run())
        await asyncio.sleep(0.3)
        await ini.stop()
        await asyncio.wait_for(task, 2)
        assert ini.connects == 0

    run(main())


class _BrokenStore(MemorySeqStore):
    """A store whose disk is gone: the shell must close the connection, not run half a session."""

    def reset(self) -> None:
        raise OSError("disk gone")


def test_a_store_failure_closes_the_connection_instead_of_hanging() -> None:
    async def main() -> None:
        accepted: list[bytes] = []

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(await reader.read())  # EOF at once: the client aborted
            writer.close()

        server, port = await _raw_server(peer)
        s = FixSession(SessionSettings("FASTMM", "TRUEX", heartbeat_s=1), _BrokenStore())
        ini = FixInitiator(s, "127.0.0.1", port, reconnect=False)
        try:
            await asyncio.wait_for(ini.run(), 5)
            await _until(lambda: len(accepted) == 1, 5)
        finally:
            server.close()
            await server.wait_closed()
        assert accepted == [b""] and ini.connects == 1

    run(main())
