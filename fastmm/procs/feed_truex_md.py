"""feed-truex-md: TrueX's own book over its market-data FIX session, published to ``truex.book``.

A separate session from order entry (never a MarketDataRequest on order entry: TrueX stalls that
session's queue). It subscribes (35=V, 263=1) after every logon, applies the W snapshot and X
incrementals to an L2 book by price level (new, change, delete; an empty side arrives as price 0 size
0), and publishes the top levels in 1e-8 units like the reference books. In the start sequence it
subscribes only once order entry is logged on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastmm.config import Config
from fastmm.fix.session import AppMessage, DisconnectWanted, LoggedOn, LoggedOut
from fastmm.fix.transport import FixConnection, FixInitiator
from fastmm.instrument import Instrument
from fastmm.procs.book_channel import BookPublisher
from fastmm.procs.child import SupervisorLink, serve_supervisor, stop_on_signals
from fastmm.shm import LatestValue
from fastmm.shm.records import (
    STATE_CONNECTED,
    STATE_FRESH,
    STATE_LOGGED_ON,
    STATE_SUBSCRIBED,
    TOP_OF_BOOK,
    VENUE_TRUEX,
)
from fastmm.venues.truex import factory as truex_sessions
from fastmm.venues.truex.book import TruexBook
from fastmm.venues.truex.codec import (
    MarketDataIncremental,
    MarketDataRequestReject,
    MarketDataSnapshot,
    TruexCodec,
)

log = logging.getLogger("fastmm.truex_md")

PHASE_OE_LOGGED_ON = 2


async def run_supervised(cfg: Config, name: str = "feed-truex-md") -> int:
    stop = stop_on_signals()
    loop = asyncio.get_running_loop()
    link = SupervisorLink(cfg, name)
    channel = LatestValue.attach(cfg.instance.name, "truex.book", TOP_OF_BOOK)
    channel.claim_writer()
    publisher = BookPublisher(channel, VENUE_TRUEX)
    instrument = Instrument.from_config(cfg.instrument)
    tick_e8, lot_e8 = instrument.tick_e8, instrument.lot_e8
    codec = TruexCodec(instrument)
    book = TruexBook()
    req_ids = iter(range(1, 1 << 62))
    resubscribe_at = [0.0]

    def publish(t_recv: int, stale: bool = False) -> None:
        if stale:
            publisher.publish_stale(t_recv)
            return
        bids, asks = book.top(5)
        publisher.publish([(p * tick_e8, q * lot_e8) for p, q in bids],
                          [(p * tick_e8, q * lot_e8) for p, q in asks],
                          t_venue_ns=time.time_ns(), t_recv_ns=t_recv, venue_seq=book.updates)

    def subscribe(conn: FixConnection) -> None:
        req = f"MD{next(req_ids)}"
        conn.send(b"V", codec.market_data_request(req))
        log.info("market data: subscribed (%s)", req)

    def on_event(conn: FixConnection, ev: object) -> None:
        now = time.monotonic_ns()
        if isinstance(ev, LoggedOn):
            link.set_state(STATE_CONNECTED | STATE_LOGGED_ON, True)
            subscribe(conn)
        elif isinstance(ev, LoggedOut | DisconnectWanted):
            link.set_state(STATE_CONNECTED | STATE_LOGGED_ON | STATE_SUBSCRIBED | STATE_FRESH, False)
            book.synced = False
            publish(now, stale=True)
        elif isinstance(ev, AppMessage):
            rec = ev.record
            if isinstance(rec, MarketDataSnapshot):
                book.snapshot(rec)
                link.set_state(STATE_SUBSCRIBED | STATE_FRESH, True)
                link.messages += 1
                publish(now)
            elif isinstance(rec, MarketDataIncremental) and book.synced:
                link.messages += 1
                if book.incremental(rec):
                    publish(now)
            elif isinstance(rec, MarketDataRequestReject):
                log.error("market data request rejected: %s; retrying in 1 s", rec.text)
                link.errors += 1
                resubscribe_at[0] = time.monotonic() + 1.0

    initiator: FixInitiator | None = None
    logout_cmd: list[int] = []

    def on_command(cid: int, what: str) -> bool:
        if what == "logout":
            logout_cmd.append(cid)
            return False
        return True

    async def session() -> None:
        nonlocal initiator
        while not stop.is_set() and link.phase() < PHASE_OE_LOGGED_ON:
            await asyncio.sleep(0.02)
        if stop.is_set():
            return
        initiator = truex_sessions.market_data(cfg, codec.decode, on_event)
        run = loop.create_task(initiator.run())
        while not stop.is_set():
            if resubscribe_at[0] and time.monotonic() >= resubscribe_at[0] and initiator.conn is not None:
                resubscribe_at[0] = 0.0
                subscribe(initiator.conn)
            if logout_cmd:
                await initiator.stop("fastmm stopping")
                link.ack(logout_cmd.pop())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
        await initiator.stop("fastmm exiting")
        await run

    cfg.state_path.mkdir(parents=True, exist_ok=True)
    task = loop.create_task(session())
    try:
        await serve_supervisor(link, stop, on_command=on_command)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        publish(time.monotonic_ns(), stale=True)
        channel.close()
        link.close()
    return 0
