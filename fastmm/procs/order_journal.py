"""Our orders and TrueX's answers to them, journalled (and the orders encoded), in one place.

:func:`order_message` is what the quoter journals and sends for each action of the core (its shadow
rehearsal builds the same, see fastmm.procs.rehearsal).

The quoter does this for every ExecutionReport, OrderCancelReject and BusinessMessageReject it receives,
and ``fastmm ops cancel-orders`` for the answers to its cancels, so the journal the next start's recovery
reads has one format whoever wrote it. A fill whose ExecID was booked already (a resend with PossDup) is
journalled as a note and yields no event. A fill that ``vet`` (the trading core's check) calls impossible
is journalled as ``bad_report``, which recovery never books; the event still goes to the core, which
refuses it and trips the kill switch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol, cast

from fastmm.core.ids import RecentIds
from fastmm.core.types import (
    Action,
    CancelOrder,
    CancelRejected,
    Liquidity,
    MessageRejected,
    NewOrder,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    ReplaceOrder,
    Side,
)
from fastmm.journal.records import (
    Ack,
    BadReport,
    Cancel,
    Canceled,
    CancelReject,
    Fill,
    Note,
    Order,
    Record,
    Reject,
    Replace,
    Replaced,
    to_e8,
)
from fastmm.journal.replay import MATCH_KEY_PREFIX
from fastmm.venues.truex.codec import BusinessMessageReject, ExecutionReport, OrderCancelReject, TruexCodec


def order_message(codec: TruexCodec, a: Action, t_ns: int = 0,
                  source: str = "") -> tuple[Record, bytes, bytes]:
    """(journal record, FIX MsgType, FIX body) of one order action."""
    if not isinstance(a, NewOrder | CancelOrder | ReplaceOrder):
        raise TypeError(f"not an order action: {a!r}")
    side = "1" if a.side == Side.BUY else "2"
    if isinstance(a, NewOrder):
        return (Order(t_ns=t_ns, source=source, cl_ord_id=a.cl_ord_id, side=a.side, price_ticks=a.price_ticks,
                      qty_lots=a.qty_lots),
                b"D", codec.new_order_single(a.cl_ord_id, side, a.qty_lots, a.price_ticks))
    if isinstance(a, CancelOrder):
        return (Cancel(t_ns=t_ns, source=source, cl_ord_id=a.cl_ord_id, orig_cl_ord_id=a.orig_cl_ord_id,
                       side=a.side),
                b"F", codec.order_cancel_request(a.cl_ord_id, a.orig_cl_ord_id))
    return (Replace(t_ns=t_ns, source=source, cl_ord_id=a.cl_ord_id, orig_cl_ord_id=a.orig_cl_ord_id,
                    side=a.side, price_ticks=a.price_ticks, qty_lots=a.qty_lots),
            b"G", codec.order_cancel_replace_request(a.cl_ord_id, a.orig_cl_ord_id, a.qty_lots,
                                                     a.price_ticks))


# order_entry's lines after the seq, as Record.to_line writes an Order, Cancel and Replace with no source
_ORDER_TAIL = b',"t_ns":%d,"kind":"order","cl_ord_id":"%b","side":"%b","price_ticks":%d,"qty_lots":%d}\n'
_CANCEL_TAIL = b',"t_ns":%d,"kind":"cancel","cl_ord_id":"%b","orig_cl_ord_id":"%b","side":"%b"}\n'
_REPLACE_TAIL = (b',"t_ns":%d,"kind":"replace","cl_ord_id":"%b","orig_cl_ord_id":"%b","side":"%b",'
                 b'"price_ticks":%d,"qty_lots":%d}\n')
_I63 = 1 << 63


def _plain(s: object) -> bool:
    """Text JSON writes as it is (no escape): printable ASCII without quote or backslash."""
    return type(s) is str and s.isascii() and s.isprintable() and '"' not in s and "\\" not in s


def _count(x: object) -> bool:
    return type(x) is int and 0 < x < _I63


def order_entry(codec: TruexCodec, a: Action, t_ns: int) -> tuple[bytes, bytes, bytes]:
    """(journal line after its seq, FIX MsgType, FIX body) of one order action: :func:`order_message`
    without its Record object, for the quoter's price path (``Journal.write_tail`` takes the line). A
    decision that runs cold after the process slept pays for every object and function it touches (the
    record and its ``to_line``: ~55 us of a ~75 us order after a 10 ms sleep, measured on the 2-vCPU VM);
    here one bytes format. Same bytes, same errors: the record's own encoding is the reference, checked
    equal by hypothesis (tests/procs/test_order_message.py); anything unusual (text JSON must escape, a
    side or number of another type) takes that reference path."""
    tp = type(a)
    side = getattr(a, "side", None)
    if type(side) is Side and type(t_ns) is int and 0 <= t_ns < _I63 and _plain(a.cl_ord_id):
        name, fix_side = (b"BUY", "1") if side is Side.BUY else (b"SELL", "2")
        if tp is NewOrder:
            n = cast(NewOrder, a)
            if _count(n.price_ticks) and _count(n.qty_lots):
                return (_ORDER_TAIL % (t_ns, n.cl_ord_id.encode(), name, n.price_ticks, n.qty_lots), b"D",
                        codec.new_order_single(n.cl_ord_id, fix_side, n.qty_lots, n.price_ticks))
        elif tp is CancelOrder:
            c = cast(CancelOrder, a)
            if _plain(c.orig_cl_ord_id):
                return (_CANCEL_TAIL % (t_ns, c.cl_ord_id.encode(), c.orig_cl_ord_id.encode(), name), b"F",
                        codec.order_cancel_request(c.cl_ord_id, c.orig_cl_ord_id))
        elif tp is ReplaceOrder:
            r = cast(ReplaceOrder, a)
            if _plain(r.orig_cl_ord_id) and _count(r.price_ticks) and _count(r.qty_lots):
                return (_REPLACE_TAIL % (t_ns, r.cl_ord_id.encode(), r.orig_cl_ord_id.encode(), name,
                                         r.price_ticks, r.qty_lots), b"G",
                        codec.order_cancel_replace_request(r.cl_ord_id, r.orig_cl_ord_id, r.qty_lots,
                                                           r.price_ticks))
    rec, msg_type, body = order_message(codec, a, t_ns)
    line = rec.to_line(0)
    return line[line.index(b',"t_ns":'):], msg_type, body


class RecordWriter(Protocol):
    """Where :func:`journal_report` writes: a :class:`fastmm.journal.Journal`, or the quoter's desk
    (fastmm.procs.quoter_desk), whose shell writes them."""

    def write(self, rec: Record, /) -> object: ...


def journal_report(j: RecordWriter, rec: object, fill_ids: RecentIds,
                   vet: Callable[[OrderFilled], str | None] | None = None,
                   source: str = "", t_ns: int = 0) -> OrderEvent | None:
    """Journal ``rec`` (``source``: a writer other than the quoter; ``t_ns`` the wall time, 0: now) and
    return the core event it means."""
    wall = t_ns or time.time_ns()
    if isinstance(rec, ExecutionReport):
        et = rec.exec_type
        if et == "0":
            j.write(Ack(t_ns=wall, source=source, cl_ord_id=rec.cl_ord_id, order_id=rec.order_id))
            return OrderAccepted(rec.cl_ord_id, rec.order_id)
        if et == "F":
            # also once by TrdMatchID: a fill booked from REST at start (fastmm.procs.venue_reconcile)
            # may come again over FIX with its own ExecID
            match_key = MATCH_KEY_PREFIX + rec.trd_match_id if rec.trd_match_id else ""
            if (match_key and match_key in fill_ids) or not fill_ids.add(rec.exec_id):
                j.write(Note(t_ns=wall, source=source, detail="duplicate fill ignored", exec_id=rec.exec_id,
                             poss_dup=rec.poss_dup))
                return None
            fee = sum((f.amount for f in rec.fees), Decimal(0)) if rec.fees else None
            ev = OrderFilled(rec.cl_ord_id, rec.exec_id, Side.BUY if rec.side == "1" else Side.SELL,
                             rec.last_px, rec.last_qty, rec.leaves_qty,
                             Liquidity.TAKER if rec.liquidity == 2 else Liquidity.MAKER, fee)
            problem = vet(ev) if vet is not None else None
            fee_e8 = to_e8(fee) if fee is not None and fee.is_finite() else None
            if problem is None:
                if match_key:
                    fill_ids.add(match_key)
                j.write(Fill(t_ns=wall, source=source, cl_ord_id=rec.cl_ord_id, exec_id=rec.exec_id,
                             side=ev.side, px_ticks=rec.last_px, qty_lots=rec.last_qty,
                             leaves_lots=rec.leaves_qty, liquidity=rec.liquidity, fee_e8=fee_e8,
                             match_id=rec.trd_match_id, order_id=rec.order_id))
            else:
                j.write(BadReport(t_ns=wall, source=source, cl_ord_id=rec.cl_ord_id, exec_id=rec.exec_id,
                                  side=ev.side, px_ticks=rec.last_px, qty_lots=rec.last_qty,
                                  leaves_lots=rec.leaves_qty, liquidity=rec.liquidity, fee_e8=fee_e8,
                                  match_id=rec.trd_match_id, order_id=rec.order_id, problem=problem))
            return ev
        if et in ("4", "C"):
            j.write(Canceled(t_ns=wall, source=source, cl_ord_id=rec.cl_ord_id,
                             orig_cl_ord_id=rec.orig_cl_ord_id, text=rec.text))
            return OrderCanceled(rec.cl_ord_id, rec.orig_cl_ord_id, rec.text)
        if et == "5":
            j.write(Replaced(t_ns=wall, source=source, cl_ord_id=rec.cl_ord_id,
                             orig_cl_ord_id=rec.orig_cl_ord_id, price_ticks=rec.price,
                             qty_lots=rec.order_qty))
            return OrderReplaced(rec.cl_ord_id, rec.orig_cl_ord_id, rec.price, rec.order_qty, rec.leaves_qty)
        if et == "8":
            j.write(Reject(t_ns=wall, source=source, cl_ord_id=rec.cl_ord_id, text=rec.text))
            return OrderRejected(rec.cl_ord_id, rec.text)
        return None
    if isinstance(rec, OrderCancelReject):
        j.write(CancelReject(t_ns=wall, source=source, cl_ord_id=rec.cl_ord_id,
                             orig_cl_ord_id=rec.orig_cl_ord_id, reason=rec.reason, text=rec.text,
                             ord_status=rec.ord_status))
        return CancelRejected(rec.cl_ord_id, rec.orig_cl_ord_id, rec.ord_status, rec.reason, rec.text)
    if isinstance(rec, BusinessMessageReject):
        j.write(Reject(t_ns=wall, source=source, cl_ord_id=rec.ref_id, text=rec.text,
                       business_reason=rec.reason))
        return MessageRejected(rec.ref_id, rec.reason, rec.text)
    return None
