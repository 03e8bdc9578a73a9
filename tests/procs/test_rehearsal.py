"""The quoter's rehearsal (fastmm.procs.rehearsal): the whole price path on a shadow, nothing leaves it."""

from __future__ import annotations

import os

from fastmm.config import Config, QuotingConfig
from fastmm.core.trading_core import TradingCore
from fastmm.procs.book_channel import BookPublisher
from fastmm.procs.rehearsal import Rehearsal
from fastmm.shm import LatestValue, unlink_instance
from fastmm.shm.records import TOP_OF_BOOK, VENUE_COINBASE
from fastmm.venues.truex.codec import TruexCodec

MS = 1_000_000
E8 = 100_000_000


def _rehearsal(cfg: Config, refs: dict[str, LatestValue] | None = None) -> Rehearsal:
    core = TradingCore(cfg)
    return Rehearsal(cfg, TruexCodec(core.instrument, "C1"), refs or {}, None)


def test_every_rehearsal_moves_the_shadow_ladder_and_builds_its_orders() -> None:
    r = _rehearsal(Config(quoting=QuotingConfig(model="ladder", levels=5)))   # the PRD's 5-level ladder
    t0 = 1_000 * 1_000_000_000
    built = [r.run(t0 + i * MS, 1_700_000_000_000_000_000 + i * MS) for i in range(400)]
    # the shadow walks 2 ticks per step: after the first ladder, every step reprices part of it
    assert built[0] == 10 and min(built[1:]) >= 1
    assert r.runs == 400 and r.orders == sum(built)
    tracker = r.core.engine.tracker
    assert len(tracker.working) == 10                  # answered at once: a live 5 x 5 ladder
    assert all(k.startswith("rehearse") for k in tracker.working)
    assert r.core.engine.limiter.sent == r.orders      # its own limiter, lifted; never the real one's


def test_it_follows_the_published_reference_price() -> None:
    instance = f"rh{os.getpid()}"
    ch = LatestValue.create(instance, "ref.coinbase", TOP_OF_BOOK)
    try:
        BookPublisher(ch, VENUE_COINBASE).publish([(50_000 * E8, E8)], [(50_001 * E8, E8)], t_venue_ns=0,
                                                  t_recv_ns=1, venue_seq=1)
        r = _rehearsal(Config(quoting=QuotingConfig(model="ladder", levels=5)), {"coinbase": ch})
        assert r.run(5 * 1_000_000_000, 1_700_000_000_000_000_000) == 10
        prices = [o.price for o in r.core.engine.tracker.working.values()]
        mid_ticks = 50_000.5 / 0.5      # not the fallback 100,000 (200,001 ticks)
        assert all(abs(p - mid_ticks) < 1_000 for p in prices), prices
    finally:
        ch.close()
        unlink_instance(instance)


def test_memory_stays_bounded_over_a_long_rehearsal() -> None:
    """A day of rehearsals must not grow the quoter: the shadow's windows, ids and events stay small."""
    import tracemalloc

    r = _rehearsal(Config(quoting=QuotingConfig(model="ladder", levels=5)))   # the PRD's 5-level ladder
    t0 = 1_000 * 1_000_000_000

    def rehearse(a: int, b: int) -> None:
        for i in range(a, b):
            r.run(t0 + i * MS, 1_700_000_000_000_000_000 + i * MS)

    rehearse(0, 10_000)          # past every window and the order tracker's retired-id bound
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    rehearse(10_000, 50_000)
    grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert len(r.core.engine.tracker.working) == 10
    # the order tracker keeps up to RETIRED_IDS replaced ids (~0.5 MB, up and down as it compacts); keeping
    # every id, or every window entry, would be several MB over 40,000 rehearsals
    assert grown < 1024 * 1024, f"{grown} bytes more after 40,000 more rehearsals"


class _Quoter:
    """What keep_warm reads of the quoter: whether it quotes, when it last woke for a price, its trace."""

    def __init__(self, quoting: bool) -> None:
        self.quoting = quoting
        self._wake_ns = 0
        self.trace = None


def _keep_warm_for(q: _Quoter, seconds: float, *, ticking: bool = False) -> Rehearsal:
    import asyncio
    import time

    from fastmm.procs.quoter import keep_warm

    r = _rehearsal(Config())

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(keep_warm(q, r, 2, stop))  # type: ignore[arg-type]
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if ticking:
                # a price woke the quoter "just now", as far as keep_warm can tell: never idle long enough
                q._wake_ns = time.monotonic_ns() + 10_000_000_000
            await asyncio.sleep(0.0005)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    return r


def test_keep_warm_rehearses_only_while_quoting_and_idle() -> None:
    assert _keep_warm_for(_Quoter(quoting=True), 0.3).runs >= 10
    assert _keep_warm_for(_Quoter(quoting=False), 0.2).runs == 0
    assert _keep_warm_for(_Quoter(quoting=True), 0.2, ticking=True).runs == 0


def test_a_failing_rehearsal_stops_rehearsing_not_the_quoter(caplog) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from fastmm.procs.quoter import keep_warm

    r = _rehearsal(Config())

    def broken(now_ns: int, wall_ns: int) -> int:
        raise RuntimeError("rehearsal broke")

    r.run = broken  # type: ignore[method-assign]

    async def main() -> None:
        stop = asyncio.Event()
        await asyncio.wait_for(keep_warm(_Quoter(quoting=True), r, 1, stop), 5)   # type: ignore[arg-type]

    with caplog.at_level("INFO", logger="fastmm.procs.quoter"):
        asyncio.run(main())        # returns by itself: the task ends, nothing propagates
    assert [m for m in caplog.messages if m.startswith("rehearsal failed")] == [
        "rehearsal failed; it is off for the rest of this run"]
