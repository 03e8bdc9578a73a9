"""The real feed processes under the supervisor, against the Coinbase and Kraken WebSocket simulators:
books on ``ref.<venue>``, Coinbase's market trades on ``trades.coinbase``."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from supervised_helpers import run_until

from fastmm.config import load_config
from fastmm.data.binance import read_capture
from fastmm.procs import lifecycle as lc
from fastmm.procs.book_channel import read_top
from fastmm.procs.plan import default_children
from fastmm.procs.restart import RestartPolicy
from fastmm.procs.supervisor import Supervisor
from fastmm.procs.trade_channel import TradeRecord, pop_trade
from fastmm.shm import EventRing, LatestValue, list_segments
from fastmm.shm.records import TAKER_BUY, TAKER_SELL, TOP_OF_BOOK, TRADE
from fastmm.sim.background import SimThread
from fastmm.sim.coinbase import CbBook, CbTrade, CbTrades, CoinbaseSettings, from_binance
from fastmm.sim.coinbase_server import CoinbaseSimServer
from fastmm.sim.kraken_ws import KrakenWsSettings
from fastmm.sim.kraken_ws_server import KrakenWsSimServer


@pytest.fixture
def sims() -> Iterator[tuple[int, int]]:
    st = SimThread()
    try:
        _, cb_port = st.start(lambda: CoinbaseSimServer.from_capture(settings=CoinbaseSettings(speed=1.0)))
        _, kr_port = st.start(lambda: KrakenWsSimServer.from_capture(settings=KrakenWsSettings(speed=1.0)))
        yield cb_port, kr_port
    finally:
        st.close()


def test_feeds_publish_fresh_books_and_a_killed_feed_comes_back(sims, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cb_port, kr_port = sims
    env = {
        "FASTMM_INSTANCE__NAME": f"feeds{os.getpid()}",
        "FASTMM_INSTANCE__STATE_DIR": str(tmp_path),
        "FASTMM_COINBASE__WS_URL": f"ws://127.0.0.1:{cb_port}",
        "FASTMM_KRAKEN__WS_URL": f"ws://127.0.0.1:{kr_port}",
        "FASTMM_PROCESSES__HEARTBEAT_TIMEOUT_MS": "1000",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = load_config(None, os.environ)
    sup = Supervisor(cfg, default_children(cfg, None, ("feed-coinbase", "feed-kraken")),
                     restart=RestartPolicy(first_delay_ns=100_000_000))
    try:
        sup.start()
        run_until(sup, lambda: sup.lifecycle.fresh_feeds == {"coinbase", "kraken"})
        assert sup.lifecycle.phase >= lc.Phase.FEEDS_UP
        for venue in ("coinbase", "kraken"):
            ch = LatestValue.attach(cfg.instance.name, f"ref.{venue}", TOP_OF_BOOK)
            try:
                top = read_top(ch)
                assert top is not None and top.usable, venue
                assert 40_000 * 10**8 < top.bid_e8 < top.ask_e8 < 80_000 * 10**8, venue
                assert top.t_recv_ns <= top.t_pub_ns <= time.monotonic_ns()
            finally:
                ch.close()
        feed = sup.children["feed-coinbase"]
        assert feed.proc is not None
        os.kill(feed.proc.pid, signal.SIGKILL)
        run_until(sup, lambda: "coinbase" not in sup.lifecycle.fresh_feeds)
        assert "kraken" in sup.lifecycle.fresh_feeds, "the other source stays in use"
        run_until(sup, lambda: sup.lifecycle.fresh_feeds == {"coinbase", "kraken"})
        assert sup.restart.restarts == {"feed-coinbase": 1}
    finally:
        sup.close()
    assert list_segments(cfg.instance.name) == []


def test_a_quiet_book_with_a_live_connection_stays_fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The venue sends the capture's recorded book and then only heartbeats (every 100 ms): the top never
    changes, yet the feed republishes it with the newest receive time, so the quoter never ages a live
    source out (stale_after_ms 500); the venue's own sequence number shows no book update came."""
    book = next(ev for ev in from_binance(read_capture(None, max_lines=50)) if isinstance(ev, CbBook))
    st = SimThread()
    try:
        _, cb_port = st.start(lambda: CoinbaseSimServer([book], settings=CoinbaseSettings(heartbeat_interval_ms=100)))
        env = {
            "FASTMM_INSTANCE__NAME": f"quiet{os.getpid()}",
            "FASTMM_INSTANCE__STATE_DIR": str(tmp_path),
            "FASTMM_COINBASE__WS_URL": f"ws://127.0.0.1:{cb_port}",
            "FASTMM_COINBASE__STALE_AFTER_MS": "500",
            "FASTMM_KRAKEN__ENABLED": "false",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        cfg = load_config(None, os.environ)
        sup = Supervisor(cfg, default_children(cfg, None, ("feed-coinbase",)),
                         restart=RestartPolicy(first_delay_ns=100_000_000))
        try:
            sup.start()
            run_until(sup, lambda: sup.lifecycle.fresh_feeds == {"coinbase"})
            ch = LatestValue.attach(cfg.instance.name, "ref.coinbase", TOP_OF_BOOK)
            try:
                first = read_top(ch)
                assert first is not None and first.usable
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline:
                    sup.step()
                    time.sleep(0.01)
                last = read_top(ch)
                assert last is not None and last.usable
                assert (last.bid_e8, last.ask_e8) == (first.bid_e8, first.ask_e8), "the book did not move"
                assert last.venue_seq == first.venue_seq, "no book update came from the venue"
                assert last.t_recv_ns - first.t_recv_ns >= 2_000_000_000, "republished with newer receive times"
                assert last.seq > first.seq
                assert "coinbase" in sup.lifecycle.fresh_feeds
            finally:
                ch.close()
        finally:
            sup.close()
        assert list_segments(cfg.instance.name) == []
    finally:
        st.close()


def test_feed_coinbase_publishes_live_trades_with_the_takers_side(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The real feed process against the Coinbase simulator: a trade every 50 ms, the maker's side
    alternating (size i+1 names trade i). The ring gets each trade once, in order, with the taker's side
    (a BUY maker was hit by a selling taker); the ones from before the subscription came as the
    ``market_trades`` snapshot (history) and are not in it."""
    book = next(ev for ev in from_binance(read_capture(None, max_lines=50)) if isinstance(ev, CbBook))
    px = book.bids[0][0]
    n = 200
    source: list[CbBook | CbTrades] = [book]
    for i in range(n):
        t = book.recv_ns + (i + 1) * 50_000_000
        maker = "BUY" if i % 2 == 0 else "SELL"
        source.append(CbTrades(t, t, (CbTrade(str(i), px, i + 1, maker, t),)))
    st = SimThread()
    try:
        _, cb_port = st.start(lambda: CoinbaseSimServer(source, settings=CoinbaseSettings()))
        env = {
            "FASTMM_INSTANCE__NAME": f"trades{os.getpid()}",
            "FASTMM_INSTANCE__STATE_DIR": str(tmp_path),
            "FASTMM_COINBASE__WS_URL": f"ws://127.0.0.1:{cb_port}",
            "FASTMM_KRAKEN__ENABLED": "false",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        cfg = load_config(None, os.environ)
        sup = Supervisor(cfg, default_children(cfg, None, ("feed-coinbase",)),
                         restart=RestartPolicy(first_delay_ns=100_000_000))
        got: list[TradeRecord] = []
        try:
            sup.start()
            ring = EventRing.attach(cfg.instance.name, "trades.coinbase", TRADE)
            try:
                ring.claim_consumer()

                def drained() -> bool:
                    while (tr := pop_trade(ring)) is not None:
                        got.append(tr)
                    return bool(got) and got[-1].size_e8 == n

                run_until(sup, drained, timeout=30.0)
            finally:
                ring.close()
        finally:
            sup.close()
        assert list_segments(cfg.instance.name) == []
    finally:
        st.close()
    sizes = [tr.size_e8 for tr in got]
    assert len(sizes) >= 20, "most trades came after the subscription"
    assert sizes == list(range(sizes[0], n + 1)), "each live trade once, in order; no history replayed"
    for tr in got:
        i = tr.size_e8 - 1
        assert tr.taker_side == (TAKER_SELL if i % 2 == 0 else TAKER_BUY), i
        assert tr.price_e8 == px
        assert tr.t_recv_ns <= tr.t_pub_ns
