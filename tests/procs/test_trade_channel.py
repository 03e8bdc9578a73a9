"""Market trades through shared memory: the TRADE record on the ``trades.<venue>`` ring, the feed's
publisher (taker side, history skipped, a full ring drops without waiting) and the quoter's drain into
the core's FairValue flow, the call the backtest makes."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fastmm.config import Config, InstanceConfig
from fastmm.journal import Journal
from fastmm.procs.plan import channel_specs, create_channels
from fastmm.procs.quoter import Quoter
from fastmm.procs.trade_channel import TradePublisher, pop_trade, taker_side, trades_channel
from fastmm.shm import EventRing, list_segments, unlink_instance
from fastmm.shm.records import TAKER_BUY, TAKER_SELL, TRADE, VENUE_COINBASE, seal, verify
from fastmm.venues.coinbase.codec import MarketTrade

_counter = itertools.count()
PX = 60_000 * 10**8


@pytest.fixture
def instance() -> Iterator[str]:
    name = f"tr{os.getpid()}-{next(_counter)}"
    yield name
    unlink_instance(name)
    assert list_segments(name) == []


def trade(maker_side: str, size_e8: int = 10**6, price_e8: int = PX, history: bool = False) -> MarketTrade:
    now = time.monotonic_ns()
    return MarketTrade(time.time_ns(), now, price_e8, size_e8, maker_side, history)


def test_the_record_round_trips_through_the_ring(instance: str) -> None:
    rec = np.zeros(1, TRADE)
    seal(rec)
    assert verify(rec) and TRADE.itemsize % 8 == 0
    ring = EventRing.create(instance, trades_channel("coinbase"), TRADE, capacity=8, wait="spin")
    try:
        pub = TradePublisher(ring, VENUE_COINBASE)
        sent = trade("BUY", size_e8=123_456_789, price_e8=PX + 50_000_000)
        assert pub.publish(sent)
        assert len(ring) == 1
        got = pop_trade(ring)
        assert got is not None
        assert got.taker_side == TAKER_SELL, "a BUY maker was hit by a selling taker"
        assert (got.price_e8, got.size_e8) == (PX + 50_000_000, 123_456_789)
        assert (got.t_venue_ns, got.t_recv_ns) == (sent.t_venue_ns, sent.t_recv_ns)
        assert got.t_recv_ns <= got.t_pub_ns <= time.monotonic_ns()
        # the numpy view of the same bytes agrees field by field (the layout is the record's)
        assert pub.publish(trade("SELL"))
        assert ring.pop()
        r = ring.rx[0]
        assert int(r["seq"]) == 2 and int(r["venue"]) == VENUE_COINBASE
        assert int(r["taker_side"]) == TAKER_BUY and int(r["price_e8"]) == PX
        assert pop_trade(ring) is None
    finally:
        ring.close()


def test_history_is_skipped_and_a_full_ring_drops_without_waiting(instance: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    assert (taker_side("BUY"), taker_side("SELL")) == (TAKER_SELL, TAKER_BUY)
    ring = EventRing.create(instance, trades_channel("coinbase"), TRADE, capacity=4, wait="spin")
    try:
        pub = TradePublisher(ring, VENUE_COINBASE)
        assert not pub.publish(trade("BUY", history=True))
        assert (pub.history, len(ring)) == (1, 0)
        t0 = time.monotonic()
        results = [pub.publish(trade("SELL", size_e8=i + 1)) for i in range(10)]
        assert time.monotonic() - t0 < 0.5, "the feed's loop never waits for room"
        assert results == [True] * 4 + [False] * 6
        assert (pub.published, pub.dropped) == (4, 6)
        assert sum("dropping market trades" in r.message for r in caplog.records) == 1, "logged once"
        assert [pop_trade(ring).size_e8 for _ in range(4)] == [1, 2, 3, 4]   # type: ignore[union-attr]
        assert pub.publish(trade("SELL")), "room again once the quoter reads"
    finally:
        ring.close()


def test_the_plan_declares_a_trade_ring_for_coinbase_only() -> None:
    specs = {s.name: s for s in channel_specs(Config())}
    spec = specs["trades.coinbase"]
    assert (spec.kind, spec.producer, spec.consumer, spec.dtype) == ("ring", "feed-coinbase", None, TRADE)
    assert "trades.kraken" not in specs, "the Kraken codec has no trade subscription"
    assert "trades.coinbase" not in {s.name for s in channel_specs(Config(), ("quoter",))}


def test_the_quoter_drains_trades_into_the_core_flow(instance: str, tmp_path: Path) -> None:
    """The feed side publishes, the quoter's wake drains before deciding: the edge model's signed taker
    flow moves from 0, and the same trades through the core directly give the same flow."""
    cfg = Config(instance=InstanceConfig(name=instance))
    assert cfg.quoting.model == "edge"
    channels = create_channels(cfg, [s for s in channel_specs(cfg, ("feed-coinbase",))
                                     if s.name == "trades.coinbase"])
    producer = channels["trades.coinbase"]
    assert isinstance(producer, EventRing)
    consumer = EventRing.attach(instance, "trades.coinbase", TRADE)
    try:
        consumer.claim_consumer()
        pub = TradePublisher(producer, VENUE_COINBASE)
        with Journal(tmp_path / "j.jsonl") as j:
            q = Quoter(cfg, None, j, {}, None, None, None)
            q.trade_rings["coinbase"] = consumer
            assert q.core.fair_value.flow(time.monotonic_ns()) == 0.0
            for maker in ("SELL", "SELL", "SELL", "BUY"):     # three taker buys, one taker sell
                assert pub.publish(trade(maker, size_e8=10**7))
            q.on_wake()                                       # the wake loop's path, before any decision
            assert len(consumer) == 0, "drained"
            flow = q.core.fair_value.flow(time.monotonic_ns())
            assert flow == pytest.approx(0.5, abs=0.01), "(3 - 1) / 4 of the volume bought"
            assert q.core.fair_value.signal_bps(time.monotonic_ns()) > 0.0
            for _ in range(8):
                assert pub.publish(trade("BUY", size_e8=10**7))  # taker sells
            assert q.drain_trades(time.monotonic_ns()) == 8
            assert q.core.fair_value.flow(time.monotonic_ns()) < 0.0
            assert q.drain_trades(time.monotonic_ns()) == 0
    finally:
        consumer.close()
        producer.close()

