"""The quoter's decisions around its trading core, sans-I/O: no socket, channel, file or clock in here.

:class:`QuoterDesk` is what :mod:`fastmm.procs.quoter` (the shell) asks what to do with each input: an
order-entry session event, a venue report, a hedge fill from the ring, a supervisor command, the timer,
a journal that cannot write. Its answers go to :attr:`QuoterDesk.out`, in order: a journal record to
write, or an order action of the core's to journal and send (the shell writes the action's record before
its bytes, :func:`fastmm.procs.order_journal.order_message`). Counters the quoter publishes (fills
booked, hedge fills booked, messages sent) are here too, and :func:`fill_position` fills the
``position`` record from them. Times come in as arguments: ``now_ns`` monotonic, ``wall_ns`` epoch.
"""

from __future__ import annotations

import enum
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fastmm.core.ids import RecentIds
from fastmm.core.pnl import PnlSummary
from fastmm.core.risk import RiskReset, RiskTrip, TripReason
from fastmm.core.trading_core import CoreEvent, TradingCore
from fastmm.core.types import (
    Action,
    HedgeFilled,
    Liquidity,
    MessageRejected,
    NewOrder,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    Side,
)
from fastmm.fix.session import DisconnectWanted, LoggedOn, LoggedOut
from fastmm.journal.records import HedgeFill, Mark, Note, Phase, Pnl, Record, Reject, Risk, to_e8
from fastmm.journal.records import Session as JSession
from fastmm.procs.order_journal import journal_report
from fastmm.units import E8

if TYPE_CHECKING:
    from fastmm.procs.recovery import Recovered

log = logging.getLogger("fastmm.quoter")

MARK_EVERY_NS = 1_000_000_000   # the fair mid goes into the journal at most this often (for the report)
NOT_SENT = "not sent: the journal cannot write"
_I64 = (1 << 63) - 1


def i64(v: int) -> int:
    """A value for an int64 record field: clamped, so an absurd number never makes a publish raise."""
    return v if -_I64 <= v <= _I64 else (_I64 if v > 0 else -_I64)


class Command(enum.Enum):
    """What the shell does after :meth:`QuoterDesk.command`."""

    ACK = "ack"              # acknowledge now
    WAIT = "wait"            # acknowledged later (a deferred start; cancel_all once flat)
    START = "start"          # quote: run the price path on the core's resume, then acknowledge
    LOGOUT = "logout"        # log out of order entry, acknowledged when done


