"""The floor under wire-to-wire: the engine's process topology with no work in it, on this machine.

Four processes, each a fresh interpreter like the engine's: a *writer* (the Coinbase simulator's place)
sends a 1,000-byte message with its CLOCK_MONOTONIC stamp over loopback TCP; *relay A* (the feed's
place: uvloop, reads the socket) puts the stamp into a pipe, which wakes *relay B* (the quoter's place:
uvloop, a reader on the pipe's fd as the quoter has on its eventfd) which writes a 100-byte message to
a second TCP connection; the *reader* (the TrueX simulator's place: uvloop) stamps its arrival. Nothing
parses, decides or encodes anything: what is left is the cost of waking three sleeping processes on this
machine's CPUs and kernel, which no code in the pipeline can go below.

With kernel stamps (``measure_all(..., kernel_stamps=True)``, as ``bench/latency`` asks), relay A reads its
socket with ``recvmsg`` for the kernel's receive stamp (:class:`fastmm.net.timestamps.RecvmsgReader`, as
the engine's stamped feed does) and relay B takes software transmit stamps on its socket: ``kernel`` is
"packet in the kernel at A -> bytes handed to the kernel by B", the floor under the engine's
``kernel_rx_to_tx``, without the writer's and reader's own wake-ups.

The writer is paced by the gaps the caller gives (``bench/latency`` passes the gaps between the
Coinbase frames of the run it just measured, so the floor sees the same idleness); every message goes
the whole way.

    python bench/floor.py [--gap-ms 10] [--n 1000] [--cpu-dma-latency]    # p50/p99/p99.9/max, us
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fastmm.latency import summarize
from fastmm.net.timestamps import ClockOffset, RecvmsgReader, duplicate, enable_tx, read_tx_stamps, tx_key

HERE = Path(__file__).resolve()
IN_SIZE = 1000     # bytes per message into the pipeline (a typical l2_data frame)
OUT_SIZE = 100     # bytes per message out of it (about one order message)
_STAMP = struct.Struct("<q")
_HOP = 3 * _STAMP.size          # relay A -> B: (writer's stamp, A's write to the pipe, A's kernel rx stamp)
_OUT = struct.Struct("<qqq")    # B -> reader: (writer's stamp, A's write, B's wake)
START_TIMEOUT_S = 30.0


def _listen() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    print(s.getsockname()[1], flush=True)
    return s


def _nodelay(s: socket.socket) -> None:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _writer() -> int:
    """Reads the gaps (JSON list of ns) from stdin, then sends one stamped message after each gap."""
    gaps = json.loads(sys.stdin.read())
    srv = _listen()
    srv.settimeout(START_TIMEOUT_S)
    conn, _ = srv.accept()
    _nodelay(conn)
    time.sleep(0.3)      # every process is up and asleep before the first message
    pad = b" " * (IN_SIZE - _STAMP.size)
    for gap in gaps:
        time.sleep(max(0, gap) / 1e9)
        conn.sendall(_STAMP.pack(time.monotonic_ns()) + pad)
    conn.sendall(_STAMP.pack(0) + pad)
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)         # until relay A closes
    return 0


async def _relay_a(port: int, pipe_w: int, kernel: bool) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    offset = ClockOffset()

    class In(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = bytearray()
            self.reader: RecvmsgReader | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if kernel:
                self.reader = RecvmsgReader(transport, self)  # type: ignore[arg-type]

        def data_received(self, data: bytes) -> None:
            rx = self.reader.last_rx_ns if self.reader is not None else 0
            t_rx = _STAMP.pack(offset.to_monotonic(rx) if rx else 0)
            buf = self.buf
            buf += data
            while len(buf) >= IN_SIZE:
                stamp = bytes(buf[:_STAMP.size])
                del buf[:IN_SIZE]
                os.write(pipe_w, stamp + _STAMP.pack(time.monotonic_ns()) + t_rx)
                if stamp == b"\0" * _STAMP.size and not done.done():
                    done.set_result(None)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.reader is not None:
                self.reader.close()
            if not done.done():
                done.set_result(None)

    tr, _ = await loop.create_connection(In, "127.0.0.1", port)
    _nodelay(tr.get_extra_info("socket"))
    await done
    tr.close()


async def _relay_b(port: int, pipe_r: int, kernel: bool) -> None:
    """Relays; with ``kernel``, prints the kernel rx -> tx of every message (ns, JSON) at the end."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    _nodelay(tr.get_extra_info("socket"))
    pad = b"x" * (OUT_SIZE - 3 * _STAMP.size)
    os.set_blocking(pipe_r, False)
    stamped = duplicate(tr.get_extra_info("socket")) if kernel else None
    if stamped is not None:
        enable_tx(stamped)
    offset = ClockOffset()
    written = 0
    pending: list[tuple[int, int]] = []      # (tx id, kernel rx at A) per message
    tx: dict[int, int] = {}

    def wake() -> None:
        nonlocal written
        t_wake = time.monotonic_ns()
        try:
            data = os.read(pipe_r, 8 * _HOP)
        except BlockingIOError:
            return
        for i in range(0, len(data) - _HOP + 1, _HOP):
            stamp = data[i:i + _STAMP.size]
            tr.write(data[i:i + 2 * _STAMP.size] + _STAMP.pack(t_wake) + pad)
            if stamped is not None and stamp != b"\0" * _STAMP.size:
                pending.append((tx_key(written, OUT_SIZE), _STAMP.unpack_from(data, i + 2 * _STAMP.size)[0]))
            written += OUT_SIZE
            if stamp == b"\0" * _STAMP.size and not done.done():
                done.set_result(None)
        if stamped is not None:      # drained at once, as the engine's trace does after a decision
            for key, ns in read_tx_stamps(stamped):
                tx[key] = offset.to_monotonic(ns)
        if not data and not done.done():
            done.set_result(None)

    loop.add_reader(pipe_r, wake)
    await done
    loop.remove_reader(pipe_r)
    tr.close()
    if stamped is not None:
        await asyncio.sleep(0.05)
        for key, ns in read_tx_stamps(stamped):
            tx[key] = offset.to_monotonic(ns)
        stamped.close()
        print(json.dumps([tx[k] - rx for k, rx in pending if rx and k in tx]), flush=True)


