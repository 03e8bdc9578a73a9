"""The quoter's own decisions, without sockets: the desk (fastmm.procs.quoter_desk) and the Quoter shell
built on real shm channels, a fake order-entry session and a journal that records what it is given.

One log (``Desk.log``) holds every journal write and every message sent, in order, so "journalled before
its bytes" is checked by position."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from fastmm.config import Config
from fastmm.core.types import HedgeFilled, Liquidity, NewOrder, Side
from fastmm.fix.session import LoggedOn
from fastmm.journal.records import (
    Ack,
    Cancel,
    Canceled,
    Fill,
    HedgeFill,
    Note,
    Order,
    Phase,
    Record,
    Reject,
    Session,
    line_of,
)
from fastmm.procs.book_channel import BookPublisher
from fastmm.procs.quoter import Quoter
from fastmm.procs.quoter_desk import Command, QuoterDesk, i64
from fastmm.shm import EventRing, LatestValue, unlink_instance
from fastmm.shm.records import (
    FILL,
    POSITION,
    STATE_FLAT,
    STATE_JOURNAL_FAILED,
    STATE_QUOTING,
    STATE_RISK_TRIPPED,
    TOP_OF_BOOK,
    VENUE_COINBASE,
)
from fastmm.venues.truex.codec import ExecutionReport

E8 = 10**8


class FakeJournal:
    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log
        self.failing = ""
        self.held_records = 0

    def write(self, rec: object) -> int:
        self.log.append(("write", rec))
        if self.failing:
            self.held_records += 1
        return 0

    def write_tail(self, tail: bytes) -> int:
        """The quoter's orders come encoded (order_entry): logged as the record the line holds."""
        return self.write(Record.from_line(line_of(0, tail)))

    def retry(self) -> bool:
        self.failing = ""
        return True


class FakeInitiator:
    logged_on = True

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def send(self, msg_type: bytes, body: bytes) -> None:
        self.log.append(("send", msg_type, body))


class FakeLink:
    def __init__(self) -> None:
        self.state = 0
        self.acked: list[int] = []

    def set_state(self, bits: int, on: bool = True) -> None:
        self.state = (self.state | bits) if on else (self.state & ~bits)

    def ack(self, cid: int) -> None:
        self.acked.append(cid)


class Desk:
    """A Quoter on this test's channels: ref.coinbase, position, hedge.fills."""

    def __init__(self, instance: str) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.ref = LatestValue.create(instance, "ref.coinbase", TOP_OF_BOOK)
        self.position = LatestValue.create(instance, "position", POSITION)
        self.ring = EventRing.create(instance, "hedge.fills", FILL, capacity=16)
        self.journal = FakeJournal(self.log)
        self.link = FakeLink()
        self.q = Quoter(Config(), self.link, self.journal, {"coinbase": self.ref}, None,  # type: ignore[arg-type]
                        self.ring, self.position)
        self.q.codec.set_client_id("C1")
        self.q.initiator = FakeInitiator(self.log)  # type: ignore[assignment]
        self.pub = BookPublisher(self.ref, VENUE_COINBASE)
        self.venue_seq = 0

    def price(self, bid: int = 100_000, ask: int = 100_001) -> None:
        now = time.monotonic_ns()
        self.venue_seq += 1
        self.pub.publish([(bid * E8, E8)], [(ask * E8, E8)], t_venue_ns=now, t_recv_ns=now,
                         venue_seq=self.venue_seq)
        self.q.on_wake()

    def take(self) -> list[tuple[Any, ...]]:
        out = list(self.log)
        self.log.clear()
        return out

    def close(self) -> None:
        for ch in (self.ref, self.position, self.ring):
            ch.close()


@pytest.fixture
def desk() -> Iterator[Desk]:
    instance = f"qu{os.getpid()}{time.monotonic_ns() % 10**6}"
    d = Desk(instance)
    try:
        yield d
    finally:
        d.close()
        unlink_instance(instance)


