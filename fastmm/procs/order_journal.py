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
from typing import Any

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
from fastmm.journal import Journal
from fastmm.venues.truex.codec import BusinessMessageReject, ExecutionReport, OrderCancelReject, TruexCodec
from fastmm.venues.truex.reconcile import MATCH_KEY_PREFIX


def order_message(codec: TruexCodec, a: Action) -> tuple[str, dict[str, Any], bytes, bytes]:
    """(journal kind, journal fields, FIX MsgType, FIX body) of one order action."""
    if not isinstance(a, NewOrder | CancelOrder | ReplaceOrder):
        raise TypeError(f"not an order action: {a!r}")
    side = "1" if a.side == Side.BUY else "2"
    if isinstance(a, NewOrder):
        return ("order", {"cl_ord_id": a.cl_ord_id, "side": side, "price_ticks": a.price_ticks,
                          "qty_lots": a.qty_lots},
                b"D", codec.new_order_single(a.cl_ord_id, side, a.qty_lots, a.price_ticks))
    if isinstance(a, CancelOrder):
        return ("cancel", {"cl_ord_id": a.cl_ord_id, "orig_cl_ord_id": a.orig_cl_ord_id, "side": side},
                b"F", codec.order_cancel_request(a.cl_ord_id, a.orig_cl_ord_id))
    return ("replace", {"cl_ord_id": a.cl_ord_id, "orig_cl_ord_id": a.orig_cl_ord_id, "side": side,
                        "price_ticks": a.price_ticks, "qty_lots": a.qty_lots},
            b"G", codec.order_cancel_replace_request(a.cl_ord_id, a.orig_cl_ord_id, a.qty_lots,
                                                     a.price_ticks))


def journal_report(j: Journal, rec: object, fill_ids: RecentIds,
                   vet: Callable[[OrderFilled], str | None] | None = None, **extra: Any) -> OrderEvent | None:
    """Journal ``rec`` (``extra`` fields added to its line) and return the core event it means."""
    wall = time.time_ns()
    if isinstance(rec, ExecutionReport):
        et = rec.exec_type
        if et == "0":
            j.append("ack", wall, cl_ord_id=rec.cl_ord_id, order_id=rec.order_id, **extra)
            return OrderAccepted(rec.cl_ord_id, rec.order_id)
        if et == "F":
            # also once by TrdMatchID: a fill booked from REST at start (fastmm.procs.venue_reconcile)
            # may come again over FIX with its own ExecID
            match_key = MATCH_KEY_PREFIX + rec.trd_match_id if rec.trd_match_id else ""
            if (match_key and match_key in fill_ids) or not fill_ids.add(rec.exec_id):
                j.append("note", wall, detail="duplicate fill ignored", exec_id=rec.exec_id,
                         poss_dup=rec.poss_dup, **extra)
                return None
            fee = sum((f.amount for f in rec.fees), Decimal(0)) if rec.fees else None
            ev = OrderFilled(rec.cl_ord_id, rec.exec_id, Side.BUY if rec.side == "1" else Side.SELL,
                             rec.last_px, rec.last_qty, rec.leaves_qty,
                             Liquidity.TAKER if rec.liquidity == 2 else Liquidity.MAKER, fee)
            problem = vet(ev) if vet is not None else None
            if problem is not None:
                extra["problem"] = problem
            elif match_key:
                fill_ids.add(match_key)
            j.append("fill" if problem is None else "bad_report", wall, cl_ord_id=rec.cl_ord_id,
                     exec_id=rec.exec_id, match_id=rec.trd_match_id, side=rec.side, px_ticks=rec.last_px,
                     qty_lots=rec.last_qty, leaves_lots=rec.leaves_qty, liquidity=rec.liquidity,
                     fee=str(fee) if fee is not None else None, order_id=rec.order_id, **extra)
            return ev
        if et in ("4", "C"):
            j.append("canceled", wall, cl_ord_id=rec.cl_ord_id, orig_cl_ord_id=rec.orig_cl_ord_id,
                     text=rec.text, **extra)
            return OrderCanceled(rec.cl_ord_id, rec.orig_cl_ord_id, rec.text)
        if et == "5":
            j.append("replaced", wall, cl_ord_id=rec.cl_ord_id, orig_cl_ord_id=rec.orig_cl_ord_id,
                     price_ticks=rec.price, qty_lots=rec.order_qty, **extra)
            return OrderReplaced(rec.cl_ord_id, rec.orig_cl_ord_id, rec.price, rec.order_qty, rec.leaves_qty)
        if et == "8":
            j.append("reject", wall, cl_ord_id=rec.cl_ord_id, text=rec.text, **extra)
            return OrderRejected(rec.cl_ord_id, rec.text)
        return None
    if isinstance(rec, OrderCancelReject):
        j.append("cancel_reject", wall, cl_ord_id=rec.cl_ord_id, orig_cl_ord_id=rec.orig_cl_ord_id,
                 reason=rec.reason, text=rec.text, ord_status=rec.ord_status, **extra)
        return CancelRejected(rec.cl_ord_id, rec.orig_cl_ord_id, rec.ord_status, rec.reason, rec.text)
    if isinstance(rec, BusinessMessageReject):
        j.append("reject", wall, cl_ord_id=rec.ref_id, text=rec.text, business_reason=rec.reason, **extra)
        return MessageRejected(rec.ref_id, rec.reason, rec.text)
    return None
