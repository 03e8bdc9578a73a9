"""A separate process for the shared-memory tests: produces or consumes over fastmm's channels.

Run as ``python peer.py <role> <instance> <channel> [args]``; prints one JSON line with what it saw.
Records carry a payload derived from their index so that the other side can check every word.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np

from fastmm.shm import EventRing, LatestValue
from fastmm.shm import segment as sg
from fastmm.shm.records import FILL, TOP_OF_BOOK, seal, verify

MUL = 0x9E3779B1


def fill_payload(ring: EventRing, i: int) -> None:
    tx = ring.tx
    tx["t_pub"] = i
    tx["px_e8"] = i * MUL
    tx["qty_e8"] = i ^ 0x5555
    tx["fee_e8"] = -i


def check_payload(rx: np.ndarray, i: int) -> bool:
    r = rx[0]
    return (int(r["t_pub"]) == i and int(r["px_e8"]) == i * MUL and int(r["qty_e8"]) == i ^ 0x5555
            and int(r["fee_e8"]) == -i and int(r["seq"]) == i)


def ring_produce(instance: str, channel: str, n: int, start: int = 1, timeout: float = 10.0) -> dict:
    ring = EventRing.attach(instance, channel, FILL)
    ring.claim_producer()
    for i in range(start, start + n):
        fill_payload(ring, i)
        if not ring.push():
            ring.put(ring.tx[0], timeout_s=timeout)
    return {"produced": n}


def ring_consume(instance: str, channel: str, n: int, wait: str) -> dict:
    ring = EventRing.attach(instance, channel, FILL, wait=wait)  # type: ignore[arg-type]
    ring.claim_consumer()
    expected = ring._read + 1
    bad = 0
    got = 0
    print(json.dumps({"ready": True}), flush=True)
    while got < n:
        if not ring.pop():
            if not ring.wait(10.0):
                break
            continue
        if not check_payload(ring.rx, expected):
            bad += 1
        expected += 1
        got += 1
    return {"consumed": got, "bad": bad, "last": expected - 1}


def ring_die_mid_write(instance: str, channel: str, n: int) -> dict:
    """Publish n records, then write half of the next one and die by SIGKILL before publishing it."""
    ring = EventRing.attach(instance, channel, FILL)
    ring.claim_producer()
    for i in range(1, n + 1):
        fill_payload(ring, i)
        assert ring.push()
    slot = ring.try_claim()
    assert slot is not None
    slot["t_pub"] = 999_999
    slot["px_e8"] = 12345
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def latest_write(instance: str, channel: str, n: int) -> dict:
    lv = LatestValue.attach(instance, channel, TOP_OF_BOOK)
    lv.claim_writer()
    tx = lv.tx
    for i in range(1, n + 1):
        tx["t_recv"] = i
        tx["bid_px"] = np.arange(i, i + 5)
        tx["ask_px"] = np.arange(i + 10, i + 15)
        tx["venue_seq"] = i * 3
        seal(tx)
        lv.publish()
    return {"written": n}


def latest_read(instance: str, channel: str, min_reads: int) -> dict:
    lv = LatestValue.attach(instance, channel, TOP_OF_BOOK, wait="spin")
    torn = reads = backwards = 0
    last = 0
    print(json.dumps({"ready": True}), flush=True)
    stop_after = int(os.environ.get("PEER_STOP_AT", "0"))
    while reads < min_reads or (stop_after and last < stop_after):
        seq = lv.read()
        if seq <= 0:
            continue
        reads += 1
        rx = lv.rx
        if not verify(rx) or int(rx["seq"][0]) != seq:
            torn += 1
        if seq < last:
            backwards += 1
        last = seq
    return {"reads": reads, "torn": torn, "backwards": backwards, "last": last}


def latest_die_mid_write(instance: str, channel: str) -> dict:
    """Start a write (counter odd, half a record) and die by SIGKILL: what a crash mid-publish leaves."""
    lv = LatestValue.attach(instance, channel, TOP_OF_BOOK)
    lv.claim_writer()
    seq = lv.q[sg.W_WRITE]
    lv.q[sg.W_WRITE] = seq + 1
    lv.slots[0]["t_recv"] = -1
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def main(argv: list[str]) -> int:
    role, instance, channel, *rest = argv
    if role == "ring-produce":
        out = ring_produce(instance, channel, int(rest[0]), int(rest[1]) if len(rest) > 1 else 1)
    elif role == "ring-consume":
        out = ring_consume(instance, channel, int(rest[0]), rest[1])
    elif role == "ring-die":
        out = ring_die_mid_write(instance, channel, int(rest[0]))
    elif role == "latest-write":
        out = latest_write(instance, channel, int(rest[0]))
    elif role == "latest-read":
        out = latest_read(instance, channel, int(rest[0]))
    elif role == "latest-die":
        out = latest_die_mid_write(instance, channel)
    else:
        raise SystemExit(f"unknown role {role}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