def report(cl: str, exec_type: str, *, exec_id: str = "", side: str = "1", px: int = 0, qty: int = 0,
           leaves: int = 0, orig: str = "") -> ExecutionReport:
    return ExecutionReport(seq=1, poss_dup=False, order_id="O-" + cl, cl_ord_id=cl, orig_cl_ord_id=orig,
                           exec_id=exec_id or f"E-{cl}-{exec_type}", exec_type=exec_type, ord_status="",
                           side=side, ord_type="2", price=px, order_qty=qty, last_px=px, last_qty=qty,
                           leaves_qty=leaves, cum_qty=qty, avg_px="", tif="", transact_time_ns=0, text="",
                           liquidity=1, fees=(), trd_match_id="", party_id="")


def quoting(d: Desk) -> list[NewOrder]:
    """start_quoting and one price: the core's new orders, acknowledged by the venue."""
    assert d.q.on_command(1, "start_quoting") is True
    d.price()
    out = d.take()
    orders = [r for kind, r, *_ in out if kind == "write" and isinstance(r, Order)]
    assert orders, out
    for o in orders:
        d.q.on_record(report(o.cl_ord_id, "0"), time.monotonic_ns())
    d.take()
    return [NewOrder(o.cl_ord_id, o.side, o.price_ticks, o.qty_lots) for o in orders]


# -- the Quoter shell on the desk ---------------------------------------------------------------------
def test_price_event_journals_each_order_before_its_bytes(desk: Desk) -> None:
    assert desk.q.on_command(1, "start_quoting") is True
    assert desk.link.state & STATE_QUOTING
    first = desk.take()
    assert [type(r) for kind, r, *_ in first if kind == "write"][:1] == [Phase]   # "quoting started"
    desk.price()
    out = desk.take()
    sends = [i for i, e in enumerate(out) if e[0] == "send"]
    assert sends and all(e[1] == b"D" for e in out if e[0] == "send")
    for i in sends:                      # each message right after its own order record
        kind, rec = out[i - 1][:2]
        assert kind == "write" and isinstance(rec, Order)
        assert rec.cl_ord_id.encode() in out[i][2]
    assert desk.q.sent == len(sends)
    assert desk.q.core.live_orders == len(sends)
    assert not desk.link.state & STATE_FLAT


def test_fill_booked_once_by_exec_id(desk: Desk) -> None:
    orders = quoting(desk)
    o = orders[0]
    side = "1" if o.side == Side.BUY else "2"
    fill = report(o.cl_ord_id, "F", exec_id="X1", side=side, px=o.price_ticks, qty=1, leaves=o.qty_lots - 1)
    desk.q.on_record(fill, time.monotonic_ns())
    out = desk.take()
    assert [type(r) for k, r, *_ in out if k == "write"][:1] == [Fill]
    pos = 1 if o.side == Side.BUY else -1
    assert desk.q.core.inventory.position_lots == pos and desk.q.fills == 1
    assert desk.position.read() > 0 and int(desk.position.rx[0]["truex_fills"]) == 1
    desk.q.on_record(fill, time.monotonic_ns())                  # resent (PossDup): a note, not booked
    out = desk.take()
    notes = [r for k, r, *_ in out if k == "write" and isinstance(r, Note)]
    assert len(notes) == 1 and notes[0].detail == "duplicate fill ignored"
    assert not any(isinstance(r, Fill) for k, r, *_ in out if k == "write")
    assert desk.q.core.inventory.position_lots == pos and desk.q.fills == 1


def test_hedge_fill_from_the_ring_is_journalled_booked_and_published(desk: Desk) -> None:
    desk.ring.claim_producer()
    tx = desk.ring.tx[0]
    tx["side"], tx["px_e8"], tx["qty_e8"], tx["fee_e8"] = -1, 100_000 * E8, 3 * 10_000, 12_345
    tx["exec_id"] = b"K-1:30000"
    assert desk.ring.push()
    publish = desk.q.publish_position
    unreleased: list[int] = []

    def publish_noting_the_ring(now_ns: int) -> None:
        unreleased.append(len(desk.ring))
        publish(now_ns)
    desk.q.publish_position = publish_noting_the_ring        # type: ignore[method-assign]
    desk.q.drain_hedge_fills(time.monotonic_ns())
    assert unreleased == [1], "the position is published before the slot is released (the stop's check)"
    assert len(desk.ring) == 0
    out = desk.take()
    fills = [r for k, r, *_ in out if k == "write" and isinstance(r, HedgeFill)]
    assert len(fills) == 1
    hf = fills[0]
    assert (hf.exec_id, hf.side, hf.qty_lots, hf.price_e8, hf.fee_e8, hf.source) == \
        ("K-1:30000", Side.SELL, 3, 100_000 * E8, 12_345, "quoter")
    assert desk.q.core.inventory.position_lots == -3 and desk.q.hedge_fills == 1
    assert desk.position.read() > 0
    assert int(desk.position.rx[0]["hedge_fills"]) == 1 and int(desk.position.rx[0]["position_lots"]) == -3
    desk.q.drain_hedge_fills(time.monotonic_ns())                # nothing more on the ring
    assert desk.take() == []


