"""quoter: the only process that writes orders and position.

It owns the TrueX order-entry FIX session, so a decision reaches the socket without another hop. Every
reference update (woken by the channel's eventfd, or by polling in ``spin`` mode) goes through the
PriceAggregator into the TradingCore, and the core's actions go straight out as FIX messages; every
ExecutionReport comes back into the core; every hedge fill from the hedger's ring too. Market trades of
the reference feeds (``trades.<venue>``) are drained before each decision into the core's
``on_trade``, as the backtest feeds them. The position and PnL it publishes are what the hedger and
``fastmm status`` read.

Write-ahead: each order, cancel and replace is journalled before its bytes are written, and each ack and
fill when it arrives, so after a crash :mod:`fastmm.procs.recovery` knows every order that may be live.

A journal that cannot write (full disk) never stops a report from reaching the core: the journal keeps
the records in memory (``hold``) and writes them once the disk takes them. The quoter then trips the
kill switch (every quote cancelled; a cancel is sent whether or not its record reached the disk, a new
order or replace is not sent at all), raises an alert (log, the ``journal_failed`` health bit that
``fastmm status`` and the metrics show), and the FIX sequence store keeps the inbound number at the first
report not written (fastmm.fix.store.CommittedTargetStore), so a restart gets TrueX to resend it. See
ops/disk-full.md.

Start sequence: it logs on to order entry only once the phase says the reference feeds are up, and
quotes only after the supervisor's ``start_quoting``; ``pull_quotes`` and ``cancel_all`` cancel every
quote (``cancel_all`` is acknowledged once the venue has confirmed every cancel), ``logout`` logs out.

Latency: each stage is recorded on the hot path into a preallocated buffer (:mod:`fastmm.latency`); the
housekeeping timer publishes the percentiles to the ``latency.quoter`` channel about once a second
(:mod:`fastmm.procs.latency_channel`) for ``fastmm status`` and ``fastmm metrics``, and the table is
written to ``latency.quoter.txt`` at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from typing import Protocol

from fastmm import speedups
from fastmm.config import Config
from fastmm.core.ids import RecentIds, base36
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import Action, CancelOrder, OrderEvent
from fastmm.fix.session import AppMessage
from fastmm.fix.store import CommittedTargetStore
from fastmm.fix.transport import FixConnection, FixInitiator
from fastmm.journal import Journal, Record
from fastmm.latency import LatencyRecorder
from fastmm.logs import reason
from fastmm.procs.book_channel import read_top
from fastmm.procs.child import SupervisorLink, serve_supervisor, stop_on_signals
from fastmm.procs.firm_gate import FirmGate
from fastmm.procs.latency_channel import LatencyPublisher, StageLatencyView
from fastmm.procs.order_journal import order_entry
from fastmm.procs.plan import QUOTER_LATENCY
from fastmm.procs.quoter_desk import Command, QuoterDesk, fill_position
from fastmm.procs.recovery import recover
from fastmm.procs.rehearsal import Rehearsal
from fastmm.procs.trade_channel import pop_trade, trades_channel
from fastmm.procs.venue_reconcile import reconcile_at_start
from fastmm.shm import EventRing, LatestValue, SegmentMissing
from fastmm.shm.records import (
    FILL,
    POSITION,
    STAGE_LATENCY,
    STATE_CONNECTED,
    STATE_FLAT,
    STATE_JOURNAL_FAILED,
    STATE_LOGGED_ON,
    STATE_QUOTING,
    STATE_RISK_TRIPPED,
    TOP_OF_BOOK,
    TRADE,
)
from fastmm.venues.truex import factory as truex_sessions
from fastmm.venues.truex.codec import TruexCodec

log = logging.getLogger("fastmm.quoter")

PHASE_FEEDS_UP = 1
TIMER_S = 0.05
EXIT_CANCEL_S = 5.0             # on the way out: time for every cancel to be confirmed (10 at 8/s take 1.3 s)


def _desk_attr(name: str) -> property:
    return property(lambda q: getattr(q.desk, name), lambda q, v: setattr(q.desk, name, v))


class QuoterTrace(Protocol):
    """Hooks at the quoter's named stages, for a harness that measures the price path from outside
    (``bench/latency``) without changing it; production runs without one (one ``is None`` test per stage).

    They are called synchronously on the price path, in this order for one price event: ``received``
    (woken, before the channels are read), ``decided`` (the core answered, before any order goes out),
    ``sent`` once per order message (its bytes written), ``done`` (the event's orders are out and its
    bookkeeping finished). Anything slow belongs in ``done`` or later: it is measured otherwise.
    """

    def attach(self, quoter: Quoter) -> None:
        """Called once by the quoter's constructor."""

    def received(self, now_ns: int) -> None:
        """A wake at ``now_ns`` (CLOCK_MONOTONIC), before the book channels are read."""

    def decided(self, actions: list[Action], now_ns: int, t_decide_ns: int) -> None:
        """The core answered the price event of ``now_ns`` with ``actions`` at ``t_decide_ns``."""

    def sent(self, action: Action, t_sent_ns: int) -> None:
        """The message of ``action`` was written to the order-entry socket at ``t_sent_ns``."""

    def done(self, now_ns: int) -> None:
        """The price event of ``now_ns`` is finished."""

    def busy(self, what: str, t0_ns: int, t1_ns: int) -> None:
        """The loop ran ``what`` (``rehearsal``, ``timer``, ``order_entry``: not a price event) from
        ``t0_ns`` to ``t1_ns``: a price published meanwhile waited for it (tail attribution)."""


