"""The hedger's order-state bookkeeping, sans-I/O: no REST call, ring, file or clock in here.

:class:`HedgeOrders` knows every hedge order that may be live (until its end is journalled), each one's
side, volume and Kraken txid, and what each look at an order means: the records the shell journals
(:class:`fastmm.journal.records.Hedge` before the order is sent, its ack, its fills, its end) and the
fills it publishes on the ``hedge.fills`` ring, in order (:attr:`HedgeOrders.outbox`,
:func:`fill_ring_record`). Whole-lot fills are :class:`fastmm.core.hedge_fills.HedgeFills`' decision.
Times come in as arguments (``wall_ns`` epoch, ``now_ns`` monotonic).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastmm.core.hedge_fills import HedgeFills, HedgeSlice, Refused
from fastmm.core.types import Side
from fastmm.journal.records import Hedge, HedgeAck, HedgeFill, parse_side, to_e8
from fastmm.journal.replay import HedgerFold
from fastmm.shm.records import VENUE_KRAKEN
from fastmm.units import parse_e8

CLOSED = ("closed", "canceled", "expired")     # Kraken's statuses of an order that has ended
FUNDS_MARGIN = Decimal("1.003")                # a limit buy's quote-currency need, with the fee


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A fill decided and journalled, for the ring (in order; it waits while the ring is full)."""

    slice: HedgeSlice
    side: Side
    order_id: str
    t_venue: int
    t_recv: int


class HedgeOrders:
    """Hedge orders from their journalled send to their journalled end."""

    def __init__(self, lot_e8: int, past: HedgerFold) -> None:
        self.lot_e8 = lot_e8
        self.open_orders: dict[str, Hedge] = dict(past.open_orders)   # until each one's end is journalled
        self.done: set[str] = set(past.done)
        executed = {cl: (e.vol_exec_e8, e.cost_e8, e.fee_e8) for cl, e in past.executed.items()}
        self.fills = HedgeFills(lot_e8, executed, past.carry_e8, past.published)
        self.outbox: deque[Outgoing] = deque()        # fills the ring had no room for yet, oldest first
        self.txid_of: dict[str, str] = {}
        self.side_of: dict[str, Side] = dict(past.side_of)
        self.volume_of: dict[str, int] = {cl: rec.volume_e8 for cl, rec in self.open_orders.items()}

    def sending(self, cl: str, hedge_id: int, side: str, volume_e8: int, price_e8: int,
                wall_ns: int) -> Hedge:
        """An order about to be sent (``price_e8`` 0: market): its record, to journal first."""
        rec = Hedge(t_ns=wall_ns, cl_ord_id=cl, hedge_id=hedge_id, side=parse_side(side), volume_e8=volume_e8,
                    price_e8=price_e8)
        self.open_orders[cl] = rec
        self.side_of[cl] = rec.side
        self.volume_of[cl] = volume_e8
        return rec

    def placed(self, cl: str, txid: str, adopted: bool, wall_ns: int) -> HedgeAck:
        self.txid_of[cl] = txid
        return HedgeAck(t_ns=wall_ns, cl_ord_id=cl, txid=txid, adopted=adopted)

    def found(self, cl: str, txid: str) -> None:
        """An order of the journal found on Kraken (restart, wind-down)."""
        self.txid_of[cl] = txid
        self.side_of[cl] = self.open_orders[cl].side

    def final(self, cl: str, status: str, wall_ns: int) -> HedgeAck | None:
        """The order ended: its record, once."""
        if cl in self.done:
            return None
        self.done.add(cl)
        self.open_orders.pop(cl, None)
        return HedgeAck(t_ns=wall_ns, cl_ord_id=cl, final=True, status=status)

    def observe(self, cl: str, info: dict[str, Any], wall_ns: int,
                now_ns: int) -> tuple[HedgeFill, Outgoing | None] | Refused | None:
        """What a look at order ``cl`` (Kraken's QueryOrders ``info``) adds: the fill record to journal
        (a sub-lot slice too) and, when it has whole lots never published, the fill for the ring (the
        shell queues it in :attr:`outbox` once the record is written); ``Refused`` an execution that
        cannot be true; None nothing new."""
        try:
            vol = parse_e8(str(info.get("vol_exec", "0")))
            cost_e8 = to_e8(info.get("cost", "0"))
            fee_e8 = to_e8(info.get("fee", "0"))
            ours = self.volume_of.get(cl, 0) or parse_e8(str(info.get("vol", "0")))
        except (ValueError, ArithmeticError) as e:
            return Refused(f"unreadable execution: {e}")
        order_id = self.txid_of.get(cl, cl)
        out = self.fills.observe(cl, order_id, ours, vol, cost_e8, fee_e8, info.get("status") in CLOSED)
        if out is None or isinstance(out, Refused):
            return out
        side = self.side_of.get(cl, Side.BUY)
        rec = HedgeFill(t_ns=wall_ns, cl_ord_id=cl, exec_id=out.exec_id, side=side, qty_lots=out.lots,
                        price_e8=out.price_e8, fee_e8=out.fee_e8, vol_exec_e8=out.vol_exec_e8,
                        cost_e8=out.cost_e8, fee_cum_e8=out.fee_cum_e8, carry_e8=out.carry_e8)
        return rec, (Outgoing(out, side, order_id, wall_ns, now_ns) if out.publish else None)


def fill_ring_record(tx: Any, f: Outgoing, lot_e8: int, now_ns: int) -> None:
    """The ``FILL`` record (fastmm.shm.records) of one outgoing hedge fill."""
    sl = f.slice
    tx["t_venue"] = f.t_venue
    tx["t_recv"] = f.t_recv
    tx["t_pub"] = now_ns
    tx["venue"] = VENUE_KRAKEN
    tx["side"] = 1 if f.side == Side.BUY else -1
    tx["px_e8"] = sl.price_e8
    tx["qty_e8"] = sl.lots * lot_e8
    tx["fee_e8"] = sl.fee_e8
    tx["maker"] = 0
    tx["order_id"] = f.order_id.encode()[:40]
    tx["exec_id"] = sl.exec_id.encode()[:40]


def funds_shortfall(side: str, volume_e8: int, price_e8: int, balance: dict[str, str]) -> str | None:
    """Why Kraken's ``balance`` cannot pay for the hedge (None: it can). A market buy is not checked:
    Kraken itself checks funds, and its answer is handled as a reject."""
    if side == "sell":
        have, need = Decimal(balance.get("XXBT", "0")), Decimal(volume_e8) / 10**8
    else:
        if not price_e8:
            return None
        have = Decimal(balance.get("ZUSD", "0"))
        need = Decimal(volume_e8) / 10**8 * (Decimal(price_e8) / 10**8) * FUNDS_MARGIN
    if have >= need:
        return None
    return f"insufficient funds for the hedge: {side} needs {need}, balance {have}"
