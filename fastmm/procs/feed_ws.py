"""feed-coinbase and feed-kraken: a WebSocket reference book, published to ``ref.<venue>``.

feed-coinbase also publishes each live market trade to the ``trades.coinbase`` event ring for the
quoter's edge model and intensity fit (:mod:`fastmm.procs.trade_channel`; a full ring drops the trade,
never blocks the loop). Kraken's codec has no trade subscription, so feed-kraken publishes books only.

Under the supervisor a feed attaches to its channel and heartbeats; ``fastmm feed coinbase --print``
(or ``kraken``) runs the same client alone, printing each new top of book, for debugging against the
simulator or the real endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from typing import TextIO

from fastmm import speedups
from fastmm.backoff import Backoff
from fastmm.config import Config
from fastmm.procs.book_channel import BookPublisher
from fastmm.procs.child import SupervisorLink, serve_supervisor, stop_on_signals
from fastmm.procs.trade_channel import TradePublisher, trades_channel
from fastmm.shm import EventRing, LatestValue, SegmentMissing
from fastmm.shm.records import STATE_CONNECTED, STATE_FRESH, TOP_OF_BOOK, TRADE, VENUE_COINBASE, VENUE_KRAKEN
from fastmm.units import format_e8
from fastmm.venues.coinbase.codec import CoinbaseFeed, MarketTrade
from fastmm.venues.events import TopChanged
from fastmm.venues.kraken.ws_codec import KrakenBookFeed
from fastmm.venues.ws_feed import BookCodec, FrameStamper, WsClientKind, make_feed_client

log = logging.getLogger(__name__)

VENUES = ("coinbase", "kraken")


def make_codec(cfg: Config, venue: str) -> tuple[BookCodec, str, float, int]:
    """The venue's codec, its URL, its stale time in seconds and its venue code."""
    if venue == "coinbase":
        c = cfg.coinbase
        return (CoinbaseFeed(c.product_id, c.depth_levels), c.ws_url, c.stale_after_ms / 1000,
                VENUE_COINBASE)
    if venue == "kraken":
        k = cfg.kraken
        return KrakenBookFeed(k.ws_symbol, depth=10), k.ws_url, k.stale_after_ms / 1000, VENUE_KRAKEN
    raise ValueError(f"unknown reference venue {venue!r}; venues are {', '.join(VENUES)}")


def ws_client_kind(cfg: Config, venue: str) -> WsClientKind:
    """The venue's ``ws_client`` setting: which WebSocket client its feed runs."""
    kind: WsClientKind = cfg.kraken.ws_client if venue == "kraken" else cfg.coinbase.ws_client
    return kind


async def run_supervised(cfg: Config, name: str, stamper: FrameStamper | None = None) -> int:
    """The feed process ``name`` (``feed-coinbase`` or ``feed-kraken``) under the supervisor; ``stamper``
    as :class:`~fastmm.venues.ws_feed.FrameStamper` says (a harness's)."""
    venue = name.removeprefix("feed-")
    feed, url, stale_after_s, venue_code = make_codec(cfg, venue)
    stop = stop_on_signals()
    link = SupervisorLink(cfg, name)
    if venue == "coinbase":
        log.info("%s", speedups.describe("coinbase_l2_updates"))   # the pure twin is slower: say which runs
    channel = LatestValue.attach(cfg.instance.name, f"ref.{venue}", TOP_OF_BOOK)
    channel.claim_writer()
    publisher = BookPublisher(channel, venue_code)
    trades: TradePublisher | None = None
    with contextlib.suppress(SegmentMissing):    # only the venues with a trade channel have one
        ring = EventRing.attach(cfg.instance.name, trades_channel(venue), TRADE)
        ring.claim_producer()
        trades = TradePublisher(ring, venue_code)
    last = [0, 0, 0]     # t_venue, t_recv, venue seq of the top last published

    def publish_top(t_venue_ns: int, t_recv_ns: int, seq: int) -> None:
        bids, asks = feed.top()
        publisher.publish(bids, asks, t_venue_ns=t_venue_ns, t_recv_ns=t_recv_ns, venue_seq=seq)
        last[:] = [t_venue_ns, t_recv_ns, seq]

    def on_events(events: list) -> None:
        for ev in events:
            if isinstance(ev, TopChanged):
                publish_top(ev.t_venue_ns, ev.t_recv_ns, ev.sequence_num)
                link.messages += 1
                link.set_state(STATE_FRESH)
            elif isinstance(ev, MarketTrade) and trades is not None:
                dropped = trades.dropped
                trades.publish(ev)
                link.errors += trades.dropped - dropped    # ring full: in `fastmm status` and the metrics
        link.set_state(STATE_CONNECTED, client.connected)

    async def keep_fresh() -> None:
        """A quiet top (frames arrive, heartbeats included, but its levels stay) is still a live price:
        republish it with the newest receive time, so the quoter never ages a healthy source out."""
        period_s = stale_after_s / 4
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period_s)
            t = feed.last_recv_ns
            if not client.stale and feed.synced and last[1] and t - last[1] >= period_s * 1e9:
                publish_top(last[0], t, last[2])
                link.set_state(STATE_FRESH)

    def on_stale(why: str) -> None:
        publisher.publish_stale(time.monotonic_ns())
        link.set_state(STATE_FRESH, False)
        link.set_state(STATE_CONNECTED, client.connected)
        link.errors += 1

    client = make_feed_client(ws_client_kind(cfg, venue), url, feed, on_events, on_stale,
                              stale_after_s=stale_after_s, stamper=stamper)
    task = asyncio.create_task(client.run(stop))
    fresh_task = asyncio.create_task(keep_fresh())
    try:
        await serve_supervisor(link, stop)
    finally:
        stop.set()
        await task
        await fresh_task
        publisher.publish_stale(time.monotonic_ns())
        channel.close()
        if trades is not None:
            log.info("%s: %d trades published, %d dropped (ring full), %d history skipped",
                     trades.ring.name, trades.published, trades.dropped, trades.history)
            trades.ring.close()
        link.close()
    return 0


async def run_print(cfg: Config, venue: str, out: TextIO = sys.stdout, limit: int = 0,
                    seed: int | None = None) -> int:
    """Print every new top of book until Ctrl-C (or ``limit`` of them)."""
    feed, url, stale_after_s, _code = make_codec(cfg, venue)
    stop = stop_on_signals()
    printed = 0

    def on_events(events: list) -> None:
        nonlocal printed
        for ev in events:
            if isinstance(ev, TopChanged):
                (bids, asks) = feed.top()
                bid = f"{format_e8(bids[0][1])} @ {format_e8(bids[0][0])}" if bids else "-"
                ask = f"{format_e8(asks[0][1])} @ {format_e8(asks[0][0])}" if asks else "-"
                print(f"{venue} {ev.sequence_num:>8}  bid {bid:>28}   ask {ask:<28}", file=out, flush=True)
                printed += 1
                if limit and printed >= limit:
                    stop.set()

    def on_stale(why: str) -> None:
        print(f"stale: {why}", file=out, flush=True)

    client = make_feed_client(ws_client_kind(cfg, venue), url, feed, on_events, on_stale,
                              stale_after_s=stale_after_s, backoff=Backoff(seed=seed))
    await client.run(stop)
    print(f"{printed} tops printed, {feed.messages} messages, {feed.gaps} resyncs, "
          f"bad input: {dict(feed.bad.counts) or 'none'}", file=out, flush=True)
    return 0