def test_journal_full_alert_trips_once_sends_cancels_not_orders(desk: Desk) -> None:
    orders = quoting(desk)
    desk.journal.failing = "cannot write journal: No space left on device"
    desk.price(100_010, 100_011)       # a move: the core wants to replace, the journal cannot keep it
    out = desk.take()
    assert desk.q.journal_alerted and desk.q.core.risk.tripped
    sent = [e for e in out if e[0] == "send"]
    assert sent and all(e[1] == b"F" for e in sent), [e[1] for e in sent]      # cancels only
    cancels = [r for k, r, *_ in out if k == "write" and isinstance(r, Cancel)]
    assert {c.orig_cl_ord_id for c in cancels} <= {o.cl_ord_id for o in orders}
    rejects = [r for k, r, *_ in out if k == "write" and isinstance(r, Reject)]
    assert all(r.text == "not sent: the journal cannot write" for r in rejects)
    assert desk.link.state & STATE_JOURNAL_FAILED and desk.link.state & STATE_RISK_TRIPPED
    desk.q.check_journal(time.monotonic_ns())          # once per episode
    assert desk.take() == []
    desk.q.retry_journal()
    assert not desk.q.journal_alerted and not desk.link.state & STATE_JOURNAL_FAILED


def test_cancel_all_cancels_every_quote_and_acks_once_confirmed(desk: Desk) -> None:
    orders = quoting(desk)
    assert desk.q.on_command(7, "cancel_all") is False
    assert not desk.link.state & STATE_QUOTING and not desk.q.quoting
    out = desk.take()
    cancels = [r for k, r, *_ in out if k == "write" and isinstance(r, Cancel)]
    assert {c.orig_cl_ord_id for c in cancels} == {o.cl_ord_id for o in orders}
    assert len([e for e in out if e[0] == "send" and e[1] == b"F"]) == len(cancels)
    for c in cancels[:-1]:
        desk.q.on_record(report(c.cl_ord_id, "4", orig=c.orig_cl_ord_id), time.monotonic_ns())
    assert desk.link.acked == []              # one still working
    last = cancels[-1]
    desk.q.on_record(report(last.cl_ord_id, "4", orig=last.orig_cl_ord_id), time.monotonic_ns())
    assert desk.link.acked == [7] and desk.link.state & STATE_FLAT
    assert sum(isinstance(r, Canceled) for k, r, *_ in desk.take() if k == "write") == len(cancels)


def test_cancel_before_exit_cancels_and_reports_what_is_left(desk: Desk) -> None:
    orders = quoting(desk)
    left = asyncio.run(desk.q.cancel_before_exit(timeout_s=0.05))
    out = desk.take()
    cancels = [r for k, r, *_ in out if k == "write" and isinstance(r, Cancel)]
    assert {c.orig_cl_ord_id for c in cancels} == {o.cl_ord_id for o in orders}
    assert left == len(orders)                # nobody answered: journalled as possibly live
    assert any(k == "write" and "not confirmed canceled" in getattr(r, "detail", "") for k, r, *_ in out)
    for c in cancels:                         # confirmed now: nothing left to cancel at the next exit
        desk.q.on_record(report(c.cl_ord_id, "4", orig=c.orig_cl_ord_id), time.monotonic_ns())
    desk.take()
    assert asyncio.run(desk.q.cancel_before_exit(timeout_s=0.05)) == 0 and desk.take() == []


def test_not_logged_on_writes_records_sends_nothing(desk: Desk) -> None:
    desk.q.initiator.logged_on = False  # type: ignore[union-attr]
    desk.q.on_command(1, "start_quoting")
    desk.price()
    out = desk.take()
    assert [e for e in out if e[0] == "send"] == []
    assert not any(isinstance(r, Order) for k, r, *_ in out if k == "write")
    assert any(isinstance(r, Phase) for k, r, *_ in out if k == "write")


