"""Both reference venues out (issue 16 item 6): the quotes are pulled fast, at TrueX's pace and inside its
throttle, the engine keeps running (a stale reference is no kill-switch trip), and it quotes again by
itself when the references come back. Real processes under the supervisor against the simulators: once
the venues disconnect, once the feed processes go silent (SIGSTOP)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from urllib.parse import urlsplit

from fastmm.procs import lifecycle as lc

MS = 1_000_000
S = 1000 * MS


def quoting_with_a_full_ladder(e) -> None:
    e.run_until(lambda: e.sup.lifecycle.phase == lc.Phase.QUOTING, 30, "QUOTING")
    e.run_until(lambda: len(e.sim_live()) >= 10, 30, "ten quotes resting")
    e.run_until(lambda: e.position().get("live_orders", 0) == len(e.sim_live()), 10, "engine and venue agree")


def pulled_and_paced(e, t_out: int) -> tuple[int, list[int]]:
    """The detection time (the quoter's journal) and the cancels the venue got after the outage; checks
    their order and TrueX's budget, prints the timings."""
    pulls = [r for r in e.journal() if r["kind"] == "phase" and str(r.get("detail", "")).startswith("quotes pulled")
             and r.get("t_mono_ns", 0) >= t_out]
    assert pulls, "the quoter journalled why it pulled the quotes"
    detected = pulls[0]["t_mono_ns"]
    received = [(mt, t) for owner, mt, t in e.venues.truex.received if owner == e.owner]
    cancels = [t for mt, t in received if mt == b"F" and t >= t_out]
    assert cancels, "the quotes were pulled by cancels"
    print(f"\noutage -> detected {(detected - t_out) / MS:.1f} ms ({pulls[0]['detail']}); detected -> first "
          f"cancel at the venue {(cancels[0] - detected) / MS:.1f} ms, -> last ({len(cancels)}) "
          f"{(cancels[-1] - detected) / MS:.1f} ms")
    assert detected <= cancels[0] <= cancels[-1], "detection first, then the cancels"
    assert cancels[-1] - detected <= 2 * S, "every quote pulled within 2 s of the detection"
    times = sorted(t for _, t in received)
    busiest = max(sum(1 for u in times[i:i + 12] if u - t < S) for i, t in enumerate(times))
    assert busiest <= 10, f"{busiest} order messages in one 1 s window at the venue (TrueX allows 10)"
    throttled = [r for r in e.journal() if r["kind"] == "reject" and r.get("business_reason") in (8, 9, 10)]
    assert throttled == [], "no throttle reject from the TrueX simulator"
    return detected, cancels


def still_running(e, quoter_pid: int, for_s: float) -> None:
    """For ``for_s`` (past the old 2 s stale-data trip): no kill switch, no stop, the same quoter."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        e.sup.step()
        time.sleep(0.005)
        assert e.sup.lifecycle.phase < lc.Phase.STOPPING, f"the engine stopped: {e.sup.lifecycle.stop_reason}"
    ch = e.sup.channels["position"]
    assert ch.read() > 0 and int(ch.rx[0]["risk_tripped"]) == 0, "a stale reference is no kill-switch trip"
    quoter = e.sup.children["quoter"].proc
    assert quoter is not None and quoter.pid == quoter_pid and quoter.poll() is None
    assert not e.sim_live(), "no quote rests while the references are out"


def quoting_again(e, t_back: int) -> None:
    e.run_until(lambda: e.sup.lifecycle.phase == lc.Phase.QUOTING and len(e.sim_live()) >= 2, 40,
                "quotes back after the references")
    back = [r for r in e.journal() if r["kind"] == "phase" and r.get("detail") == "quoting"
            and r.get("t_mono_ns", 0) >= t_back]
    assert back, "the quoter journalled that it quotes again"
    assert e.sup.lifecycle.phase == lc.Phase.QUOTING and e.sup.lifecycle.stop_reason == ""


def test_both_reference_venues_disconnect_then_come_back(engine) -> None:
    e = engine({"FASTMM_SIM__SPEED": "1", "FASTMM_SIM__TAKER_PROBABILITY": "0.0"})
    quoting_with_a_full_ladder(e)
    quoter_pid = e.sup.children["quoter"].proc.pid
    servers = [e.venues.coinbase, e.venues.kraken_ws]
    ports = [urlsplit(e.cfg.coinbase.ws_url).port, urlsplit(e.cfg.kraken.ws_url).port]

    async def stop_all() -> None:
        for s in servers:
            await s.stop()

    t_out = time.monotonic_ns()
    asyncio.run_coroutine_threadsafe(stop_all(), e.sim.loop).result(10)
    e.run_until(lambda: not e.sim_live(), 5, "every quote canceled on the venue")
    pulled_and_paced(e, t_out)
    still_running(e, quoter_pid, 3.0)

    async def start_all() -> None:
        for s, port in zip(servers, ports, strict=True):
            await s.start("127.0.0.1", port)

    t_back = time.monotonic_ns()
    asyncio.run_coroutine_threadsafe(start_all(), e.sim.loop).result(10)
    quoting_again(e, t_back)


def test_both_reference_feeds_go_silent_then_come_back(engine) -> None:
    """SIGSTOP both feed processes: nothing says stale, the quoter sees the prices age on its timer.
    The supervisor replaces the frozen feeds (no heartbeat) and quoting resumes by itself."""
    e = engine({"FASTMM_SIM__SPEED": "1", "FASTMM_SIM__TAKER_PROBABILITY": "0.0",
                "FASTMM_PROCESSES__HEARTBEAT_TIMEOUT_MS": "3000"})
    quoting_with_a_full_ladder(e)
    quoter_pid = e.sup.children["quoter"].proc.pid
    feeds = [e.sup.children[n].proc for n in ("feed-coinbase", "feed-kraken")]
    assert all(p is not None for p in feeds)
    t_out = time.monotonic_ns()
    try:
        for p in feeds:
            os.kill(p.pid, signal.SIGSTOP)
        e.run_until(lambda: not e.sim_live(), 5, "every quote canceled on the venue")
        detected, _ = pulled_and_paced(e, t_out)
        assert detected - t_out < S, "silence seen well under a second (stale_after_ms 500, 50 ms timer)"
        still_running(e, quoter_pid, 1.0)
    finally:
        for p in feeds:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
    quoting_again(e, t_out)
