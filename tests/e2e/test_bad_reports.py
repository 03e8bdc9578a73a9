"""Hostile venue reports (issue 16, item 7), through the real engine: the TrueX simulator's order-entry
session sends ExecutionReports that cannot be true (an over-fill, a fill of an order never sent, a 1e11
BTC fill, a negative price). None is booked; each is journalled as ``bad_report``; the quoter trips the
kill switch (so the supervisor stops the engine, every quote cancelled) and keeps running. A journal
holding such a record, as an older version wrote it, is replayed at start without a crash."""

from __future__ import annotations

import asyncio
import time

from fastmm.fix.codec import fields, format_timestamp
from fastmm.journal import Journal, read_journal
from fastmm.procs import lifecycle as lc


def _inject(e, reports: list[list[tuple[int, object]]]) -> None:
    """Send raw ExecutionReports to our order-entry session, from the simulator's own event loop."""
    server = e.venues.truex
    loop = server._servers[0].get_loop()

    async def send() -> None:
        for pairs in reports:
            server._send_oe(e.owner, b"8", fields(pairs))

    asyncio.run_coroutine_threadsafe(send(), loop).result(10)


def _fill(cl: str, order_id: str, exec_id: str, side: str, px: str, qty: str, leaves: str) -> list:
    return [(37, order_id), (11, cl), (17, exec_id), (150, "F"), (39, "1"), (55, "BTC-PYUSD"),
            (167, "CSPOT"), (54, side), (38, qty), (31, px), (32, qty), (151, leaves), (14, qty),
            (60, format_timestamp(time.time_ns())), (851, 1)]


def test_impossible_fills_are_refused_alerted_and_halt(engine) -> None:
    e = engine({"FASTMM_SIM__TAKER_PROBABILITY": "0"})       # the only fills are the hostile ones
    e.run_until(lambda: e.sup.lifecycle.phase == lc.Phase.QUOTING, 30, "QUOTING")
    e.run_until(lambda: bool(e.venues.truex.exchange.engine.live_orders(e.owner)), 30, "a live quote")
    o = e.venues.truex.exchange.engine.live_orders(e.owner)[0]
    inst = e.venues.truex.exchange.instrument
    px, qty = inst.price_text(o.price), inst.qty_text(o.qty)
    cl = o.last_cl_ord_id or o.cl_ord_id
    _inject(e, [
        _fill(cl, o.order_id, "bad-over", o.side, px, inst.qty_text(o.qty * 10), "0"),       # 10x over-fill
        _fill("nevr-sent-1", "X9", "bad-unknown", "1", px, qty, "0"),                          # never sent
        _fill(cl, o.order_id, "bad-huge", o.side, px, "100000000000", "0"),                    # 1e11 BTC
        _fill(cl, o.order_id, "bad-negpx", o.side, "-100", inst.qty_text(1), inst.qty_text(o.qty - 1)),
    ])
    e.run_until(lambda: e.sup.lifecycle.phase == lc.Phase.STOPPED, 30, "STOPPED after the kill switch")
    bad = {r["exec_id"]: r for r in e.journal() if r["kind"] == "bad_report"}
    assert set(bad) == {"bad-over", "bad-unknown", "bad-huge", "bad-negpx"}
    assert "over-fill" in bad["bad-over"]["problem"]
    assert "never sent" in bad["bad-unknown"]["problem"]
    assert "quantity" in bad["bad-huge"]["problem"]
    assert "price" in bad["bad-negpx"]["problem"]
    assert not [r for r in e.journal() if r["kind"] == "fill"]
    risk = [r for r in e.journal() if r["kind"] == "risk"]
    assert risk and "bad_report" in risk[0]["detail"]
    pos = e.position()
    assert pos["position_lots"] == 0 and pos["truex_fills"] == 0
    assert e.sup.restart.restarts.get("quoter", 0) == 0, "the quoter crashed on a hostile report"
    assert e.sim_live() == set()


def test_a_journal_with_an_absurd_fill_is_replayed_without_a_crash(engine, tmp_path) -> None:
    # what an older version booked (and then crash-looped on at every start): a 1e11 BTC fill, plus one
    # legitimate fill that must still count
    env = {"FASTMM_INSTANCE__NAME": f"absurd{time.monotonic_ns() % 10**9}",
           "FASTMM_SIM__TAKER_PROBABILITY": "0"}
    state = tmp_path / env["FASTMM_INSTANCE__NAME"]
    j = Journal(state / "journal.jsonl")
    t = time.time_ns() - 3600 * 10**9
    j.append("order", t, cl_ord_id="old1", side="1", price_ticks=120_000, qty_lots=100)
    j.append("fill", t, cl_ord_id="old1", exec_id="x1", side="1", px_ticks=120_000, qty_lots=40, leaves_lots=60,
             liquidity=1, fee="0")
    j.append("fill", t, cl_ord_id="old1", exec_id="x2", side="1", px_ticks=120_000, qty_lots=10**15,
             leaves_lots=0, liquidity=1, fee="0")
    j.append("fill", t, cl_ord_id="old1", exec_id="x3", side="1", px_ticks="garbage", qty_lots=1)
    j.append("canceled", t, cl_ord_id="old1")
    j.close()
    e = engine(env)
    assert e.cfg.state_path == state
    e.run_until(lambda: e.sup.lifecycle.phase == lc.Phase.QUOTING, 30, "QUOTING")
    e.run_until(lambda: e.position().get("live_orders", 0) > 0, 30, "quotes")
    pos = e.position()
    assert pos["position_lots"] == 40 and pos["truex_fills"] == 1
    assert e.sup.restart.restarts.get("quoter", 0) == 0
    assert [r["exec_id"] for r in read_journal(state / "journal.jsonl") if r["kind"] == "fill"][:3] == \
        ["x1", "x2", "x3"]
