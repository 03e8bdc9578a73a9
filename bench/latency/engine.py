"""The engine under test, started by the harness as processes of its own: the supervised engine with
its quoter traced (multiprocess), or feeds, TrueX book and quoter in one loop (single)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from typing import Any

from fastmm.config import Config, load_config
from fastmm.procs.heap import freeze_startup_heap

from .common import (
    MAIN,
    PROGRESS_FILE,
    RX_FILE,
    START_TIMEOUT_S,
    TRACE_FILE,
    _engine_affinity,
    _engine_config,
    _kernel_stamps,
    log,
)
from .trace import LatencyTrace

STAMPED_FEED = "feed-coinbase"      # its frames start the measurement: the feed whose reads are stamped


def _trace(cfg: Config) -> LatencyTrace:
    return LatencyTrace(kernel_stamps=_kernel_stamps(), progress=cfg.state_path / PROGRESS_FILE)


def _quoter_main() -> int:
    """The multiprocess engine's quoter: ``fastmm.procs.run quoter``, its quoter given a trace."""
    from fastmm.event_loop import run
    from fastmm.logs import setup_logging
    from fastmm.procs import quoter as quoter_module
    from fastmm.procs.child import die_with_parent

    cfg = _engine_config()
    setup_logging(cfg.instance.log_level)
    die_with_parent()
    trace = _trace(cfg)
    freeze_startup_heap()       # as fastmm.procs.run does for every hot process
    code = run(quoter_module.run_supervised(cfg, "quoter", trace=trace))
    if trace.quoter is not None:
        trace.dump(cfg.state_path / TRACE_FILE)
    return code


def _feed_main() -> int:
    """The multiprocess engine's feed-coinbase: ``fastmm.procs.run feed-coinbase`` reading its socket with
    kernel receive stamps (:class:`fastmm.venues.ws_rx_stamps.RxStampLog`), written to ``RX_FILE`` at its
    end; without kernel stamps, the production feed unchanged."""
    from fastmm.event_loop import run
    from fastmm.logs import setup_logging
    from fastmm.procs import feed_ws
    from fastmm.procs.child import die_with_parent
    from fastmm.venues.ws_rx_stamps import RxStampLog

    cfg = _engine_config()
    setup_logging(cfg.instance.log_level)
    die_with_parent()
    stamps = RxStampLog() if _kernel_stamps() else None
    freeze_startup_heap()
    code = run(feed_ws.run_supervised(cfg, STAMPED_FEED, stamper=stamps))
    if stamps is not None:
        stamps.dump(cfg.state_path / RX_FILE)
    return code


def _supervise_main() -> int:
    """``fastmm supervise``, with the quoter started as :func:`_quoter_main` and feed-coinbase as
    :func:`_feed_main`."""
    from fastmm.logs import setup_logging
    from fastmm.procs.child import die_with_parent
    from fastmm.procs.plan import PROCESSES, QUOTER, default_children
    from fastmm.procs.supervisor import Supervisor

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", "-c")
    args, _ = ap.parse_known_args(sys.argv[2:])
    cfg = load_config(args.config, os.environ)
    setup_logging(cfg.instance.log_level)
    die_with_parent()
    _engine_affinity()
    children = default_children(cfg, args.config, PROCESSES)
    for child in children:
        if child.name == QUOTER:
            child.argv = [sys.executable, str(MAIN), "_quoter", *child.argv[4:]]
        elif child.name == STAMPED_FEED:
            child.argv = [sys.executable, str(MAIN), "_feed", *child.argv[4:]]
    return Supervisor(cfg, children).run()


def _single_main() -> int:
    from fastmm.event_loop import run
    from fastmm.logs import setup_logging
    from fastmm.procs.child import die_with_parent

    cfg = _engine_config()
    setup_logging(cfg.instance.log_level)
    die_with_parent()
    _engine_affinity()
    freeze_startup_heap()
    return run(_run_single(cfg))


