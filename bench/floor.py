"""The floor under wire-to-wire: the engine's process topology with no work in it, on this machine.

Four processes, each a fresh interpreter like the engine's: a *writer* (the Coinbase simulator's place)
sends a 1,000-byte message with its CLOCK_MONOTONIC stamp over loopback TCP; *relay A* (the feed's
place: uvloop, reads the socket) puts the stamp into a pipe, which wakes *relay B* (the quoter's place:
uvloop, a reader on the pipe's fd as the quoter has on its eventfd) which writes a 100-byte message to
a second TCP connection; the *reader* (the TrueX simulator's place: uvloop) stamps its arrival. Nothing
parses, decides or encodes anything: what is left is the cost of waking three sleeping processes on this
machine's CPUs and kernel, which no code in the pipeline can go below.

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
from pathlib import Path

from fastmm.latency import summarize

HERE = Path(__file__).resolve()
IN_SIZE = 1000     # bytes per message into the pipeline (a typical l2_data frame)
OUT_SIZE = 100     # bytes per message out of it (about one order message)
_STAMP = struct.Struct("<q")
_HOP = 2 * _STAMP.size          # relay A -> B: (writer's stamp, A's write to the pipe)
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


async def _relay_a(port: int, pipe_w: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    class In(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = bytearray()

        def data_received(self, data: bytes) -> None:
            buf = self.buf
            buf += data
            while len(buf) >= IN_SIZE:
                stamp = bytes(buf[:_STAMP.size])
                del buf[:IN_SIZE]
                os.write(pipe_w, stamp + _STAMP.pack(time.monotonic_ns()))
                if stamp == b"\0" * _STAMP.size and not done.done():
                    done.set_result(None)

        def connection_lost(self, exc: Exception | None) -> None:
            if not done.done():
                done.set_result(None)

    tr, _ = await loop.create_connection(In, "127.0.0.1", port)
    _nodelay(tr.get_extra_info("socket"))
    await done
    tr.close()


async def _relay_b(port: int, pipe_r: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    _nodelay(tr.get_extra_info("socket"))
    pad = b"x" * (OUT_SIZE - 3 * _STAMP.size)
    os.set_blocking(pipe_r, False)

    def wake() -> None:
        t_wake = time.monotonic_ns()
        try:
            data = os.read(pipe_r, 8 * _HOP)
        except BlockingIOError:
            return
        for i in range(0, len(data) - _HOP + 1, _HOP):
            stamp = data[i:i + _STAMP.size]
            tr.write(data[i:i + _HOP] + _STAMP.pack(t_wake) + pad)
            if stamp == b"\0" * _STAMP.size and not done.done():
                done.set_result(None)
        if not data and not done.done():
            done.set_result(None)

    loop.add_reader(pipe_r, wake)
    await done
    loop.remove_reader(pipe_r)
    tr.close()


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
        uvloop.run(_relay_a(int(argv[1]), int(argv[2])))
    elif role == "_relay_b":
        uvloop.run(_relay_b(int(argv[1]), int(argv[2])))
    elif role == "_reader":
        uvloop.run(_reader())
    else:
        raise SystemExit(f"unknown role {role}")
    return 0


def measure(gaps_ns: list[int], timeout_s: float | None = None) -> tuple[list[int], list[int]]:
    """Send one message after each gap through the empty pipeline: (wire-to-wire, hop) in ns, in order.

    Every process started here is ended here (by pid), also on failure."""
    if not gaps_ns:
        return [], []
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
        procs.append(subprocess.Popen([*py, "_relay_b", str(out_port), str(pipe_r)], pass_fds=(pipe_r,)))
        procs.append(subprocess.Popen([*py, "_relay_a", str(in_port), str(pipe_w)], pass_fds=(pipe_w,)))
        os.close(pipe_r)
        os.close(pipe_w)
        pipe_r = pipe_w = -1
        line = _read_line(reader, timeout)
        for p in procs:
            p.wait(timeout=10)
        pairs = json.loads(line)
        return [int(w) for w, _ in pairs], [int(h) for _, h in pairs]
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
        wire, hop = measure([int(args.gap_ms * 1e6)] * args.n)
    finally:
        if dma_fd is not None:
            os.close(dma_fd)
    print(f"cpu_dma_latency held: {dma_fd is not None}")
    for name, values in (("wire to wire", wire), ("hop (pipe wake)", hop)):
        r = summarize(values)
        print(f"empty pipeline, gap {args.gap_ms} ms, {name}: n {r['count']} p50 {r['p50_us']:.1f} "
              f"p99 {r['p99_us']:.1f} p99.9 {r['p999_us']:.1f} max {r['max_us']:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
