"""One journal record -> one typed row: the only place that knows the journal's record fields.

A record of the current format (``"v"`` in its line, fastmm.journal.records) is first rendered in the
first format's layout (:meth:`Record.legacy`), so one mapping serves lines of both formats. Each
record becomes exactly one row of one table (``TABLE_OF``), besides
its copy in ``journal_records``; money is integer 1e-8 PYUSD (``*_e8``), order state integer ticks and
lots, as in the engine. Pure: no database, no clock.
"""

from __future__ import annotations

import contextlib
from decimal import InvalidOperation
from typing import Any

from fastmm.journal.records import RecordError, from_dict
from fastmm.units import round_e8

TABLE_OF = {
    "order": "orders", "cancel": "orders", "replace": "orders",
    "ack": "order_events", "reject": "order_events", "cancel_reject": "order_events",
    "canceled": "order_events", "replaced": "order_events",
    "fill": "executions",
    "hedge": "hedges", "hedge_ack": "hedges", "hedge_reject": "hedges",
    "mark": "marks", "pnl": "pnl_snapshots",
    "phase": "events", "session": "events", "risk": "events", "recovery": "events", "note": "events",
    "reconcile": "events", "bad_report": "events",   # a refused venue report is an event, never an execution
}

# Columns of each typed table after the common (instance, stream, seq, t_ns, kind).
COLUMNS: dict[str, tuple[str, ...]] = {
    "orders": ("cl_ord_id", "orig_cl_ord_id", "side", "price_ticks", "qty_lots"),
    "order_events": ("cl_ord_id", "orig_cl_ord_id", "order_id", "price_ticks", "qty_lots", "reason", "text"),
    "executions": ("venue", "exec_id", "cl_ord_id", "side", "px_ticks", "price_e8", "qty_lots",
                   "leaves_lots", "liquidity", "fee_e8"),
    "hedges": ("cl_ord_id", "hedge_id", "txid", "side", "volume_e8", "price_e8", "lots", "vol_exec_e8",
               "fee_e8", "status", "detail"),
    "marks": ("fair_mid_e8",),
    "pnl_snapshots": ("position_lots", "realized_e8", "unrealized_e8", "fees_e8", "fair_mid_e8"),
    "events": ("source", "phase", "previous", "command", "detail"),
}
COMMON = ("instance", "stream", "seq", "t_ns", "kind")


def _int(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _e8(v: Any) -> int | None:
    """A decimal text or number as integer 1e-8 units (exact; None when absent or not a number)."""
    if v is None or v == "None":
        return None
    try:
        return round_e8(str(v))
    except (InvalidOperation, ValueError):
        return None


def _side(v: Any) -> int | None:
    """1 buy, 2 sell (FIX's codes), whatever spelling the writer used."""
    s = str(v).lower() if v is not None else ""
    if s in ("1", "buy", "b"):
        return 1
    if s in ("2", "sell", "s"):
        return 2
    return None


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


def table_of(rec: dict[str, Any]) -> str | None:
    """The typed table of a record; the hedger's own fills go to ``hedges``, the quoter's booking of a
    hedge fill (``source == "quoter"``) is the execution."""
    kind = rec.get("kind")
    if kind == "hedge_fill":
        return "executions" if rec.get("source") == "quoter" else "hedges"
    return TABLE_OF.get(str(kind))


def to_row(rec: dict[str, Any], tick_e8: int) -> tuple[str, tuple[Any, ...]] | None:
    """(table, values in COLUMNS order) of one record; None for a kind this schema does not know.
    ``tick_e8`` is the instance's price tick in 1e-8 PYUSD (a TrueX fill's price is in ticks)."""
    table = table_of(rec)
    if table is None:
        return None
    if "v" in rec:
        with contextlib.suppress(RecordError):     # unreadable: the fields it has, as they are
            rec = from_dict(rec).legacy()
    kind = rec["kind"]
    g = rec.get
    vals: tuple[Any, ...]
    if table == "orders":
        vals = (g("cl_ord_id"), g("orig_cl_ord_id"), _side(g("side")), _int(g("price_ticks")),
                _int(g("qty_lots")))
    elif table == "order_events":
        reason = g("reason", g("business_reason"))
        vals = (g("cl_ord_id"), g("orig_cl_ord_id"), _text(g("order_id")), _int(g("price_ticks")),
                _int(g("qty_lots")), _text(reason), _text(g("text")))
    elif table == "executions":
        if kind == "fill":
            px = _int(g("px_ticks"))
            vals = ("truex", str(g("exec_id")), g("cl_ord_id"), _side(g("side")), px,
                    px * tick_e8 if px is not None else None, _int(g("qty_lots")), _int(g("leaves_lots")),
                    _int(g("liquidity")), _e8(g("fee")))
        else:
            vals = ("kraken", str(g("exec_id")), g("cl_ord_id"), _side(g("side")), None, _e8(g("price")),
                    _int(g("qty_lots")), None, 2, _e8(g("fee")))
    elif table == "hedges":
        vals = (g("cl_ord_id"), _text(g("hedge_id")), _text(g("txid")), _side(g("side")),
                _int(g("volume_e8")), _int(g("price_e8")) if "price_e8" in rec
                else _e8(g("price")), _int(g("lots")), _int(g("vol_exec_e8")), _e8(g("fee")),
                _text(g("status")), _text(g("detail", g("reason"))))
    elif table == "marks":
        vals = (_int(g("fair_mid_e8")),)
    elif table == "pnl_snapshots":
        vals = (_int(g("position_lots")), _int(g("realized_e8")), _int(g("unrealized_e8")),
                _int(g("fees_e8")), _int(g("fair_mid_e8")))
    else:
        detail = g("detail")
        if kind == "session":
            detail = f"{g('session')} {g('event')}" + (f" {detail}" if detail else "")
        vals = (_text(g("source")), _text(g("phase")), _text(g("previous")), _text(g("command")),
                _text(detail))
    return table, vals
