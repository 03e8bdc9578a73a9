"""Shared-memory channels between real processes: lossless ring, untorn seqlock, crashes, cleanup."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastmm.shm import EventRing, LatestValue, RingFull, SegmentMissing, ShmError, list_segments
from fastmm.shm import segment as sg
from fastmm.shm.records import ALL_RECORDS, FILL, HEALTH, POSITION, TOP_OF_BOOK, seal, verify
from fastmm.units import to_e8


def test_every_record_is_aligned_and_sealable() -> None:
    for name, dt in ALL_RECORDS.items():
        assert dt.itemsize % 8 == 0, name
        assert dt.names[0] == "seq" and dt.names[-1] == "checksum", name
        rec = np.zeros(1, dt)
        seal(rec)
        assert verify(rec)
        raw = rec.view(np.uint8)
        raw[9] ^= 1   # flip one bit of the second word
        assert not verify(rec), name


def test_to_e8_is_exact() -> None:
    assert to_e8("60123.45") == 6012345000000
    assert to_e8("0.00000001") == 1
    with pytest.raises(ValueError):
        to_e8("0.000000001")


@pytest.mark.parametrize("wait", ["block", "spin"])
def test_million_records_in_order_across_processes(instance: str, peers, wait: str) -> None:
    n = 1_000_000 if wait == "block" else 200_000
    ring = EventRing.create(instance, "fills", FILL, capacity=1024, wait=wait)
    try:
        consumer = peers.start("ring-consume", instance, "fills", str(n), wait, fds=ring.inheritable_fds())
        peers.wait_ready(consumer)
        producer = peers.start("ring-produce", instance, "fills", str(n), fds=ring.inheritable_fds())
        assert peers.result(producer, timeout=100) == {"produced": n}
        got = peers.result(consumer, timeout=100)
        assert got == {"consumed": n, "bad": 0, "last": n}
        assert len(ring) == 0
    finally:
        ring.close()


def test_full_ring_applies_back_pressure_across_processes(instance: str, peers) -> None:
    ring = EventRing.create(instance, "fills", FILL, capacity=8, wait="block")
    try:
        ring.claim_consumer()
        producer = peers.start("ring-produce", instance, "fills", "100", fds=ring.inheritable_fds())
        deadline = time.monotonic() + 10
        while len(ring) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert len(ring) == 8, "the producer must stop at a full ring"
        assert producer.poll() is None, "the producer waits for room instead of overwriting"
        for i in range(1, 101):
            assert ring.wait(10.0)
            assert ring.pop()
            assert int(ring.rx["seq"][0]) == i and int(ring.rx["t_pub"][0]) == i
        assert peers.result(producer) == {"produced": 100}
    finally:
        ring.close()


def test_full_ring_fails_loudly_after_timeout(instance: str) -> None:
    ring = EventRing.create(instance, "fills", FILL, capacity=4, wait="spin")
    try:
        for _ in range(4):
            assert ring.try_put(ring.tx[0])
        assert not ring.try_put(ring.tx[0])
        assert ring.try_claim() is None
        with pytest.raises(RingFull, match="ring full"):
            ring.put(ring.tx[0], timeout_s=0.05)
        assert len(ring) == 4
        assert ring.pop() and int(ring.rx["seq"][0]) == 1
        assert ring.try_put(ring.tx[0])
    finally:
        ring.close()


def test_ring_capacity_must_be_power_of_two(instance: str) -> None:
    with pytest.raises(ValueError, match="power of two"):
        EventRing.create(instance, "fills", FILL, capacity=1000)


def test_latest_value_never_torn_under_concurrent_writes(instance: str, peers) -> None:
    lv = LatestValue.create(instance, "ref.coinbase", TOP_OF_BOOK, wait="spin")
    try:
        n = 300_000
        reader = peers.start("latest-read", instance, "ref.coinbase", "20000", env={"PEER_STOP_AT": str(n)})
        peers.wait_ready(reader)
        writer = peers.start("latest-write", instance, "ref.coinbase", str(n))
        assert peers.result(writer) == {"written": n}
        got = peers.result(reader)
        assert got["torn"] == 0 and got["backwards"] == 0
        assert got["reads"] >= 20000 and got["last"] == n
        assert lv.read() == n and verify(lv.rx) and int(lv.rx["t_recv"][0]) == n
    finally:
        lv.close()


def test_latest_value_writer_killed_mid_write_recovers(instance: str, peers) -> None:
    lv = LatestValue.create(instance, "position", TOP_OF_BOOK, wait="block")
    try:
        writer = peers.start("latest-write", instance, "position", "10", fds=lv.inheritable_fds())
        peers.result(writer)
        assert lv.read() == 10 and verify(lv.rx)
        dying = peers.start("latest-die", instance, "position", fds=lv.inheritable_fds())
        assert dying.wait(timeout=30) == -signal.SIGKILL
        assert lv.q[sg.W_WRITE] & 1, "the dead writer left the seqlock mid-write"
        assert lv.read() == -1, "a reader reports 'no consistent value' instead of a torn record"
        restarted = peers.start("latest-write", instance, "position", "5", fds=lv.inheritable_fds())
        assert peers.result(restarted) == {"written": 5}
        seq = lv.read()
        assert seq == 16 and verify(lv.rx) and int(lv.rx["t_recv"][0]) == 5
    finally:
        lv.close()


def test_ring_producer_killed_mid_write_loses_nothing_published(instance: str, peers) -> None:
    ring = EventRing.create(instance, "hedge.fills", FILL, capacity=64, wait="block")
    try:
        dying = peers.start("ring-die", instance, "hedge.fills", "10", fds=ring.inheritable_fds())
        assert dying.wait(timeout=30) == -signal.SIGKILL
        assert len(ring) == 10
        restarted = peers.start("ring-produce", instance, "hedge.fills", "5", "11",
                                fds=ring.inheritable_fds())
        assert peers.result(restarted) == {"produced": 5}
        seen = []
        while ring.pop():
            seen.append((int(ring.rx["seq"][0]), int(ring.rx["t_pub"][0])))
        assert seen == [(i, i) for i in range(1, 16)], "in order, once each, no half-written record"
    finally:
        ring.close()


def test_second_live_producer_is_refused(instance: str, peers) -> None:
    ring = EventRing.create(instance, "fills", FILL, capacity=8, wait="spin")
    try:
        ring.claim_producer()
        other = peers.start("ring-produce", instance, "fills", "1")
        _, err = other.communicate(timeout=30)
        assert other.returncode != 0 and "already has a live producer" in err
    finally:
        ring.close()


def test_attach_to_missing_segment_is_a_clear_error(instance: str) -> None:
    with pytest.raises(SegmentMissing, match=rf"/fastmm\.{instance}\.nope does not exist.*supervisor"):
        EventRing.attach(instance, "nope", FILL)


def test_attach_with_other_layout_or_kind_is_refused(instance: str) -> None:
    ring = EventRing.create(instance, "fills", FILL, capacity=8)
    try:
        with pytest.raises(ShmError, match="another layout"):
            EventRing.attach(instance, "fills", HEALTH)
        with pytest.raises(ShmError, match="event ring channel, not a latest-value"):
            LatestValue.attach(instance, "fills", FILL)
    finally:
        ring.close()


def test_bad_names_are_refused() -> None:
    with pytest.raises(ShmError, match="instance name"):
        sg.segment_name("a/b", "x")
    with pytest.raises(ShmError, match="channel name"):
        sg.segment_name("ok", "X Y")


def test_stale_segment_of_dead_run_is_replaced_live_one_is_refused(instance: str, peers) -> None:
    # A dead earlier run: a process that created the segment and died without unlinking it.
    code = ("import sys; from fastmm.shm import LatestValue; from fastmm.shm.records import POSITION;"
            f"LatestValue.create({instance!r}, 'position', POSITION, wait='spin').write("
            "__import__('numpy').zeros(1, POSITION)[0]); import os, signal; os.kill(os.getpid(), 9)")
    dead = subprocess.Popen([sys.executable, "-c", code])
    assert dead.wait(timeout=30) == -signal.SIGKILL
    assert list_segments(instance) == [f"/fastmm.{instance}.position"]
    fresh = LatestValue.create(instance, "position", POSITION, wait="spin")
    try:
        assert fresh.read() == 0, "the stale segment was replaced by an empty one"
        assert sg.remove_stale_segments(instance) == [], "our own live segment is not stale"
        with pytest.raises(ShmError, match="already created by this process"):
            LatestValue.create(instance, "position", POSITION, wait="spin")
    finally:
        fresh.close()
        fresh.unlink()
    # A live owner: this process created it above and is alive, so another creator is refused.
    holder = ("import sys, time; from fastmm.shm import LatestValue; from fastmm.shm.records import POSITION;"
              f"LatestValue.create({instance!r}, 'live', POSITION, wait='spin'); print('up', flush=True);"
              "time.sleep(60)")
    live = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    peers.procs.append(live)
    assert live.stdout is not None and live.stdout.readline().strip() == "up"
    with pytest.raises(sg.InstanceRunning, match=f"running process {live.pid}"):
        LatestValue.create(instance, "live", POSITION, wait="spin")
    live.kill()
    live.wait(timeout=10)
    assert f"/fastmm.{instance}.live" in sg.remove_stale_segments(instance)
    assert list_segments(instance) == []


def test_block_wait_needs_the_inherited_fd(instance: str, peers) -> None:
    ring = EventRing.create(instance, "fills", FILL, capacity=8, wait="block")
    try:
        consumer = peers.start("ring-consume", instance, "fills", "1", "block")  # no pass_fds
        _, err = consumer.communicate(timeout=30)
        assert consumer.returncode != 0 and "pass_fds" in err
    finally:
        ring.close()


def test_block_wait_registers_in_asyncio_loop(instance: str, peers) -> None:
    import uvloop

    ring = EventRing.create(instance, "fills", FILL, capacity=256, wait="block")
    n = 5000

    async def consume() -> list[int]:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        seen: list[int] = []

        def on_ready() -> None:
            ring.clear_wakeup()
            while ring.pop():
                seen.append(int(ring.rx["t_pub"][0]))
            if len(seen) >= n and not done.done():
                done.set_result(None)

        loop.add_reader(ring.fileno(), on_ready)
        producer = peers.start("ring-produce", instance, "fills", str(n), fds=ring.inheritable_fds())
        try:
            await asyncio.wait_for(done, 60)
        finally:
            loop.remove_reader(ring.fileno())
        assert producer.wait(timeout=30) == 0
        return seen

    try:
        ring.claim_consumer()
        seen = uvloop.run(consume()) if hasattr(uvloop, "run") else asyncio.run(consume())
        assert seen == list(range(1, n + 1))
    finally:
        ring.close()


def test_wait_times_out_when_nothing_comes(instance: str) -> None:
    ring = EventRing.create(instance, "fills", FILL, capacity=8, wait="block")
    lv = LatestValue.create(instance, "position", POSITION, wait="block")
    try:
        t0 = time.monotonic()
        assert not ring.wait(0.05)
        assert not lv.wait(0.05)
        assert time.monotonic() - t0 >= 0.09
        lv.write(lv.tx[0])
        assert lv.wait(0.05) and lv.read() == 1 and not lv.wait(0.01)
    finally:
        ring.close()
        lv.close()


def test_segments_are_unlinked_by_fixture_owner(instance: str) -> None:
    ring = EventRing.create(instance, "fills", FILL, capacity=8)
    ring.close()
    assert os.path.exists(f"/dev/shm/fastmm.{instance}.fills")
    sg.unlink_instance(instance)
    assert not os.path.exists(f"/dev/shm/fastmm.{instance}.fills")