class Quoter:
    """The shell's state: channels, the order-entry session, the journal; the decisions are the core's
    and the desk's (:class:`fastmm.procs.quoter_desk.QuoterDesk`)."""

    def __init__(self, cfg: Config, link: SupervisorLink | None, journal: Journal,
                 refs: dict[str, LatestValue], truex_book: LatestValue | None, hedge_ring: EventRing | None,
                 position: LatestValue | None, *, trace: QuoterTrace | None = None) -> None:
        self.cfg = cfg
        self.link = link
        self.journal = journal
        self.refs = refs
        self.truex_book = truex_book
        self.hedge_ring = hedge_ring
        self.trade_rings: dict[str, EventRing] = {}     # venue -> its market trades (drain_trades)
        self.position = position
        prefix = base36(time.time_ns() // 10_000_000)[-7:]       # unique per run (10 ms resolution)
        self.core = TradingCore.from_config(cfg, cl_ord_prefix=prefix)
        self.desk = QuoterDesk(self.core)
        client_id = cfg.truex.client_id.reveal() if cfg.truex.client_id else ""
        self.codec = TruexCodec(self.core.instrument, client_id)
        self.tick_e8 = self.core.instrument.tick_e8
        self.lot_e8 = self.core.instrument.lot_e8
        self.initiator: FixInitiator | None = None
        self.seq_store: CommittedTargetStore | None = None
        self.latency = LatencyRecorder()
        self._last_ref_seq: dict[str, int] = {}
        self._last_book_seq = 0
        self._wake_ns = 0
        self._t_decide = 0
        self.firm_gate: FirmGate | None = None
        self.core.stop(time.monotonic_ns())      # halted until the supervisor says start_quoting
        self.trace = trace
        if trace is not None:
            trace.attach(self)

    # the desk's state, as the quoter's (the latency bench, reconcile_at_start and tests read these)
    quoting = _desk_attr("quoting")
    sent = _desk_attr("sent")
    fills = _desk_attr("fills")
    hedge_fills = _desk_attr("hedge_fills")
    reconciling = _desk_attr("reconciling")
    deferred_start = _desk_attr("deferred_start")
    journal_alerted = _desk_attr("journal_alerted")

    @property
    def _fill_ids(self) -> RecentIds:
        return self.desk.fill_ids

    def ref_seq(self, venue: str) -> int | None:
        """Sequence of the last record read from the ``venue`` reference channel (None: none yet)."""
        return self._last_ref_seq.get(venue)

    # -- FIX ----------------------------------------------------------------------------------------
    def make_initiator(self) -> FixInitiator:
        # the durable "next expected" moves only once the journal holds what came before (a full disk)
        self.initiator = truex_sessions.order_entry(self.cfg, self.codec.decode, self.on_fix_event,
                                                    wrap_store=CommittedTargetStore)
        store = self.initiator.session.store
        assert isinstance(store, CommittedTargetStore)     # wrap_store made it so
        self.seq_store = store
        return self.initiator

    @property
    def logged_on(self) -> bool:
        return self.initiator is not None and self.initiator.logged_on

    def on_fix_event(self, conn: FixConnection, ev: object) -> None:
        now = time.monotonic_ns()
        self._on_fix_event(ev, now)
        if self.trace is not None:
            self.trace.busy("order_entry", now, time.monotonic_ns())

    def _on_fix_event(self, ev: object, now: int) -> None:
        if isinstance(ev, AppMessage):
            if ev.record is not None:
                self.on_record(ev.record, now)
            store = self.seq_store
            if store is not None:
                if self.journal.failing:
                    store.hold(ev.msg.seq)    # not on disk: TrueX must resend it after a restart
                else:
                    store.commit(ev.msg.seq)
        else:
            up = self.desk.session(ev, now, time.time_ns())
            if up is not None:
                if up:
                    log.info("order entry logged on")
                self.flush(now)
                self._set(STATE_LOGGED_ON | STATE_CONNECTED, up)
        self.check_journal(now)

    def check_journal(self, now_ns: int) -> None:
        """A journal that cannot write: alert once, trip the kill switch, cancel every quote."""
        if not self.desk.journal_failing(self.journal.failing, now_ns):
            return
        log.error("ALERT: %s; %d record(s) held in memory. Quoting halted, every quote cancelled; free space "
                  "(ops/disk-full.md)", self.journal.failing, self.journal.held_records)
        self._set(STATE_JOURNAL_FAILED | STATE_RISK_TRIPPED, True)
        self.flush(now_ns)
        self._after_orders()
        self.publish_position(now_ns)

    def retry_journal(self) -> None:
        """Write what the disk refused; once it is all written, the inbound sequence number may move."""
        if not self.journal.failing:
            return
        if self.journal.retry():
            log.warning("journal writing again: every held record is written; the kill switch stays tripped "
                        "until the engine is restarted (ops/disk-full.md)")
            self.desk.journal_alerted = False
            self._set(STATE_JOURNAL_FAILED, False)
            if self.seq_store is not None:
                self.seq_store.release()
                self.seq_store.commit()

    def _set(self, bits: int, on: bool) -> None:
        if self.link is not None:
            self.link.set_state(bits, on)

    def send_actions(self, actions: list[Action], now_ns: int) -> None:
        if actions:
            self.desk.out += actions
            self.flush(now_ns)

    def flush(self, now_ns: int) -> None:
        """Write the desk's output in order: each record, and each order's record before its bytes (a
        new order or replace not sent at all while the journal cannot write; a cancel always)."""
        out = self.desk.take()
        if not out:
            return
        desk, journal = self.desk, self.journal
        write, write_tail, wall = journal.write, journal.write_tail, time.time_ns()
        ini = self.initiator
        send = ini.send if ini is not None and ini.logged_on else None
        orders = unsent = 0
        for a in out:
            if isinstance(a, Record):
                write(a)
                continue
            orders += 1
            if send is None:
                continue
            tail, msg_type, body = order_entry(self.codec, a, wall)
            write_tail(tail)                 # write-ahead: journalled before its bytes are written
            if journal.failing and not isinstance(a, CancelOrder):
                write(desk.not_sent(a, wall))
                unsent += 1
                continue
            send(msg_type, body)
            if self.trace is not None:
                self.trace.sent(a, time.monotonic_ns())
            desk.sent += 1
        if not orders:
            return
        if send is None:
            log.warning("order entry not logged on: %d action(s) not sent", orders)
            return
        if unsent:
            desk.book_unsent(now_ns)
        if journal.failing and not desk.journal_alerted:
            self.check_journal(now_ns)
        if self._wake_ns == now_ns:
            self.latency["decide_to_sent"].record(time.monotonic_ns() - self._t_decide)

    # -- execution events -----------------------------------------------------------------------
    def on_record(self, rec: object, now_ns: int) -> None:
        if self.desk.report(rec, now_ns, time.time_ns()):
            self.publish_position(now_ns)
        self.flush(now_ns)
        self._after_orders()

    def core_event(self, ev: OrderEvent, now_ns: int) -> None:
        if self.desk.order_event(ev, now_ns):
            self.publish_position(now_ns)
        self.flush(now_ns)
        self._after_orders()

    def _after_orders(self) -> None:
        self._set(STATE_FLAT, self.core.live_orders == 0)
        cid = self.desk.after_orders()
        if cid and self.link is not None:
            self.link.ack(cid)

    # -- hedge fills ----------------------------------------------------------------------------
    def drain_hedge_fills(self, now_ns: int) -> None:
        ring = self.hedge_ring
        if ring is None:
            return
        any_fill = False
        # Booked and published before its slot is released: the stop's logout step takes an empty ring
        # to mean that every hedge fill is in the published position (the report reads it next).
        while (record := ring.try_peek()) is not None:
            self.desk.hedge_fill(record, self.lot_e8, now_ns, time.time_ns())
            self.flush(now_ns)
            self.publish_position(now_ns)
            ring.release()
            any_fill = True
        if any_fill:
            self.check_journal(now_ns)

    # -- market trades ------------------------------------------------------------------------------
    def drain_trades(self, now_ns: int) -> int:
        """Every trade the reference feeds published since the last call, into the core as the backtest
        gives them (price in ticks of the quoted instrument, rounded; the taker's side; the size): the
        edge model's signed flow and the intensity fit. No decision here: the next price event or timer
        decides on them, as in the backtest. Returns how many."""
        n = 0
        tick = self.tick_e8
        half = tick // 2
        on_trade = self.core.on_trade
        for ring in self.trade_rings.values():
            while (tr := pop_trade(ring)) is not None:
                on_trade(now_ns, (tr.price_e8 + half) // tick, tr.taker_side, tr.size_e8)
                n += 1
        return n

    # -- prices -----------------------------------------------------------------------------------
    def on_wake(self) -> None:
        """Something may have changed in the reference or TrueX book channels: run the price path."""
        now = time.monotonic_ns()
        self._wake_ns = now
        if self.trace is not None:
            self.trace.received(now)
        core = self.core
        if self.trade_rings:
            self.drain_trades(now)
        changed = False
        for name, ch in self.refs.items():
            seq = ch.version()
            if seq == self._last_ref_seq.get(name):
                continue
            top = read_top(ch)
            if top is None:
                continue
            self._last_ref_seq[name] = top.seq
            self.latency["recv_to_pub"].record(top.t_pub_ns - top.t_recv_ns)
            self.latency["pub_to_wake"].record(now - top.t_pub_ns)
            # sizes too: the edge model's microprice (its trade flow comes from drain_trades)
            changed = core.on_reference(now, name, top.bid_e8, top.ask_e8, top.t_recv_ns, not top.usable,
                                        top.bid_sz_e8, top.ask_sz_e8) or changed
        book = self.truex_book
        if book is not None and book.version() != self._last_book_seq:
            top = read_top(book)
            if top is not None:
                self._last_book_seq = top.seq
                tick = self.tick_e8
                core.on_truex_top(top.bid_e8 // tick, top.ask_e8 // tick if top.ask_e8 else 0)
                changed = True
        if not changed:
            return
        self.price_event(core.decide(now), now)

    def price_event(self, actions: list[Action], now: int) -> None:
        """Every price goes to the core, quoting or not (it keeps the risk checks' data fresh); until
        ``start_quoting`` the engine is halted, so it answers with nothing but cancels. Here: what the
        core decided goes out."""
        self._t_decide = t_decide = time.monotonic_ns()
        self.latency["wake_to_decide"].record(t_decide - now)
        trace = self.trace
        if trace is not None:
            trace.decided(actions, now, t_decide)
        self.send_actions(actions, now)
        if actions:
            self._after_orders()
        if self.desk.pull_changed:
            self.desk.note_pull(now, time.time_ns())
            self.flush(now)
        if trace is not None:
            trace.done(now)

    def on_timer(self) -> None:
        now = time.monotonic_ns()
        self.retry_journal()
        if self.trade_rings:
            self.drain_trades(now)      # a quiet book: the ring still empties, and the timer may decide
        desk = self.desk
        desk.on_timer(now, time.time_ns())
        self.flush(now)
        if self.firm_gate is not None:      # the firm-wide cap, off the price path (fastmm.procs.firm_gate)
            desk.firm_bounds(self.firm_gate.bounds(self.core.inventory.position_lots, now), now)
            self.flush(now)
        desk.core_events(time.time_ns())
        self.flush(now)
        self._set(STATE_RISK_TRIPPED, desk.risk_tripped)
        self.check_journal(now)
        if self.seq_store is not None and not self.journal.failing:
            self.seq_store.commit()      # everything delivered so far is journalled
        self.publish_position(now)
        self._after_orders()

    def publish_position(self, now_ns: int) -> None:
        ch = self.position
        if ch is not None:
            fill_position(ch.tx[0], self.desk, now_ns)
            ch.publish()

    # -- supervisor commands ----------------------------------------------------------------------
    def on_command(self, cid: int, name: str) -> bool:
        now = time.monotonic_ns()
        verdict = self.desk.command(cid, name, now, time.time_ns())
        if verdict is Command.LOGOUT:
            if self.initiator is None:
                return True
            asyncio.get_running_loop().create_task(self._logout(cid))
            return False
        self._set(STATE_QUOTING, self.desk.quoting)
        if verdict is Command.START:
            self.flush(now)
            self.price_event(self.core.resume(now), now)
            return True
        self.flush(now)
        if self.desk.cancel_all_cmd == cid:
            self._after_orders()
        return verdict is Command.ACK

    async def cancel_before_exit(self, timeout_s: float = EXIT_CANCEL_S) -> int:
        """Whatever ends the process (the supervisor's exit, SIGTERM, the supervisor's death through
        PR_SET_PDEATHSIG): cancel every working order and wait for the venue to confirm each, paced by the
        rate limiter, before the logout. A normal stop has done this already (``cancel_all``), so this
        costs nothing then. Returns how many orders are still not confirmed ended (logged, journalled)."""
        now = time.monotonic_ns()
        working = self.desk.exit_stop(now)
        if not working:
            return 0
        tracker = self.core.engine.tracker
        self._set(STATE_QUOTING, False)
        log.warning("exiting with %d order(s) working: canceling them before the logout", working)
        self.flush(now)
        deadline = now + int(timeout_s * 1e9)
        while tracker.working and self.logged_on and now < deadline:
            await asyncio.sleep(TIMER_S / 5)
            now = time.monotonic_ns()
            self.send_actions(self.core.on_timer(now), now)    # the cancels the rate limit held back
            self.drain_hedge_fills(now)
        left = len(tracker.working)
        self.publish_position(now)
        if left:
            why = f"not confirmed in {timeout_s:g} s" if self.logged_on else "order entry is not logged on"
            log.error("exiting with %d order(s) possibly live on TrueX: %s (the next start cancels them)",
                      left, why)
            self.desk.exit_left(left, time.time_ns())
            self.flush(now)
        else:
            log.warning("every order confirmed canceled; logging out")
        return left

    async def _logout(self, cid: int) -> None:
        assert self.initiator is not None
        await self.initiator.stop("fastmm stopping")
        if self.link is not None:
            self.link.ack(cid)


async def keep_warm(q: Quoter, rehearsal: Rehearsal, every_ms: int, stop: asyncio.Event) -> None:
    """Rehearse the price path after ``every_ms`` without a price event, while quoting (before, a late
    tick costs nothing; see fastmm.procs.rehearsal)."""
    period_ns = every_ms * 1_000_000
    period_s = every_ms / 1000.0
    log.info("rehearsal on: the price path runs on a shadow core after %d ms without a price", every_ms)
    try:
        while not stop.is_set():
            await asyncio.sleep(period_s)
            now = time.monotonic_ns()
            if q.quoting and now - q._wake_ns >= period_ns:
                rehearsal.run(now, time.time_ns())
                if q.trace is not None:
                    q.trace.busy("rehearsal", now, time.monotonic_ns())
    except Exception:   # a rehearsal must never take the quoter down: it stops, quoting goes on
        log.exception("rehearsal failed; it is off for the rest of this run")
    finally:
        log.info("rehearsal: %d runs, %d shadow order messages built (none sent)", rehearsal.runs,
                 rehearsal.orders)


async def run_supervised(cfg: Config, name: str = "quoter", trace: QuoterTrace | None = None) -> int:
    """The quoter process under the supervisor; ``trace`` as :class:`QuoterTrace` says (a harness's)."""
    stop = stop_on_signals()
    loop = asyncio.get_running_loop()
    link = SupervisorLink(cfg, name)
    log.info("%s", speedups.describe("reconcile_plan"))   # a build without it is slower: say which runs
    inst = cfg.instance.name
    refs: dict[str, LatestValue] = {}
    for venue in ("coinbase", "kraken"):
        with contextlib.suppress(SegmentMissing):
            refs[venue] = LatestValue.attach(inst, f"ref.{venue}", TOP_OF_BOOK)
    book: LatestValue | None = None
    with contextlib.suppress(SegmentMissing):
        book = LatestValue.attach(inst, "truex.book", TOP_OF_BOOK)
    ring: EventRing | None = None
    with contextlib.suppress(SegmentMissing):
        ring = EventRing.attach(inst, "hedge.fills", FILL)
        ring.claim_consumer()
    position = LatestValue.attach(inst, "position", POSITION)
    position.claim_writer()
    latency_ch: LatestValue | None = None
    with contextlib.suppress(SegmentMissing):
        latency_ch = LatestValue.attach(inst, QUOTER_LATENCY, STAGE_LATENCY)
        latency_ch.claim_writer()
    cfg.state_path.mkdir(parents=True, exist_ok=True)
    journal = Journal(cfg.state_path / cfg.journal.file, cfg.journal.durability, cfg.journal.rotate_bytes,
                      hold=True)
    q = Quoter(cfg, link, journal, refs, book, ring, position, trace=trace)
    for venue in refs:
        with contextlib.suppress(SegmentMissing):
            trades = EventRing.attach(inst, trades_channel(venue), TRADE)
            trades.claim_consumer()
            while trades.pop():     # published while no quoter ran: old news, not flow
                pass
            q.trade_rings[venue] = trades
    q.firm_gate = FirmGate.attach(cfg)
    recovered = recover(cfg.state_path / cfg.journal.file, q.core, cfg)
    q.desk.recovered(recovered, time.time_ns())
    q.flush(time.monotonic_ns())
    q.publish_position(time.monotonic_ns())
    # Live per-stage latency for `fastmm status` and `fastmm metrics`: from the timer, about once a second.
    latency_pub = (LatencyPublisher(StageLatencyView(q.latency, time.monotonic_ns()), latency_ch)
                   if latency_ch is not None else None)

    # Wake-ups: eventfds in block mode, a polling task in spin mode.
    readers: list[int] = []
    channels: list[LatestValue | EventRing] = [*refs.values(), *([book] if book else [])]
    spin_task = None
    if cfg.shm.wait == "block":
        for ch in channels:
            fd = ch.fileno()

            def wake(ch: LatestValue | EventRing = ch) -> None:
                ch.clear_wakeup()
                q.on_wake()
            loop.add_reader(fd, wake)
            readers.append(fd)
        if ring is not None:
            fd = ring.fileno()

            def hedge_wake() -> None:
                ring.clear_wakeup()
                q.drain_hedge_fills(time.monotonic_ns())
            loop.add_reader(fd, hedge_wake)
            readers.append(fd)
    else:
        async def spin() -> None:
            while not stop.is_set():
                q.on_wake()
                q.drain_hedge_fills(time.monotonic_ns())
                await asyncio.sleep(0)
        spin_task = loop.create_task(spin())

    async def timer() -> None:
        while not stop.is_set():
            t0 = time.monotonic_ns()
            q.on_timer()
            if ring is not None:
                q.drain_hedge_fills(time.monotonic_ns())
            if latency_pub is not None:
                latency_pub.on_timer(time.monotonic_ns())
            if trace is not None:
                trace.busy("timer", t0, time.monotonic_ns())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TIMER_S)

    async def connect_when_feeds_up() -> None:
        while not stop.is_set() and link.phase() < PHASE_FEEDS_UP:
            await asyncio.sleep(0.02)
        if stop.is_set():
            return
        initiator = q.make_initiator()
        fix_task = loop.create_task(initiator.run())
        while not stop.is_set():
            try:
                await initiator.wait_logged_on(cfg.truex.order_entry.logon_timeout_s * 3)
                break
            except TimeoutError:
                if fix_task.done():     # the session gave up for good (a TLS certificate that fails)
                    exc = None if fix_task.cancelled() else fix_task.exception()
                    log.critical("order entry cannot connect: %s; the quoter exits",
                                 reason(exc) if exc else "the session ended")
                    stop.set()
                    return
                log.error("order entry: not logged on yet; still trying")
        # -- reconciliation with TrueX (REST) after logon, before quoting (issue 19) -------------------
        if cfg.truex.reconcile_at_start and not stop.is_set():
            q.reconciling = True
            try:
                await reconcile_at_start(q)
            finally:
                q.reconciling = False
                if q.deferred_start:
                    cid, q.deferred_start = q.deferred_start, 0
                    q.on_command(cid, "start_quoting")
                    link.ack(cid)
        if recovered.possibly_live and not stop.is_set():
            # Tracked as live orders, so the (halted) engine cancels them through its rate limiter, retries
            # what TrueX throttles and ends what TrueX does not know; a burst here would be throttled.
            now = time.monotonic_ns()
            n = recovered.adopt(q.core, now)
            log.warning("recovery: canceling %d order(s) the previous run may have left live, as the rate "
                        "limit allows", n)
            q.send_actions(q.core.requote(now), now)
            q._after_orders()
        await stop.wait()
        await fix_task

    poke = asyncio.Event()
    if cfg.shm.wait == "block":
        control_fd = link.control.fileno()

        def control_wake() -> None:
            link.control.clear_wakeup()
            poke.set()
        loop.add_reader(control_fd, control_wake)
        readers.append(control_fd)
    tasks = [loop.create_task(timer()), loop.create_task(connect_when_feeds_up())]
    if cfg.shm.warm_every_ms > 0:
        tasks.append(loop.create_task(keep_warm(q, Rehearsal(cfg, q.codec, refs, book), cfg.shm.warm_every_ms,
                                                stop)))
    try:
        await serve_supervisor(link, stop, on_command=q.on_command, poke=poke)
    finally:
        stop.set()
        if q.initiator is not None:
            try:
                await q.cancel_before_exit()
            except Exception:   # the logout below must still happen
                log.exception("canceling before the exit failed")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(q.initiator.stop("fastmm exiting"), 5)
        if ring is not None:
            q.drain_hedge_fills(time.monotonic_ns())    # what the hedger published up to now is booked
        for fd in readers:
            loop.remove_reader(fd)
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if spin_task is not None:
            spin_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await spin_task
        q.publish_position(time.monotonic_ns())
        latency_path = cfg.state_path / "latency.quoter.txt"
        with contextlib.suppress(OSError):
            latency_path.write_text(q.latency.table())
            # The session's PnL summary (trades, spread capture, markouts) for the final report.
            summary = dataclasses.asdict(q.core.pnl.summary(time.monotonic_ns()))
            (cfg.state_path / "pnl.quoter.json").write_text(json.dumps(summary, default=str))
        journal.close()
        if q.seq_store is not None and not journal.failing:
            with contextlib.suppress(Exception):
                q.seq_store.commit()     # every report received is journalled
        for ch in channels:
            ch.close()
        if ring is not None:
            ring.close()
        for trades in q.trade_rings.values():
            trades.close()
        position.close()
        if latency_ch is not None:
            latency_ch.close()
        link.close()
    return 0