async def _run_single(cfg: Config) -> int:
    """The baseline: feeds, TrueX book and quoter in one loop, each publish followed by a direct wake."""
    from fastmm.fix.session import AppMessage, LoggedOn
    from fastmm.fix.transport import FixConnection
    from fastmm.journal import Journal
    from fastmm.procs.book_channel import BookPublisher
    from fastmm.procs.feed_ws import make_codec, ws_client_kind
    from fastmm.procs.quoter import TIMER_S
    from fastmm.shm import LatestValue, unlink_instance
    from fastmm.shm.records import TOP_OF_BOOK, VENUE_TRUEX
    from fastmm.venues.events import TopChanged
    from fastmm.venues.truex import factory as truex_sessions
    from fastmm.venues.truex.book import TruexBook
    from fastmm.venues.truex.codec import (
        MarketDataIncremental,
        MarketDataSnapshot,
        TruexCodec,
    )
    from fastmm.venues.ws_feed import make_feed_client
    from fastmm.venues.ws_rx_stamps import RxStampLog

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()       # SIGTERM: run the stop sequence
    halt = asyncio.Event()       # end of the stop sequence: every task ends
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    inst = cfg.instance.name
    venues = [v for v in ("coinbase", "kraken") if getattr(cfg, v).enabled]
    channels: dict[str, LatestValue] = {}
    tasks: list[asyncio.Task[Any]] = []
    feed_tasks: list[asyncio.Task[Any]] = []
    cfg.state_path.mkdir(parents=True, exist_ok=True)
    journal = Journal(cfg.state_path / cfg.journal.file, cfg.journal.durability, cfg.journal.rotate_bytes)
    try:
        for name in [*(f"ref.{v}" for v in venues), "truex.book"]:
            channels[name] = LatestValue.create(inst, name, TOP_OF_BOOK, wait="spin")
        refs = {v: channels[f"ref.{v}"] for v in venues}
        trace = _trace(cfg)
        rx_stamps = RxStampLog() if _kernel_stamps() else None
        from fastmm.procs.quoter import Quoter  # here: the multiprocess run's supervisor never needs it

        q = Quoter(cfg, None, journal, refs, channels["truex.book"], None, None, trace=trace)
        feeds = []
        for venue in venues:
            feed, url, stale_after_s, code = make_codec(cfg, venue)
            pub = BookPublisher(refs[venue], code)

            def on_events(events: list, feed: Any = feed, pub: BookPublisher = pub) -> None:
                for ev in events:
                    if isinstance(ev, TopChanged):
                        bids, asks = feed.top()
                        pub.publish(bids, asks, t_venue_ns=ev.t_venue_ns, t_recv_ns=ev.t_recv_ns,
                                    venue_seq=ev.sequence_num)
                        q.on_wake()

            def on_stale(_why: str, pub: BookPublisher = pub) -> None:
                pub.publish_stale(time.monotonic_ns())
                q.on_wake()

            client = make_feed_client(ws_client_kind(cfg, venue), url, feed, on_events, on_stale,
                                      stale_after_s=stale_after_s,
                                      stamper=rx_stamps if venue == "coinbase" else None)
            feeds.append(feed)
            feed_tasks.append(loop.create_task(client.run(halt)))

        # TrueX market data, as feed-truex-md does it (snapshot W, incrementals X, top 5 published).
        book = TruexBook()
        md_codec = TruexCodec(q.core.instrument)
        md_pub = BookPublisher(channels["truex.book"], VENUE_TRUEX)
        tick_e8, lot_e8 = q.tick_e8, q.lot_e8

        def md_publish(t_recv: int) -> None:
            bids, asks = book.top(5)
            md_pub.publish([(p * tick_e8, s * lot_e8) for p, s in bids],
                           [(p * tick_e8, s * lot_e8) for p, s in asks],
                           t_venue_ns=time.time_ns(), t_recv_ns=t_recv, venue_seq=book.updates)
            q.on_wake()

        def on_md(conn: FixConnection, ev: object) -> None:
            now = time.monotonic_ns()
            if isinstance(ev, LoggedOn):
                conn.send(b"V", md_codec.market_data_request("MD1"))
            elif isinstance(ev, AppMessage):
                rec = ev.record
                if isinstance(rec, MarketDataSnapshot):
                    book.snapshot(rec)
                    md_publish(now)
                elif isinstance(rec, MarketDataIncremental) and book.synced and book.incremental(rec):
                    md_publish(now)

        async def timer() -> None:
            while not halt.is_set():
                q.on_timer()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(halt.wait(), TIMER_S)

        tasks.append(loop.create_task(timer()))
        oe = q.make_initiator()
        tasks.append(loop.create_task(oe.run()))
        await oe.wait_logged_on(cfg.truex.order_entry.logon_timeout_s * 3)
        md_initiator = truex_sessions.market_data(cfg, md_codec.decode, on_md)
        tasks.append(loop.create_task(md_initiator.run()))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (book.synced and feeds and feeds[0].synced):
            if stop.is_set() or time.monotonic() > deadline:
                log.error("single: feeds not up (coinbase synced %s, truex book synced %s)",
                          bool(feeds) and feeds[0].synced, book.synced)
                return 1
            await asyncio.sleep(0.02)
        q.on_command(1, "start_quoting")
        await stop.wait()
        # Stop: cancel every quote and wait for the confirmations (the timer releases rate-limited
        # cancels), then log out.
        q.on_command(2, "cancel_all")
        deadline = time.monotonic() + 5.0
        while q.core.live_orders and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await md_initiator.stop("bench done")
        await oe.stop("bench done")
        trace.dump(cfg.state_path / TRACE_FILE)
        if rx_stamps is not None:
            rx_stamps.dump(cfg.state_path / RX_FILE)
        return 0
    finally:
        halt.set()
        if feed_tasks:      # the feeds close their WebSockets themselves once halted, as under the supervisor
            await asyncio.wait(feed_tasks, timeout=1.0)
        for t in [*feed_tasks, *tasks]:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        journal.close()
        for ch in channels.values():
            ch.close()
        unlink_instance(inst)
