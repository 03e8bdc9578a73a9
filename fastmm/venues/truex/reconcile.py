"""Reconciliation with TrueX at start, sans-I/O: the venue's live orders and last fills against the journal.

TrueX's FIX dictionary has no order-status or mass-status request, so the engine asks REST
(:mod:`fastmm.venues.truex.rest`) after logon and before quoting, and :func:`plan_start` decides:

* a live order the journal never sent (no ClOrdID of ours, no exchange id of ours) is *unknown*: cancel
  it (another engine's, a manual one, or one whose journal line was lost: nothing may rest unmanaged);
* a live order the journal sent is left to the journal recovery, which cancels it by ClOrdID;
* a fill whose match id (or ExecID) the journal has not booked is *missed*: booked once, by match id;
* a missed fill whose order the journal cannot map by exchange id is *unresolved* until the order's
  status (its ClOrdID) says whose it is; a fill of an order we never sent is *foreign*: never booked.

:class:`JournalView` is what the journal says, read once at start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from fastmm.instrument import Instrument
from fastmm.journal.reader import exists, read_records
from fastmm.journal.records import Ack, Fill, Order, Replace
from fastmm.journal.replay import MATCH_KEY_PREFIX as MATCH_KEY_PREFIX  # where the fold books it
from fastmm.venues.truex.rest_codec import RestOrder, RestTrade

REST_FILL_PREFIX = "rest:"    # ExecID of a fill booked from REST: rest:<match id>


@dataclass
class JournalView:
    sent: dict[str, str] = field(default_factory=dict)        # ClOrdID -> side ("1"/"2") of every order sent
    order_ids: dict[str, str] = field(default_factory=dict)   # exchange order id -> ClOrdID
    booked: set[str] = field(default_factory=set)             # ExecIDs and match ids of booked fills

    @classmethod
    def read(cls, path: Path) -> JournalView:
        v = cls()
        if not exists(path):
            return v
        for rec in read_records(path, skip_corrupt=True):
            if isinstance(rec, Order | Replace) and rec.cl_ord_id:
                v.sent[rec.cl_ord_id] = str(int(rec.side))
            elif isinstance(rec, Ack) and rec.order_id:
                v.order_ids[rec.order_id] = rec.cl_ord_id
            elif isinstance(rec, Fill):
                for key in (rec.exec_id, rec.match_id):
                    if key:
                        v.booked.add(key)
                if rec.order_id:
                    v.order_ids[rec.order_id] = rec.cl_ord_id
        return v

    def booked_trade(self, t: RestTrade) -> bool:
        return t.match_id in self.booked or REST_FILL_PREFIX + t.match_id in self.booked


@dataclass(frozen=True, slots=True)
class MissedFill:
    trade: RestTrade
    cl_ord_id: str
    side: str           # "1"/"2"
    leaves_lots: int    # what the venue says is left of the order (0 when it is no longer live)

    def fee(self, inst: Instrument) -> Decimal:
        return inst.notional(self.trade.price_ticks, self.trade.qty_lots) * self.trade.fee_rate


@dataclass
class StartPlan:
    unknown_live: list[RestOrder] = field(default_factory=list)
    known_live: list[RestOrder] = field(default_factory=list)
    missed: list[MissedFill] = field(default_factory=list)
    unresolved: list[RestTrade] = field(default_factory=list)
    foreign: list[RestTrade] = field(default_factory=list)
    already_booked: int = 0

    def resolve(self, view: JournalView, statuses: dict[str, RestOrder | None]) -> None:
        """Settle the unresolved fills with the venue's order records by exchange id (None: unknown)."""
        left = self.unresolved
        self.unresolved = []
        for t in left:
            o = statuses.get(t.order_id)
            if o is not None and o.cl_ord_id in view.sent:
                self.missed.append(MissedFill(t, o.cl_ord_id, o.side, o.leaves_lots if o.live else 0))
            else:
                self.foreign.append(t)

    def counts(self) -> dict[str, int]:
        return {"venue_live": len(self.unknown_live) + len(self.known_live),
                "known_live": len(self.known_live), "unknown_live": len(self.unknown_live),
                "fills_missed": len(self.missed),
                "fills_already_booked": self.already_booked, "fills_foreign": len(self.foreign),
                "fills_unresolved": len(self.unresolved)}


def plan_start(view: JournalView, active: list[RestOrder], trades: list[RestTrade]) -> StartPlan:
    plan = StartPlan()
    live_by_id = {o.order_id: o for o in active if o.live}
    for o in live_by_id.values():
        ours = o.cl_ord_id in view.sent or o.order_id in view.order_ids
        (plan.known_live if ours else plan.unknown_live).append(o)
    seen: set[str] = set()
    for t in sorted(trades, key=lambda t: (t.timestamp_ns, t.match_id)):
        if t.match_id in seen:
            continue          # the same fill on two pages
        seen.add(t.match_id)
        if view.booked_trade(t):
            plan.already_booked += 1
            continue
        live = live_by_id.get(t.order_id)
        cl = view.order_ids.get(t.order_id) or (live.cl_ord_id if live is not None else "")
        if cl and cl in view.sent:
            plan.missed.append(MissedFill(t, cl, view.sent[cl], live.leaves_lots if live is not None else 0))
        else:
            plan.unresolved.append(t)
    return plan
