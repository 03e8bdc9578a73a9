"""Kernel timestamps: the pure decoders on literal bytes, then the real thing on a loopback TCP pair."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator

import pytest
import uvloop

from fastmm.net import timestamps as ts

TS = struct.Struct("=qq")
EE = struct.Struct("=IBBBBII")


def _stamping(sec: int, nsec: int) -> bytes:
    return TS.pack(sec, nsec) + TS.pack(0, 0) + TS.pack(0, 0)


def _ee(data: int, origin: int = ts.SO_EE_ORIGIN_TIMESTAMPING, info: int = ts.SCM_TSTAMP_SND) -> bytes:
    return EE.pack(42, origin, 0, 0, 0, info, data) + bytes(16)      # ENOMSG, then the offender address


def test_rx_stamp_from_timestampns_or_timestamping() -> None:
    assert ts.rx_stamp_ns([(socket.SOL_SOCKET, ts.SCM_TIMESTAMPNS, TS.pack(1_700_000_000, 5))]) == \
        1_700_000_000_000_000_005
    assert ts.rx_stamp_ns([(socket.SOL_SOCKET, ts.SCM_TIMESTAMPING, _stamping(2, 999_999_999))]) == \
        2_999_999_999
    assert ts.rx_stamp_ns([]) is None
    assert ts.rx_stamp_ns([(socket.SOL_SOCKET, ts.SCM_TIMESTAMPING, bytes(48))]) is None   # no software stamp
    assert ts.rx_stamp_ns([(socket.IPPROTO_IP, ts.SCM_TIMESTAMPNS, TS.pack(1, 1))]) is None  # wrong level
    assert ts.timespec_ns(TS.pack(0, 0) + TS.pack(3, 4), 1) == 3_000_000_004


def test_tx_stamp_needs_the_stamp_and_a_timestamping_extended_error() -> None:
    stamp = (socket.SOL_SOCKET, ts.SCM_TIMESTAMPING, _stamping(10, 20))
    assert ts.tx_stamp([stamp, (socket.IPPROTO_IP, ts.IP_RECVERR, _ee(29))]) == (29, 10_000_000_020)
    assert ts.tx_stamp([stamp, (socket.IPPROTO_IPV6, ts.IPV6_RECVERR, _ee(7))]) == (7, 10_000_000_020)
    assert ts.tx_stamp([stamp]) is None
    assert ts.tx_stamp([stamp, (socket.IPPROTO_IP, ts.IP_RECVERR, _ee(29, origin=2))]) is None   # ICMP error
    assert ts.tx_stamp([stamp, (socket.IPPROTO_IP, ts.IP_RECVERR, _ee(29, info=2))]) is None     # an ACK stamp


def test_tx_key_is_the_offset_of_the_last_byte() -> None:
    assert ts.tx_key(0, 10) == 9
    assert ts.tx_key(10, 20) == 29
    assert ts.tx_key(2**32 - 5, 10) == 4         # ee_data is 32 bits


def test_clock_offset_maps_realtime_onto_monotonic() -> None:
    off = ts.ClockOffset()
    now_mono = time.monotonic_ns()
    assert abs(off.to_monotonic(time.time_ns()) - now_mono) < 5_000_000


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    client = socket.create_connection(srv.getsockname())
    server, _ = srv.accept()
    srv.close()
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    yield client, server
    client.close()
    server.close()


def test_rx_stamps_on_loopback_precede_the_read(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    ts.enable_rx(server)
    buf = bytearray(4096)
    # the kernel turns stamping on through a deferred static key: while no other socket had it on, the
    # first packet after enabling may come without a stamp
    client.sendall(b"warm-up")
    time.sleep(0.01)
    ts.recv_stamped(server, buf)
    for i in range(20):
        client.sendall(b"frame %d" % i)
        time.sleep(0.001)
        n, stamp = ts.recv_stamped(server, buf)
        t_user = time.time_ns()
        assert bytes(buf[:n]) == b"frame %d" % i
        assert stamp is not None and t_user - 1_000_000_000 < stamp <= t_user
    # the ioctls that would give the stamp after a plain recv answer ENOENT on TCP (see the module)
    client.sendall(b"x")
    time.sleep(0.001)
    assert server.recv(10) == b"x"
    assert ts.ioctl_stamp_ns(server) is None


def test_tx_stamps_arrive_for_every_send_with_its_byte_offset(pair: tuple[socket.socket, socket.socket]
                                                             ) -> None:
    client, server = pair
    ts.enable_tx(client)
    sizes = [10, 20, 300, 1]
    sent = 0
    keys = {}
    for size in sizes:
        before = time.time_ns()
        client.sendall(b"y" * size)
        after = time.time_ns()
        keys[ts.tx_key(sent, size)] = (before, after)
        sent += size
    stamps = ts.read_tx_stamps(client)
    assert [k for k, _ in stamps] == list(keys)
    for key, ns in stamps:
        before, after = keys[key]
        assert before <= ns <= after        # on loopback the stamp is taken inside the send call
    assert ts.read_tx_stamps(client) == []
    assert server.recv(sent, socket.MSG_WAITALL) == b"y" * sent


def test_recvmsg_reader_feeds_the_protocol_with_stamps() -> None:
    """A uvloop transport's reading taken over: same bytes, same EOF, a stamp before each read's bytes."""

    async def main() -> tuple[list[tuple[bytes, int, int]], bool]:
        loop = asyncio.get_running_loop()
        got: list[tuple[bytes, int, int]] = []
        eof = loop.create_future()

        class Proto(asyncio.Protocol):
            reader: ts.RecvmsgReader | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.reader = ts.RecvmsgReader(transport, self)   # type: ignore[arg-type]

            def data_received(self, data: bytes) -> None:
                assert self.reader is not None
                got.append((data, self.reader.last_rx_ns, time.time_ns()))

            def eof_received(self) -> bool:
                eof.set_result(True)
                return False

            def connection_lost(self, exc: Exception | None) -> None:
                if self.reader is not None:
                    self.reader.close()

        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        tr, _proto = await loop.create_connection(Proto, *srv.getsockname())
        peer, _ = srv.accept()
        srv.close()
        for i in range(5):
            peer.sendall(b"msg%d" % i)
            await asyncio.sleep(0.005)
        tr.write(b"back")                      # writing stays the transport's
        await asyncio.sleep(0.005)
        assert peer.recv(10) == b"back"
        peer.close()
        await asyncio.wait_for(eof, 5)
        await asyncio.sleep(0.01)
        return got, tr.is_closing()

    got, closed = uvloop.run(main())
    assert b"".join(d for d, _, _ in got) == b"msg0msg1msg2msg3msg4"
    for _data, stamp, t_user in got:
        assert 0 < stamp <= t_user
    assert closed
