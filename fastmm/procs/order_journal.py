"""TrueX's answers to our orders, journalled and turned into the trading core's events, in one place.

The quoter does this for every ExecutionReport, OrderCancelReject and BusinessMessageReject it receives,
and ``fastmm ops cancel-orders`` for the answers to its cancels, so the journal the next start's recovery
reads has one format whoever wrote it. A fill whose ExecID was booked already (a resend with PossDup) is
journalled as a note and yields no event.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from fastmm.core.ids import RecentIds
from fastmm.core.types import (
    CancelRejected,
    Liquidity,
    MessageRejected,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    Side,
)
from fastmm.journal import Journal
from fastmm.venues.truex.codec import BusinessMessageReject, ExecutionReport, OrderCancelReject


def journal_report(j: Journal, rec: object, fill_ids: RecentIds, **extra: Any) -> OrderEvent | None:
    """Journal ``rec`` (``extra`` fields added to its line) and return the core event it means."""
    wall = time.time_ns()
    if isinstance(rec, ExecutionReport):
        et = rec.exec_type
        if et == "0":
            j.append("ack", wall, cl_ord_id=rec.cl_ord_id, order_id=rec.order_id, **extra)
            return OrderAccepted(rec.cl_ord_id, rec.order_id)
        if et == "F":
            if not fill_ids.add(rec.exec_id):
                j.append("note", wall, detail="duplicate fill ignored", exec_id=rec.exec_id,
                         poss_dup=rec.poss_dup, **extra)
                return None
            fee = sum((f.amount for f in rec.fees), Decimal(0)) if rec.fees else None
            j.append("fill", wall, cl_ord_id=rec.cl_ord_id, exec_id=rec.exec_id, side=rec.side,
                     px_ticks=rec.last_px, qty_lots=rec.last_qty, leaves_lots=rec.leaves_qty,
                     liquidity=rec.liquidity, fee=str(fee) if fee is not None else None, **extra)
            return OrderFilled(rec.cl_ord_id, rec.exec_id, Side.BUY if rec.side == "1" else Side.SELL,
                               rec.last_px, rec.last_qty, rec.leaves_qty,
                               Liquidity.TAKER if rec.liquidity == 2 else Liquidity.MAKER, fee)
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
