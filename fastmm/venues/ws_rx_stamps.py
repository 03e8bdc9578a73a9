"""Kernel receive stamps for the WebSocket feeds, for a harness that asks (``bench/latency``).

The feed's client reads through websockets on an asyncio/uvloop transport, which reads with ``recv`` and
so drops the kernel's stamps (and the ``SIOCGSTAMPNS`` ioctl after the read answers ENOENT on TCP, see
:mod:`fastmm.net.timestamps`). :class:`StampedClientConnection` is websockets' own client connection with
its reading done by :class:`~fastmm.net.timestamps.RecvmsgReader`: the same bytes reach the same
``data_received``, and every complete data message keeps the stamp of the read that completed it (the
last packet of that read: for a message whose packets came in earlier, an upper bound). The client's
code does not change: :class:`RxStampLog` is the ``stamper`` a :class:`~fastmm.venues.ws_feed.WsFeedClient`
takes, and production runs without one. :class:`~fastmm.venues.ws_feed.WsFeedClient` (websockets' sans-I/O
core on a plain asyncio protocol) needs no connection class: :meth:`RxStampLog.reader` takes over its
transport's reading the same way, and each message, handed to the codec inside the ``data_received`` of
the read that completed it, carries that read's stamp.
"""

from __future__ import annotations

import asyncio
import json
from array import array
from collections import deque
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import DATA_OPCODES, Frame

from fastmm.net.timestamps import ClockOffset, RecvmsgReader


class _FlowControl:
    """The transport as websockets sees it: writes and closes go to the real one, pausing and resuming the
    reading go to the reader that replaced its reading."""

    def __init__(self, transport: Any, reader: RecvmsgReader) -> None:
        self._transport = transport
        self._reader = reader

    def pause_reading(self) -> None:
        self._reader.pause_reading()

    def resume_reading(self) -> None:
        self._reader.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class StampedClientConnection(ClientConnection):
    """websockets' client connection, read with ``recvmsg``; after each :meth:`recv`, ``message_rx_ns`` is
    the kernel's receive stamp of that message (CLOCK_REALTIME ns; 0 if the kernel gave none)."""

    rx_reader: RecvmsgReader | None = None
    message_rx_ns = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._rx_stamps: deque[int] = deque()
        self.rx_reader = RecvmsgReader(transport, self)   # type: ignore[arg-type]
        super().connection_made(_FlowControl(transport, self.rx_reader))   # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.rx_reader is not None:
            self.rx_reader.close()
        super().connection_lost(exc)

    def process_event(self, event: Any) -> None:
        super().process_event(event)
        if isinstance(event, Frame) and event.opcode in DATA_OPCODES and event.fin:
            assert self.rx_reader is not None
            self._rx_stamps.append(self.rx_reader.last_rx_ns)

    async def recv(self, decode: bool | None = None) -> Any:
        msg = await super().recv(decode)
        self.message_rx_ns = self._rx_stamps.popleft() if self._rx_stamps else 0
        return msg


class RxStampLog:
    """The feed's frames as ``(t_recv, t_kernel_rx)`` pairs on CLOCK_MONOTONIC (``t_recv``: the client's
    stamp after the read, which the published record carries; ``t_kernel_rx``: 0 when unknown)."""

    connection = StampedClientConnection

    def reader(self, transport: Any, protocol: Any) -> RecvmsgReader:
        """For :class:`~fastmm.venues.ws_feed.WsFeedClient`: take over the transport's reading with
        ``recvmsg``; the client reads ``last_rx_ns`` for each message it completes."""
        return RecvmsgReader(transport, protocol)

    def __init__(self) -> None:
        self.pairs = array("q")
        self._offset = ClockOffset()

    def frame(self, ws: Any, t_recv_ns: int) -> None:
        rx = getattr(ws, "message_rx_ns", 0)
        self.pairs.extend((t_recv_ns, self._offset.to_monotonic(rx) if rx else 0))

    def dump(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"fields": ["t_recv", "t_kernel_rx"], "pairs": self.pairs.tolist()}))
        tmp.replace(path)
