"""One-way latency between two processes: fastmm's event ring against a floor and the usual IPC.

Rows, all measured in this run on this machine:
  floor     a bare numpy record in posix_ipc shared memory, read by busy polling (what the hardware
            and Python allow at best)
  spin      fastmm's EventRing, consumer busy-polling
  block     fastmm's EventRing, consumer sleeping on the eventfd
  mp_queue  multiprocessing.Queue
  pipe      os.pipe, blocking read
  block_untuned  the block row again without the host tuning below (only when it was applied)

Host tuning: like ``fastmm.shm.wait.hold_cpu_dma_latency(0)`` (ops/host-tuning.md), the benchmark holds
/dev/cpu_dma_latency at 0 when it may (root), so a sleeping consumer's CPU stays out of deep idle states;
``--host-default`` leaves the host alone. The table says which applied.

The producer stamps ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, one clock for every process) into each
message and paces messages ``--gap-us`` apart so that every message meets an empty channel (latency, not
throughput); it busy-waits between messages for the polling rows and sleeps for the blocking ones (a
busy producer would starve multiprocessing.Queue's feeder thread on its own CPU). Every consumer stamps
the moment it learns a message is there (the floor and the rings stamp before copying the record out,
the queue and the pipe once the call returns), and subtracts the producer's stamp. The first
``--warmup`` messages are dropped. Absolute figures drift on shared machines; the ratios to the floor
and to multiprocessing.Queue measured in the same run are what to compare.

    python bench/ring_latency.py [--n 20000] [--gap-us 100] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import posix_ipc

from fastmm.shm import EventRing, unlink_instance
from fastmm.shm.records import FILL
from fastmm.shm.wait import hold_cpu_dma_latency

ROWS = ("floor", "spin", "block", "mp_queue", "pipe", "block_untuned")
STOP = -1
FLOOR_DTYPE = np.dtype([("count", "<u8"), ("t_send", "<i8")])


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _busy_until(t_ns: int) -> None:
    while time.perf_counter_ns() < t_ns:
        pass


# -- consumers (run in the child process) ---------------------------------------------------------
def _consume_floor(shm_name: str, total: int, out: np.ndarray) -> None:
    shm = posix_ipc.SharedMemory(shm_name)
    import mmap

    mm = mmap.mmap(shm.fd, shm.size)
    shm.close_fd()
    rec = np.frombuffer(mm, FLOOR_DTYPE, count=1)
    seen = 0
    clock = time.perf_counter_ns
    while seen < total:
        while rec["count"][0] == seen:
            pass
        now = clock()
        out[seen] = now - rec["t_send"][0]
        seen += 1
    del rec


def _consume_ring(instance: str, wait: str, total: int, out: np.ndarray) -> None:
    ring = EventRing.attach(instance, f"bench.{wait}", FILL, wait=wait)  # type: ignore[arg-type]
    ring.claim_consumer()
    clock = time.perf_counter_ns
    rx = ring.rx
    pop = ring.pop
    wait_for = ring.wait
    for i in range(total):
        wait_for(None)   # spin: polls the write cursor; block: sleeps on the eventfd
        now = clock()
        pop()
        out[i] = now - rx["t_pub"][0]
    ring.close()


def _consume_queue(q: mp.Queue, total: int, out: np.ndarray) -> None:
    clock = time.perf_counter_ns
    for i in range(total):
        t_send = q.get()
        out[i] = clock() - t_send


def _consume_pipe(fd: int, total: int, out: np.ndarray) -> None:
    clock = time.perf_counter_ns
    for i in range(total):
        data = os.read(fd, 8)
        while len(data) < 8:
            data += os.read(fd, 8 - len(data))
        out[i] = clock() - int.from_bytes(data, "little", signed=True)


def _consumer_main(row: str, arg: object, total: int, cpu: int | None, result: str,
                   ready: mp.synchronize.Event) -> None:
    _pin(cpu)
    out = np.zeros(total, np.int64)
    ready.set()
    if row == "floor":
        _consume_floor(str(arg), total, out)
    elif row in ("spin", "block", "block_untuned"):
        _consume_ring(str(arg), "spin" if row == "spin" else "block", total, out)
    elif row == "mp_queue":
        _consume_queue(arg, total, out)  # type: ignore[arg-type]
    else:
        _consume_pipe(int(arg), total, out)  # type: ignore[arg-type]
    np.save(result, out)


# -- producers (this process) ---------------------------------------------------------------------
def _run_row(row: str, total: int, gap_ns: int, cpus: tuple[int | None, int | None], tmp: Path) -> np.ndarray:
    ctx = mp.get_context("fork")
    instance = f"bench{os.getpid()}"
    result = str(tmp / f"{row}.npy")
    ready = ctx.Event()
    clock = time.perf_counter_ns
    cleanup: list = []
    if row == "floor":
        name = f"/fastmm.{instance}.floor"
        shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, size=4096)
        import mmap

        mm = mmap.mmap(shm.fd, shm.size)
        shm.close_fd()
        rec = np.frombuffer(mm, FLOOR_DTYPE, count=1)
        arg: object = name
        cleanup.append(lambda: posix_ipc.unlink_shared_memory(name))

        def send(i: int) -> None:
            rec["t_send"][0] = clock()
            rec["count"][0] = i + 1
    elif row in ("spin", "block", "block_untuned"):
        wait = "spin" if row == "spin" else "block"
        ring = EventRing.create(instance, f"bench.{wait}", FILL, capacity=1024, wait=wait)
        ring.claim_producer()
        arg = instance
        tx = ring.tx
        push = ring.push
        cleanup.append(lambda: unlink_instance(instance))

        def send(i: int) -> None:
            tx["t_pub"][0] = clock()
            push()
    elif row == "mp_queue":
        q = ctx.Queue()
        arg = q

        def send(i: int) -> None:
            q.put(clock())
    else:
        r, w = os.pipe()
        arg = r
        cleanup.append(lambda: (os.close(r), os.close(w)))

        def send(i: int) -> None:
            os.write(w, clock().to_bytes(8, "little", signed=True))

    child = ctx.Process(target=_consumer_main, args=(row, arg, total, cpus[1], result, ready), daemon=True)
    child.start()
    try:
        if not ready.wait(30):
            raise RuntimeError(f"{row}: consumer did not start")
        time.sleep(0.05)
        t_next = clock()
        polling = row in ("floor", "spin", "block", "block_untuned")
        for i in range(total):
            if polling:
                _busy_until(t_next)
            else:
                time.sleep(gap_ns / 1e9)
            send(i)
            t_next = clock() + gap_ns
        child.join(60)
        if child.exitcode != 0:
            raise RuntimeError(f"{row}: consumer exited with {child.exitcode}")
        return np.load(result)
    finally:
        if child.is_alive():
            child.kill()
            child.join(10)
        for fn in cleanup:
            fn()


def _stats(lat_ns: np.ndarray) -> dict[str, float]:
    us = lat_ns / 1000.0
    p50, p99, p999 = np.percentile(us, [50, 99, 99.9])
    return {"p50_us": round(float(p50), 3), "p99_us": round(float(p99), 3), "p999_us": round(float(p999), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="messages per row, after warm-up")
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--gap-us", type=float, default=100.0, help="pause between messages")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--no-pin", action="store_true", help="do not pin producer and consumer to CPUs 0 and 1")
    ap.add_argument("--host-default", action="store_true",
                    help="do not hold /dev/cpu_dma_latency at 0 during the run")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    qos_fd = None if args.host_default else hold_cpu_dma_latency(0)
    if qos_fd is None and "block_untuned" in rows:
        rows.remove("block_untuned")
    for r in rows:
        if r not in ROWS:
            ap.error(f"unknown row {r}; rows are {', '.join(ROWS)}")
    cpus: tuple[int | None, int | None] = (None, None)
    avail = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(avail) >= 2:
        cpus = (avail[0], avail[1])
    _pin(cpus[0])
    total = args.n + args.warmup
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            if row == "block_untuned" and qos_fd is not None:
                os.close(qos_fd)
                qos_fd = None
            lat = _run_row(row, total, int(args.gap_us * 1000), cpus, Path(tmp))
            results[row] = _stats(lat[args.warmup:])
    if qos_fd is not None:
        os.close(qos_fd)
    tuned = "block_untuned" in results or (not args.host_default and hold_cpu_dma_latency(0) is not None)
    pinning = f"CPUs {cpus[0]}->{cpus[1]}" if cpus[0] is not None else "unpinned"
    print(f"one-way latency between two processes, {args.n} messages a row, {args.gap_us:g} us apart, "
          f"{pinning}, cpu_dma_latency {'held at 0' if tuned else 'host default'}")
    header = f"{'row':<9} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9} {'p50/floor':>10} {'p50/mp_queue':>13}"
    print(header)
    print("-" * len(header))
    floor = results.get("floor")
    queue = results.get("mp_queue")
    ratios: dict[str, dict[str, float]] = {}
    for row, st in results.items():
        vs_floor = st["p50_us"] / floor["p50_us"] if floor else float("nan")
        vs_queue = st["p50_us"] / queue["p50_us"] if queue else float("nan")
        ratios[row] = {"p50_vs_floor": round(vs_floor, 3), "p50_vs_mp_queue": round(vs_queue, 4)}
        print(f"{row:<9} {st['p50_us']:>9.2f} {st['p99_us']:>9.2f} {st['p999_us']:>9.2f} "
              f"{vs_floor:>10.2f} {vs_queue:>13.3f}")
    targets = []
    if floor and "spin" in results:
        targets.append(("spin p50 <= 1.5x floor p50", results["spin"]["p50_us"] <= 1.5 * floor["p50_us"]))
    if "block" in results:
        targets.append(("block p99 <= 20 us", results["block"]["p99_us"] <= 20.0))
    if queue and "spin" in results:
        targets.append(("spin p50 >= 10x lower than mp_queue p50",
                        results["spin"]["p50_us"] * 10 <= queue["p50_us"]))
    for text, ok in targets:
        print(f"target {text}: {'met' if ok else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "rows": results, "ratios": ratios, "targets": dict(targets),
            "n": args.n, "gap_us": args.gap_us, "cpus": list(cpus), "cpu_dma_latency_0": tuned}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
