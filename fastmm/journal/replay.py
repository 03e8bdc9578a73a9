"""The one fold of journal records into what the engine knows of its past: orders possibly live, fills
seen (each ExecID once), position.

TrueX has neither an order-status nor a mass-cancel message, so this fold is what start-up recovery
adopts and cancels (fastmm.procs.recovery), what the session report draws and books
(fastmm.report_cli), and, over the hedger's own journal, where the hedger carries on from
(:class:`HedgerFold`, fastmm.procs.hedger). Pure: records in, state out; whether a fill may be booked
is the caller's check (the trading core's ``replay_fill``), passed in.

Two views of the orders, kept in the same pass because they answer different questions:

* ``possibly_live`` over-approximates (recovery): an order is live from its request until the journal
  shows its end (canceled, rejected, filled, replaced away); a replace whose answer never came leaves
  both ids live. An order wrongly thought ended would rest on the venue unmanaged; one wrongly thought
  live only costs a cancel the venue rejects as unknown.
* ``working`` is what the venue most likely shows (the report's quotes): a replace moves the order to
  its new id and price at once, and a refused replace or cancel puts it back unless the refusal says the
  order has ended.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fastmm.core.types import Side
from fastmm.core.vet import OrderTerms
from fastmm.journal.reader import exists, read_records
from fastmm.journal.records import (
    Canceled,
    CancelReject,
    Fill,
    Hedge,
    HedgeAck,
    HedgeFill,
    Order,
    Record,
    Reject,
    Replace,
    Replaced,
)

log = logging.getLogger("fastmm.journal")

MATCH_KEY_PREFIX = "match:"   # key of a booked match id among the booked fill ids (a REST fill's twin)
_ENDED_STATUS = ("2", "4", "8")  # OrdStatus filled, canceled, rejected: a refusal that ends the order


class Booking(enum.Enum):
    NOTHING = 0      # not a fill
    BOOKED = 1
    DUPLICATE = 2    # its ExecID was booked already
    REFUSED = 3      # the caller's check said it cannot be true (``OrderFold.problem`` says why)


FillCheck = Callable[[Fill, OrderTerms | None], str | None]
HedgeFillCheck = Callable[[HedgeFill], str | None]


@dataclass
class OrderFold:
    """Orders possibly live, fills seen and position, from the quoter's journal (records in order)."""

    check_fill: FillCheck | None = None           # None: every fill is booked
    check_hedge_fill: HedgeFillCheck | None = None
    possibly_live: dict[str, Side] = field(default_factory=dict)
    working: dict[str, tuple[Side, int]] = field(default_factory=dict)    # ClOrdID -> (side, price ticks)
    # ClOrdID -> (price ticks, order quantity lots, filled lots) as the journal last had them
    terms: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    exec_ids: set[str] = field(default_factory=set)   # every booked ExecID, TrueX and hedge
    fill_ids: set[str] = field(default_factory=set)   # booked TrueX ExecIDs and match keys
    position_lots: int = 0
    truex_fills: int = 0
    hedge_fills: int = 0
    problem: str = ""
    _sides: dict[str, Side] = field(default_factory=dict, repr=False)
    _alt_price: dict[str, int] = field(default_factory=dict, repr=False)
    # a replace in flight: new ClOrdID -> (the one it replaces, that order's working entry)
    _replacing: dict[str, tuple[str, tuple[Side, int] | None]] = field(default_factory=dict, repr=False)

    def order_terms(self, cl: str) -> OrderTerms | None:
        """What the journal says of order ``cl`` (a fill for it is checked against this)."""
        side = self._sides.get(cl)
        if side is None:
            return None
        price, qty, cum = self.terms.get(cl, (0, 0, 0))
        return OrderTerms(side, price, qty, cum, self._alt_price.get(cl, 0))

    def apply_all(self, records: Iterable[Record]) -> OrderFold:
        for rec in records:
            self.apply(rec)
        return self

    def apply(self, rec: Record) -> Booking:
        if isinstance(rec, Order | Replace):
            self._request(rec)
        elif isinstance(rec, Replaced):
            self.possibly_live.pop(rec.orig_cl_ord_id, None)
            self.working.pop(rec.orig_cl_ord_id, None)
            self._replacing.pop(rec.cl_ord_id, None)
            if rec.cl_ord_id in self.working and rec.price_ticks:
                self.working[rec.cl_ord_id] = (self.working[rec.cl_ord_id][0], rec.price_ticks)
        elif isinstance(rec, Canceled):
            for cl in (rec.cl_ord_id, rec.orig_cl_ord_id):
                self.possibly_live.pop(cl, None)
                self.working.pop(cl, None)
            self._replacing.pop(rec.cl_ord_id, None)
        elif isinstance(rec, Reject | CancelReject):
            self._refused(rec)
        elif isinstance(rec, Fill):
            return self._fill(rec)
        elif isinstance(rec, HedgeFill) and rec.source == "quoter":
            return self._hedge_fill(rec)
        return Booking.NOTHING

    def _request(self, rec: Order | Replace) -> None:
        cl = rec.cl_ord_id
        cum = 0
        if isinstance(rec, Replace):
            orig = rec.orig_cl_ord_id
            cum = self.terms.get(orig, (0, 0, 0))[2]
            if orig in self.terms:
                # until the answer: a fill on the old id may be against either size and either limit
                opx, oqty, ocum = self.terms[orig]
                self.terms[orig] = (opx, max(oqty, rec.qty_lots), ocum)
                self._alt_price[orig] = rec.price_ticks
            self._replacing[cl] = (orig, self.working.pop(orig, None))
        self.possibly_live[cl] = rec.side
        self.working[cl] = (rec.side, rec.price_ticks)
        self._sides[cl] = rec.side
        self.terms[cl] = (rec.price_ticks, rec.qty_lots, cum)

    def _refused(self, rec: Reject | CancelReject) -> None:
        cl = rec.cl_ord_id
        if isinstance(rec, Reject):
            self.possibly_live.pop(cl, None)
            ended = False
        else:
            ended = rec.reason == 1 or rec.ord_status in _ENDED_STATUS
        orig = getattr(rec, "orig_cl_ord_id", "")
        self.working.pop(cl, None)
        before = self._replacing.pop(cl, None)
        if before is not None:
            orig = orig or before[0]
            if before[1] is not None and not ended:
                self.working[before[0]] = before[1]
        if ended:      # the venue says the order is over (unknown to it, filled, canceled): not live
            self.working.pop(orig, None)
            self.possibly_live.pop(orig, None)

    def _fill(self, rec: Fill) -> Booking:
        if rec.exec_id in self.exec_ids:
            return Booking.DUPLICATE
        cl = rec.cl_ord_id
        if self.check_fill is not None:
            problem = self.check_fill(rec, self.order_terms(cl))
            if problem is not None:
                self.problem = problem
                return Booking.REFUSED
        self.exec_ids.add(rec.exec_id)
        if rec.leaves_lots == 0:
            self.possibly_live.pop(cl, None)
            self.working.pop(cl, None)
        if cl in self.terms:
            px, qty, cum = self.terms[cl]
            self.terms[cl] = (px, qty, cum + rec.qty_lots)
        self.truex_fills += 1
        self.position_lots += rec.qty_lots if rec.side == Side.BUY else -rec.qty_lots
        self.fill_ids.add(rec.exec_id)
        if rec.match_id:   # a fill booked from REST must not come again over FIX (and back)
            self.fill_ids.add(MATCH_KEY_PREFIX + rec.match_id)
        return Booking.BOOKED

    def _hedge_fill(self, rec: HedgeFill) -> Booking:
        if rec.exec_id in self.exec_ids:
            return Booking.DUPLICATE
        if rec.side is None:
            self.problem = "hedge fill without a side"
            return Booking.REFUSED
        if self.check_hedge_fill is not None:
            problem = self.check_hedge_fill(rec)
            if problem is not None:
                self.problem = problem
                return Booking.REFUSED
        self.exec_ids.add(rec.exec_id)
        self.hedge_fills += 1
        self.position_lots += rec.qty_lots if rec.side == Side.BUY else -rec.qty_lots
        return Booking.BOOKED