# -- the desk alone ----------------------------------------------------------------------------------
def _desk() -> QuoterDesk:
    from fastmm.core.trading_core import TradingCore
    return QuoterDesk(TradingCore(Config(), cl_ord_prefix="t"))


def test_desk_session_events_become_records() -> None:
    d = _desk()
    assert d.session(LoggedOn(next_sender=5, next_target=9, heartbeat_s=30, reset=False), 1, 2) is True
    (rec,) = d.take()
    assert isinstance(rec, Session) and (rec.event, rec.next_sender, rec.next_target, rec.t_ns) == \
        ("logged_on", 5, 9, 2)
    assert d.session(object(), 1, 2) is None and d.take() == []


def test_desk_commands() -> None:
    d = _desk()
    d.reconciling = True
    assert d.command(3, "start_quoting", 1, 1) is Command.WAIT and d.deferred_start == 3 and not d.quoting
    d.reconciling = False
    assert d.command(4, "start_quoting", 1, 1) is Command.START and d.quoting
    assert isinstance(d.take()[0], Phase)
    assert d.command(5, "pull_quotes", 1, 1) is Command.ACK and not d.quoting
    assert d.command(6, "cancel_all", 1, 1) is Command.WAIT and d.cancel_all_cmd == 6
    assert d.after_orders() == 6 and d.after_orders() == 0          # nothing live: acknowledged once
    assert d.command(7, "logout", 1, 1) is Command.LOGOUT
    assert d.command(8, "something_else", 1, 1) is Command.ACK


def test_desk_journal_failing_trips_once_per_episode() -> None:
    d = _desk()
    assert d.journal_failing("", 1) is False
    assert d.journal_failing("disk full", 1) is True and d.risk_tripped
    assert d.journal_failing("disk full", 2) is False
    d.journal_alerted = False                    # the shell: every held record written
    assert d.journal_failing("disk full again", 3) is True


def test_desk_hedge_fill_booked_once_by_exec_id() -> None:
    d = _desk()
    r = {"qty_e8": 20_000, "side": 1, "px_e8": 99_000 * E8, "fee_e8": 5, "exec_id": b"K:2"}
    d.hedge_fill(r, 10_000, 1, 7)
    d.hedge_fill(r, 10_000, 2, 8)      # the same id again (the ring redelivers after a crash): a note only
    out = d.take()
    recs = [x for x in out if isinstance(x, HedgeFill)]
    assert [x.t_ns for x in recs] == [7]
    assert [(x.detail, x.exec_id) for x in out if isinstance(x, Note)] == [("duplicate hedge fill ignored", "K:2")]
    assert d.core.inventory.position_lots == 2 and d.hedge_fills == 1


def test_desk_not_sent_rejects_and_books_the_refusal() -> None:
    d = _desk()
    a = NewOrder("t1", Side.BUY, 200_000, 1)
    rec = d.not_sent(a, 9)
    assert isinstance(rec, Reject) and (rec.cl_ord_id, rec.t_ns) == ("t1", 9)
    d.book_unsent(1)
    assert d._unsent == []


def test_desk_report_ack_then_fill_ids_persist_from_recovery() -> None:
    d = _desk()
    assert d.report(report("zz", "0"), 1, 5) is False
    (ack,) = d.take()
    assert isinstance(ack, Ack) and ack.t_ns == 5

    rec = SimpleNamespace(truex_fills=4, hedge_fills=2, fill_ids={"A", "B"},
                          unbooked_hedge_fills=[HedgeFilled("H1", Side.BUY, 1, Decimal(100), Liquidity.TAKER)])
    d.recovered(rec, 11)  # type: ignore[arg-type]
    (hf,) = d.take()
    assert isinstance(hf, HedgeFill) and hf.recovered and hf.exec_id == "H1"
    assert (d.fills, d.hedge_fills) == (4, 2) and "A" in d.fill_ids


def test_i64_clamps() -> None:
    assert i64(5) == 5 and i64(10**30) == (1 << 63) - 1 and i64(-(10**30)) == -((1 << 63) - 1)
