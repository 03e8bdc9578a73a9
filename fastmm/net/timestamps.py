"""Kernel software timestamps on TCP sockets (Linux): when a packet reached the kernel, when bytes left it.

What the engine owns is "packet in the kernel -> order bytes handed to the kernel"; user-space stamps
taken after a read or a write also carry the wake-up of whoever reads or writes. This module turns the
kernel's own stamps on and reads them back:

* receive: ``SO_TIMESTAMPNS`` makes the kernel stamp every packet as it arrives (``CLOCK_REALTIME``);
  on a TCP socket the stamp only comes back as ancillary data of ``recvmsg`` (the stamp of the last
  packet the call read; the kernel switches stamping on through a deferred static key, so while no
  other socket has it on, a packet right after enabling may come without one). ``SIOCGSTAMPNS`` and
  ``SIOCGSTAMP`` after a plain ``recv`` do not work on TCP: the
  kernel keeps ``sk_stamp`` for datagram sockets only, and the ioctls answer ENOENT (checked on this
  kernel by ``tests/net/test_timestamps.py``). asyncio and uvloop transports read with ``recv``/``read``,
  so :class:`RecvmsgReader` takes over a transport's reading (the transport paused, ``recvmsg`` on a
  duplicate of its descriptor, the same ``data_received`` calls) for a harness that wants the stamps;
* transmit: ``SO_TIMESTAMPING`` with ``TX_SOFTWARE | SOFTWARE | OPT_ID | OPT_TSONLY`` (and ``OPT_ID_TCP``
  where the kernel has it) queues one stamp per ``send`` on the socket's error queue, taken as the device
  takes the packet (on loopback, inside the ``send`` call). ``ee_data`` of the stamp is the offset of the
  send's last byte counted from when stamping was turned on, which is how a stamp is matched to a send.
  A socket with stamps waiting reports EPOLLERR, so whoever enables them drains the queue promptly
  (:func:`read_tx_stamps`).

The decoders (ancillary bytes -> ns) are pure; the stamps are ``CLOCK_REALTIME`` ns, and
:class:`ClockOffset` moves them onto ``CLOCK_MONOTONIC``, the clock of every other stamp in the engine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Iterable
from typing import Any, Protocol

# <asm-generic/socket.h>, <linux/net_tstamp.h>, <linux/errqueue.h>: the values on 64-bit Linux.
SO_TIMESTAMPNS = 35              # SO_TIMESTAMPNS_OLD: a 64-bit timespec on 64-bit hosts
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_TIMESTAMPING = 37             # SO_TIMESTAMPING_OLD
SCM_TIMESTAMPING = SO_TIMESTAMPING
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
SOF_TIMESTAMPING_OPT_ID_TCP = 1 << 16       # Linux 6.2: the id counts from the next byte written
MSG_ERRQUEUE = 0x2000
IP_RECVERR = 11
IPV6_RECVERR = 25
SO_EE_ORIGIN_TIMESTAMPING = 4
SCM_TSTAMP_SND = 0
SIOCGSTAMPNS = 0x8907

TX_FLAGS = (SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID
            | SOF_TIMESTAMPING_OPT_TSONLY)
RX_FLAGS = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE

_TIMESPEC = struct.Struct("=qq")                 # struct timespec on 64-bit Linux
_EXTENDED_ERR = struct.Struct("=IBBBBII")        # struct sock_extended_err
ANC_BUFSIZE = socket.CMSG_SPACE(3 * _TIMESPEC.size) + socket.CMSG_SPACE(_EXTENDED_ERR.size + 16) + 64

Ancillary = Iterable[tuple[int, int, bytes]]


# -- pure decoding ------------------------------------------------------------------------------------
def timespec_ns(data: bytes, index: int = 0) -> int:
    """The ``index``-th ``struct timespec`` of ``data`` in ns (0 when the kernel left it empty)."""
    sec, nsec = _TIMESPEC.unpack_from(data, index * _TIMESPEC.size)
    return int(sec) * 1_000_000_000 + int(nsec)


def rx_stamp_ns(ancillary: Ancillary) -> int | None:
    """The receive stamp in a ``recvmsg`` answer (``SCM_TIMESTAMPNS``, or the software stamp of
    ``SCM_TIMESTAMPING``), CLOCK_REALTIME ns; None when the answer carries none."""
    for level, kind, data in ancillary:
        if level != socket.SOL_SOCKET:
            continue
        if kind == SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            return timespec_ns(data) or None
        if kind == SCM_TIMESTAMPING and len(data) >= 3 * _TIMESPEC.size:
            return timespec_ns(data, 0) or None
    return None


def tx_stamp(ancillary: Ancillary) -> tuple[int, int] | None:
    """``(id, ns)`` of one error-queue message: the software transmit stamp (CLOCK_REALTIME) and the
    ``ee_data`` id of the send it belongs to (on TCP, the offset of the send's last byte). None for an
    error-queue message that is not a software transmit stamp (a real error, a scheduler or ACK stamp)."""
    ns = key = None
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING and len(data) >= 3 * _TIMESPEC.size:
            ns = timespec_ns(data, 0)
        elif ((level, kind) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR))
              and len(data) >= _EXTENDED_ERR.size):
            _errno, origin, _type, _code, _pad, info, ee_data = _EXTENDED_ERR.unpack_from(data)
            if origin == SO_EE_ORIGIN_TIMESTAMPING and info == SCM_TSTAMP_SND:
                key = ee_data
    if ns and key is not None:
        return key, ns
    return None


def tx_key(bytes_before: int, nbytes: int) -> int:
    """The ``ee_data`` id the kernel gives the stamp of a TCP send of ``nbytes`` after ``bytes_before``
    bytes written since stamping was enabled: the offset of its last byte, modulo 2**32."""
    return (bytes_before + nbytes - 1) & 0xFFFF_FFFF


class ClockOffset:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, re-measured at most every ``every_ns``: the two clocks run at one
    rate (NTP slews both) and move apart only when the wall clock is stepped."""

    def __init__(self, every_ns: int = 1_000_000_000) -> None:
        self.every_ns = every_ns
        self._at = -every_ns - 1
        self._offset = 0

    @staticmethod
    def measure(tries: int = 8) -> int:
        """The reading with the narrowest bracket of two monotonic reads out of ``tries`` (error: half that
        bracket, tens of ns; one reading preempted between its reads would be off by the preemption)."""
        best_gap, best = 1 << 62, 0
        for _ in range(tries):
            m1 = time.monotonic_ns()
            r = time.time_ns()
            m2 = time.monotonic_ns()
            if m2 - m1 < best_gap:
                best_gap, best = m2 - m1, r - (m1 + m2) // 2
        return best

    def to_monotonic(self, realtime_ns: int) -> int:
        now = time.monotonic_ns()
        if now - self._at > self.every_ns:
            self._offset = self.measure()
            self._at = now
        return realtime_ns - self._offset


# -- sockets ------------------------------------------------------------------------------------------
class _Sock(Protocol):
    def setsockopt(self, level: int, optname: int, value: int, /) -> None: ...


def enable_rx(sock: _Sock) -> None:
    """Stamp every packet this socket receives (read back with :func:`recv_stamped`)."""
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def enable_tx(sock: _Sock) -> bool:
    """Queue a software transmit stamp for every send on this socket's error queue (read back with
    :func:`read_tx_stamps`); ids count bytes from now. True when the kernel took ``OPT_ID_TCP`` (ids
    count from the next byte written); without it (before Linux 6.2) they count from the oldest
    unacknowledged byte, the same thing when nothing is in flight."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, TX_FLAGS | SOF_TIMESTAMPING_OPT_ID_TCP)
        return True
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, TX_FLAGS)
        return False


def recv_stamped(sock: socket.socket, buf: bytearray | memoryview) -> tuple[int, int | None]:
    """``recvmsg`` into ``buf``: (bytes read, the kernel's receive stamp of the last packet read, or
    None). Raises what ``recvmsg`` raises (BlockingIOError on a non-blocking socket with nothing)."""
    n, anc, _flags, _addr = sock.recvmsg_into([buf], ANC_BUFSIZE)
    return n, rx_stamp_ns(anc)


def read_tx_stamps(sock: socket.socket, limit: int = 1024) -> list[tuple[int, int]]:
    """Drain the error queue without blocking: every software transmit stamp waiting, ``(id, ns)``."""
    out = []
    for _ in range(limit):
        try:
            _data, anc, _flags, _addr = sock.recvmsg(0, ANC_BUFSIZE, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            break
        stamp = tx_stamp(anc)
        if stamp is not None:
            out.append(stamp)
    return out


def duplicate(transport_socket: Any) -> socket.socket:
    """A full ``socket.socket`` on the socket behind a transport (uvloop hands out a pseudo-socket
    without ``recvmsg``): a duplicate descriptor, non-blocking, closed by the caller."""
    dup = socket.socket(fileno=os.dup(transport_socket.fileno()))
    dup.setblocking(False)
    return dup


class _Transport(Protocol):
    def pause_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


class _Receiver(Protocol):
    def data_received(self, data: bytes) -> None: ...
    def eof_received(self) -> bool | None: ...


class RecvmsgReader:
    """Reads a connected stream transport's socket with ``recvmsg`` in its place, to see the kernel's
    receive stamps that ``recv`` drops. The transport stays for writing and closing; its reading is
    paused and this reader, on a duplicate descriptor registered with the loop, calls the protocol's
    ``data_received``/``eof_received`` as the transport would. ``last_rx_ns`` is the stamp (CLOCK_REALTIME)
    of the last packet of the last read, set before ``data_received`` runs. Flow control: the protocol's
    pause/resume go to :meth:`pause_reading`/:meth:`resume_reading` here (the owner wires them).

    For measurement only: a Python-level read costs a few microseconds more than the transport's own."""

    def __init__(self, transport: _Transport, protocol: _Receiver, bufsize: int = 256 * 1024) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport = transport
        self.protocol = protocol
        self.sock = duplicate(transport.get_extra_info("socket"))
        enable_rx(self.sock)
        self.last_rx_ns = 0
        self.reads = 0
        self._buf = bytearray(bufsize)
        self._view = memoryview(self._buf)
        self._reading = False
        transport.pause_reading()
        self.resume_reading()

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.sock.fileno())

    def resume_reading(self) -> None:
        if not self._reading and self.sock.fileno() >= 0:
            self._reading = True
            self.loop.add_reader(self.sock.fileno(), self._on_readable)

    def close(self) -> None:
        """Stop reading and close the duplicate (the socket itself closes with the transport)."""
        self.pause_reading()
        self.sock.close()

    def _on_readable(self) -> None:
        try:
            n, stamp = recv_stamped(self.sock, self._view)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            self.transport.abort()
            return
        if n == 0:
            self.close()
            if not self.protocol.eof_received():
                self.transport.close()
            return
        self.reads += 1
        self.last_rx_ns = stamp or 0
        self.protocol.data_received(bytes(self._view[:n]))


def ioctl_stamp_ns(sock: socket.socket) -> int | None:
    """``SIOCGSTAMPNS``: the stamp of the last packet read, where the kernel keeps one (datagram
    sockets); None where it answers ENOENT (TCP, see the module docstring)."""
    import fcntl

    buf = bytearray(_TIMESPEC.size)
    try:
        fcntl.ioctl(sock.fileno(), SIOCGSTAMPNS, buf)
    except OSError:
        return None
    return timespec_ns(bytes(buf))


__all__ = ["ANC_BUFSIZE", "MSG_ERRQUEUE", "RX_FLAGS", "SCM_TIMESTAMPING", "SCM_TIMESTAMPNS",
           "SO_TIMESTAMPING", "SO_TIMESTAMPNS", "TX_FLAGS", "ClockOffset", "RecvmsgReader", "duplicate",
           "enable_rx", "enable_tx", "ioctl_stamp_ns", "read_tx_stamps", "recv_stamped", "rx_stamp_ns",
           "timespec_ns", "tx_key", "tx_stamp"]