@dataclass(frozen=True, slots=True)
class Executed:
    """What a hedge order had executed when last journalled (cumulative, 1e-8 units)."""

    vol_exec_e8: int = 0
    cost_e8: int = 0
    fee_e8: int = 0


@dataclass
class HedgerFold:
    """The hedger's journal: its orders (open, ended), what each executed, and every fill it published
    (:attr:`fills`, sides and per-fill fees filled in for first-format lines)."""

    open_orders: dict[str, Hedge] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    next_id: int = 1
    published: set[str] = field(default_factory=set)
    executed: dict[str, Executed] = field(default_factory=dict)
    carry_e8: dict[str, int] = field(default_factory=dict)
    fills: list[HedgeFill] = field(default_factory=list)
    side_of: dict[str, Side] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> HedgerFold:
        fold = cls()
        if exists(path):
            fold.apply_all(read_records(path))
        return fold

    def apply_all(self, records: Iterable[Record]) -> HedgerFold:
        for rec in records:
            self.apply(rec)
        return self

    def apply(self, rec: Record) -> None:
        if isinstance(rec, Hedge):
            self.open_orders[rec.cl_ord_id] = rec
            self.side_of[rec.cl_ord_id] = rec.side
            self.next_id = max(self.next_id, rec.hedge_id + 1)
        elif isinstance(rec, HedgeAck) and rec.final:
            self.done.add(rec.cl_ord_id)
            self.open_orders.pop(rec.cl_ord_id, None)
        elif isinstance(rec, HedgeFill) and rec.vol_exec_e8 is not None:
            self._fill(rec)

    def _fill(self, rec: HedgeFill) -> None:
        cl = rec.cl_ord_id
        prev = self.executed.get(cl, Executed())
        fee_cum = rec.fee_cum_e8 if rec.fee_cum_e8 is not None else prev.fee_e8 + (rec.fee_e8 or 0)
        fee = rec.fee_e8 if rec.fee_e8 is not None else fee_cum - prev.fee_e8
        self.executed[cl] = Executed(rec.vol_exec_e8 or 0, rec.cost_e8 or 0, fee_cum)
        self.carry_e8[cl] = rec.carry_e8 or 0
        if rec.qty_lots <= 0:
            return      # a sub-lot slice, carried to the next fill: never published
        self.published.add(rec.exec_id)
        side = rec.side or self.side_of.get(cl)
        if side is None:
            log.error("journal: hedge fill %s of order %s whose side the hedger's journal lacks; left out",
                      rec.exec_id, cl)
            return
        self.fills.append(HedgeFill(t_ns=rec.t_ns, seq=rec.seq, exec_id=rec.exec_id, side=side,
                                    qty_lots=rec.qty_lots, price_e8=rec.price_e8, fee_e8=fee,
                                    cl_ord_id=cl, vol_exec_e8=rec.vol_exec_e8, cost_e8=rec.cost_e8,
                                    fee_cum_e8=fee_cum, carry_e8=rec.carry_e8))