class QuoterDesk:
    """The quoter's state around its :class:`TradingCore` and the decisions on it."""

    def __init__(self, core: TradingCore) -> None:
        self.core = core
        self.out: list[Record | Action] = []    # to journal (a record) or journal and send (an action)
        self.fill_ids = RecentIds()             # ExecIDs journalled and booked (a resent fill once)
        self.fills = 0                          # TrueX fills booked
        self.hedge_fills = 0                    # hedge fills booked
        self.sent = 0                           # order messages written to the socket (the shell counts)
        self.quoting = False
        self.journal_alerted = False            # the journal-cannot-write alert is raised (once an episode)
        self.cancel_all_cmd = 0                 # a cancel_all to acknowledge once no order is live
        self.reconciling = False                # REST reconciliation at start running (venue_reconcile)
        self.deferred_start = 0                 # a start_quoting that came meanwhile, run once it is done
        self.pull_reason = ""                   # why the engine last said its quotes are pulled ("" quoting)
        self._marked_e8 = 0
        self._next_mark_ns = 0
        self._unsent: list[OrderEvent] = []

    # -- output -------------------------------------------------------------------------------------
    def write(self, rec: Record) -> None:
        """A record to journal (also what :func:`journal_report` writes to)."""
        self.out.append(rec)

    def take(self) -> list[Record | Action]:
        """The output so far, in order; the desk's list is then empty."""
        out = self.out
        if out:
            self.out = []
        return out

    def not_sent(self, action: Action, wall_ns: int) -> Reject:
        """``action`` was journalled but not sent (the journal cannot write, so a crash would leave it
        live and unknown to the next start; a cancel is always sent): its reject record, to write now.
        The core learns of it at :meth:`book_unsent`."""
        self._unsent.append(OrderRejected(action.cl_ord_id, NOT_SENT) if isinstance(action, NewOrder)
                            else MessageRejected(action.cl_ord_id, 0, NOT_SENT))
        return Reject(t_ns=wall_ns, cl_ord_id=action.cl_ord_id, text=NOT_SENT)

    def book_unsent(self, now_ns: int) -> None:
        unsent, self._unsent = self._unsent, []
        for ev in unsent:
            self.core.on_order_event(ev, now_ns)

    # -- order entry session and reports ------------------------------------------------------------
    def session(self, ev: object, now_ns: int, wall_ns: int) -> bool | None:
        """A session event: its record; True logged on, False logged off, None neither."""
        if isinstance(ev, LoggedOn):
            self.core.engine.limiter.release_in_flight(now_ns)   # the old connection's answers never come
            self.write(JSession(t_ns=wall_ns, session="oe", event="logged_on", next_sender=ev.next_sender,
                                next_target=ev.next_target))
            return True
        if isinstance(ev, LoggedOut | DisconnectWanted):
            self.write(JSession(t_ns=wall_ns, session="oe", event=type(ev).__name__,
                                detail=str(getattr(ev, "text", getattr(ev, "reason", "")))))
            return False
        return None

    def report(self, rec: object, now_ns: int, wall_ns: int) -> bool:
        """A decoded venue report: journalled, and its event (a fill once by ExecID) into the core.
        True when it was a fill (the position is published)."""
        ev = journal_report(self, rec, self.fill_ids, self.core.fill_problem, t_ns=wall_ns)
        return ev is not None and self.order_event(ev, now_ns)

    def order_event(self, ev: OrderEvent, now_ns: int) -> bool:
        """One order event into the core, its actions to the output; True when it was a fill."""
        core = self.core
        if isinstance(ev, OrderFilled):
            before = core.inventory.position_lots
            self.out += core.on_order_event(ev, now_ns)
            if core.inventory.position_lots != before:
                self.fills += 1      # booked (not a duplicate, not refused as impossible)
            return True
        self.out += core.on_order_event(ev, now_ns)
        return False

    def after_orders(self) -> int:
        """The command to acknowledge now: a ``cancel_all`` once no order is live (0: none)."""
        cid = self.cancel_all_cmd
        if cid and self.core.live_orders == 0:
            self.cancel_all_cmd = 0
            return cid
        return 0

    # -- hedge fills ----------------------------------------------------------------------------------
    def hedge_fill(self, r: Any, lot_e8: int, now_ns: int, wall_ns: int) -> None:
        """One ``FILL`` record of the hedger's ring: journalled, then booked by the core (once)."""
        lots = int(r["qty_e8"]) // lot_e8
        side = Side.BUY if int(r["side"]) > 0 else Side.SELL
        px_e8, fee_e8 = int(r["px_e8"]), int(r["fee_e8"])
        exec_id = bytes(r["exec_id"]).decode("ascii", "replace")
        core = self.core
        if core.hedge_fill_booked(exec_id):     # the ring delivers at least once: again after a crash
            self.write(Note(t_ns=wall_ns, source="quoter", detail="duplicate hedge fill ignored",
                            exec_id=exec_id))
            return
        self.write(HedgeFill(t_ns=wall_ns, source="quoter", exec_id=exec_id, side=side, qty_lots=lots,
                             price_e8=px_e8, fee_e8=fee_e8))
        before = core.inventory.position_lots
        self.out += core.on_hedge_fill(HedgeFilled(exec_id, side, lots, Decimal(px_e8) / E8, Liquidity.TAKER,
                                                   Decimal(fee_e8) / E8), now_ns)
        if core.inventory.position_lots != before:
            self.hedge_fills += 1

    # -- the journal ----------------------------------------------------------------------------------
    def journal_failing(self, failing: str, now_ns: int) -> bool:
        """The journal says ``failing`` ("" writing): True the first time of an episode, when the kill
        switch trips and every quote is canceled (the shell raises the alert)."""
        if not failing or self.journal_alerted:
            return False
        self.journal_alerted = True
        self.core.risk.trip(now_ns, TripReason.JOURNAL, failing)
        self.out += self.core.stop(now_ns)
        return True

    # -- prices and the timer ---------------------------------------------------------------------------
    @property
    def pull_changed(self) -> bool:
        return self.core.engine.pull_reason != self.pull_reason

    def note_pull(self, now_ns: int, wall_ns: int) -> None:
        """Journal why the quotes are pulled whenever that changes (a reference went stale, quoting came
        back): with the monotonic time, so an outage's detection lines up with its cancels."""
        reason = self.pull_reason = self.core.engine.pull_reason
        self.write(Phase(t_ns=wall_ns, detail=f"quotes pulled: {reason}" if reason else "quoting",
                         t_mono_ns=now_ns))

    def on_timer(self, now_ns: int, wall_ns: int) -> None:
        """The core's timer; about once a second the fair mid and a PnL snapshot are journalled (off the
        price path: a session report draws quotes against the mark, the database's hourly views read
        the PnL), before the timer's orders."""
        core = self.core
        actions = core.on_timer(now_ns)       # ages the reference sources first (may decide)
        fair_mid_e8 = core.fair.mid_e8
        if now_ns >= self._next_mark_ns and fair_mid_e8 and fair_mid_e8 != self._marked_e8:
            self._next_mark_ns = now_ns + MARK_EVERY_NS
            self._marked_e8 = fair_mid_e8
            pnl = core.pnl
            self.write(Mark(t_ns=wall_ns, fair_mid_e8=fair_mid_e8))
            self.write(Pnl(t_ns=wall_ns, position_lots=core.inventory.position_lots,
                           realized_e8=pnl.realized_units, unrealized_e8=pnl.unrealized_units,
                           fees_e8=pnl.fees_units, fair_mid_e8=fair_mid_e8))
        self.out += actions
        if self.pull_changed:
            self.note_pull(now_ns, wall_ns)

    def firm_bounds(self, bounds: Any, now_ns: int) -> None:
        """The firm-wide cap's bounds (fastmm.procs.firm_gate): a change requotes."""
        engine = self.core.engine
        if bounds != engine.firm_bounds:
            engine.firm_bounds = bounds
            self.out += self.core.requote(now_ns)

    def core_events(self, wall_ns: int) -> list[CoreEvent]:
        """The core's risk and PnL events: a risk change journalled, each logged."""
        events = self.core.events()
        for ev in events:
            if isinstance(ev, RiskTrip | RiskReset):
                log.error("risk: %s", ev)
                self.write(Risk(t_ns=wall_ns, detail=repr(ev)))
            elif isinstance(ev, PnlSummary):
                log.info("pnl: total %s realized %s unrealized %s fees %s position %d lots, %d trades",
                         ev.total, ev.realized, ev.unrealized, ev.fees, ev.position_lots, ev.trades)
        return events

    @property
    def risk_tripped(self) -> bool:
        return bool(getattr(self.core.risk, "tripped", False))

    # -- supervisor commands ------------------------------------------------------------------------------
    def command(self, cid: int, name: str, now_ns: int, wall_ns: int) -> Command:
        """A supervisor command: ``start_quoting`` (deferred while reconciling), ``pull_quotes`` and
        ``cancel_all`` (every quote canceled; ``cancel_all`` acknowledged once none is live), ``logout``."""
        if name == "start_quoting":
            if self.reconciling:              # the venue's state first (reconcile_at_start)
                self.deferred_start = cid
                return Command.WAIT
            self.quoting = True
            self.write(Phase(t_ns=wall_ns, detail="quoting started"))
            return Command.START
        if name in ("pull_quotes", "cancel_all"):
            self.quoting = False
            self.out += self.core.stop(now_ns)
            if name == "cancel_all":
                self.cancel_all_cmd = cid
                return Command.WAIT
            return Command.ACK
        if name == "logout":
            return Command.LOGOUT
        return Command.ACK

    def exit_stop(self, now_ns: int) -> int:
        """The process is ending: cancel every working order (the shell waits for the venue). Returns
        how many are working."""
        working = len(self.core.engine.tracker.working)
        if working:
            self.quoting = False
            self.out += self.core.stop(now_ns)
        return working

    def exit_left(self, left: int, wall_ns: int) -> None:
        if left:
            self.write(Risk(t_ns=wall_ns, detail=f"exit: {left} order(s) not confirmed canceled"))

    # -- recovery ----------------------------------------------------------------------------------------
    def recovered(self, rec: Recovered, wall_ns: int) -> None:
        """What the start-up recovery booked (fastmm.procs.recovery): counters, ExecIDs; the hedge fills
        it took from the hedger's journal journalled here too."""
        self.fills, self.hedge_fills = rec.truex_fills, rec.hedge_fills
        for hf in rec.unbooked_hedge_fills:
            self.write(HedgeFill(t_ns=wall_ns, source="quoter", exec_id=hf.exec_id, side=hf.side,
                                 qty_lots=hf.qty_lots, price_e8=to_e8(hf.price), fee_e8=to_e8(hf.fee or 0),
                                 recovered=True))
        for exec_id in rec.fill_ids:
            self.fill_ids.add(exec_id)


def fill_position(tx: Any, desk: QuoterDesk, now_ns: int) -> None:
    """The ``position`` record (fastmm.shm.records.POSITION) the hedger and ``fastmm status`` read."""
    core = desk.core
    pnl = core.pnl
    tx["t_pub"] = now_ns
    tx["position_lots"] = i64(core.inventory.position_lots)
    avg = pnl.avg_entry()
    tx["avg_entry_e8"] = i64(int(avg * E8)) if avg is not None and avg.is_finite() else 0
    tx["realized_e8"] = i64(pnl.realized_units)
    tx["unrealized_e8"] = i64(pnl.unrealized_units)
    tx["fees_e8"] = i64(pnl.fees_units)
    tx["fair_mid_e8"] = i64(core.fair.mid_e8)
    tx["truex_fills"] = desk.fills
    tx["hedge_fills"] = desk.hedge_fills
    tx["risk_tripped"] = int(desk.risk_tripped)
    tx["live_orders"] = core.live_orders
    bid, ask = core.best_quotes()
    tx["quote_bid_ticks"], tx["quote_ask_ticks"] = i64(bid), i64(ask)
    tx["orders_sent"] = desk.sent