async def _reader() -> None:
    """Stamps each message's arrival; prints ``[wire, hop]`` pairs (ns; hop = relay A's pipe write to relay
    B's wake-up, the quoter's ``pub_to_wake``) as JSON when the end marker comes."""
    srv = _listen()
    srv.setblocking(False)
    loop = asyncio.get_running_loop()
    conn, _ = await asyncio.wait_for(loop.sock_accept(srv), START_TIMEOUT_S)
    _nodelay(conn)
    out: list[tuple[int, int]] = []
    done = loop.create_future()

    class Out(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = bytearray()

        def data_received(self, data: bytes) -> None:
            now = time.monotonic_ns()
            buf = self.buf
            buf += data
            while len(buf) >= OUT_SIZE:
                t, t_a, t_b = _OUT.unpack_from(buf)
                del buf[:OUT_SIZE]
                if t == 0:
                    if not done.done():
                        done.set_result(None)
                    return
                out.append((now - t, t_b - t_a))

        def connection_lost(self, exc: Exception | None) -> None:
            if not done.done():
                done.set_result(None)

    tr, _ = await loop.connect_accepted_socket(Out, conn)
    await done
    tr.close()
    print(json.dumps(out), flush=True)


def _child_main(argv: list[str]) -> int:
    role = argv[0]
    if role == "_writer":
        return _writer()
    import uvloop

    if role == "_relay_a":
        uvloop.run(_relay_a(int(argv[1]), int(argv[2]), argv[3:] == ["kernel"]))
    elif role == "_relay_b":
        uvloop.run(_relay_b(int(argv[1]), int(argv[2]), argv[3:] == ["kernel"]))
    elif role == "_reader":
        uvloop.run(_reader())
    else:
        raise SystemExit(f"unknown role {role}")
    return 0


@dataclass
class FloorSamples:
    """ns, in order: writer -> reader (``wire``), the pipe hop, and (with kernel stamps) the kernel's
    receive stamp at relay A -> transmit stamp at relay B (``kernel``; a message without both is left out)."""

    wire: list[int] = field(default_factory=list)
    hop: list[int] = field(default_factory=list)
    kernel: list[int] = field(default_factory=list)


def measure(gaps_ns: list[int], timeout_s: float | None = None) -> tuple[list[int], list[int]]:
    """Send one message after each gap through the empty pipeline: (wire-to-wire, hop) in ns, in order."""
    s = measure_all(gaps_ns, timeout_s)
    return s.wire, s.hop


def measure_all(gaps_ns: list[int], timeout_s: float | None = None, kernel_stamps: bool = False
                ) -> FloorSamples:
    """:func:`measure`, and with ``kernel_stamps`` the kernel figure too.

    Every process started here is ended here (by pid), also on failure."""
    if not gaps_ns:
        return FloorSamples()
    flag = ["kernel"] if kernel_stamps else []
    timeout = timeout_s if timeout_s is not None else sum(gaps_ns) / 1e9 + 60.0
    py = [sys.executable, str(HERE)]
    procs: list[subprocess.Popen[bytes]] = []
    pipe_r, pipe_w = os.pipe()
    try:
        reader = subprocess.Popen([*py, "_reader"], stdout=subprocess.PIPE)
        procs.append(reader)
        writer = subprocess.Popen([*py, "_writer"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(writer)
        assert reader.stdout is not None and writer.stdout is not None and writer.stdin is not None
        out_port = int(reader.stdout.readline())
        writer.stdin.write(json.dumps([int(g) for g in gaps_ns]).encode())
        writer.stdin.close()
        in_port = int(writer.stdout.readline())
        relay_b = subprocess.Popen([*py, "_relay_b", str(out_port), str(pipe_r), *flag], pass_fds=(pipe_r,),
                                   stdout=subprocess.PIPE)
        procs.append(relay_b)
        procs.append(subprocess.Popen([*py, "_relay_a", str(in_port), str(pipe_w), *flag],
                                      pass_fds=(pipe_w,)))
        os.close(pipe_r)
        os.close(pipe_w)
        pipe_r = pipe_w = -1
        line = _read_line(reader, timeout)
        kernel = json.loads(_read_line(relay_b, 30)) if kernel_stamps else []
        for p in procs:
            p.wait(timeout=10)
        pairs = json.loads(line)
        return FloorSamples([int(w) for w, _ in pairs], [int(h) for _, h in pairs], [int(k) for k in kernel])
    finally:
        for fd in (pipe_r, pipe_w):
            if fd >= 0:
                os.close(fd)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
            for f in (p.stdout, p.stdin):
                if f is not None:
                    f.close()


def _read_line(proc: subprocess.Popen[bytes], timeout_s: float) -> bytes:
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout_s):
            raise TimeoutError(f"floor pipeline: no result within {timeout_s:.0f} s")
        line = proc.stdout.readline()
    finally:
        sel.close()
    if not line:
        raise RuntimeError(f"floor pipeline: the reader exited ({proc.poll()}) without a result")
    return line


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("_"):
        return _child_main(argv)
    ap = argparse.ArgumentParser(prog="python bench/floor.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--gap-ms", type=float, default=10.0, help="time between messages")
    ap.add_argument("--n", type=int, default=1000, help="messages")
    ap.add_argument("--cpu-dma-latency", action="store_true",
                    help="hold /dev/cpu_dma_latency at 0 meanwhile (root): CPUs stay out of deep idle states")
    args = ap.parse_args(argv)
    if not (args.gap_ms >= 0 and 0 < args.n <= 1_000_000):
        print("floor: --gap-ms must be >= 0 and --n in 1..1000000", file=sys.stderr)
        return 2
    from fastmm.shm.wait import hold_cpu_dma_latency_or_say

    dma_fd = hold_cpu_dma_latency_or_say("floor") if args.cpu_dma_latency else None
    try:
        fs = measure_all([int(args.gap_ms * 1e6)] * args.n, kernel_stamps=True)
    finally:
        if dma_fd is not None:
            os.close(dma_fd)
    print(f"cpu_dma_latency held: {dma_fd is not None}")
    for name, values in (("wire to wire", fs.wire), ("hop (pipe wake)", fs.hop),
                         ("kernel rx -> tx", fs.kernel)):
        r = summarize(values)
        print(f"empty pipeline, gap {args.gap_ms} ms, {name}: n {r['count']} p50 {r['p50_us']:.1f} "
              f"p99 {r['p99_us']:.1f} p99.9 {r['p999_us']:.1f} max {r['max_us']:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
