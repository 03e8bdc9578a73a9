"""Journals of an instance written by the real Journal class, with records shaped as the engine's."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from fastmm.config import Config, load_config
from fastmm.db import shipper
from fastmm.journal import Journal

T0 = 1_764_748_800_000_000_000   # 2025-12-03 08:00:00 UTC


def write_session(state: Path, n: int, *, start: int = 0, rotate_bytes: int = 1 << 20,
                  quoter: Journal | None = None, mid_ticks: int = 180_000,
                  supervisor: bool = True) -> dict[str, int]:
    """Append ``n`` rounds of order -> ack -> fill -> mark -> pnl (plus hedges, phases, a repeated fill
    now and then) to the journals in ``state``; returns records written per stream. ``supervisor=False``
    leaves supervisor.jsonl to a real supervisor (one writer per journal)."""
    state.mkdir(parents=True, exist_ok=True)
    q = quoter or Journal(state / "journal.jsonl", "flush", rotate_bytes)
    h = Journal(state / "hedger.jsonl", "flush", rotate_bytes)
    s = Journal(state / ("supervisor.jsonl" if supervisor else "supervisor.test.jsonl"), "flush", rotate_bytes)
    counts = {"quoter": 0, "hedger": 0, "supervisor": 0}
    try:
        if start == 0:
            s.append("phase", T0, source="supervisor", phase="STARTING", detail="start")
            s.append("phase", T0 + 1, source="supervisor", phase="QUOTING", previous="MD_SUBSCRIBED", detail="x")
            q.append("session", T0 + 2, session="oe", event="logged_on", detail="")
            q.append("phase", T0 + 3, detail="quoting started")
            counts["supervisor"] += 2
            counts["quoter"] += 2
        pos = 0
        for i in range(start, start + n):
            t = T0 + 10_000_000 + i * 250_000_000
            side = "1" if i % 2 == 0 else "2"
            px = mid_ticks - 3 if side == "1" else mid_ticks + 3
            cl = f"fm{i:06d}"
            q.append("order", t, cl_ord_id=cl, side=side, price_ticks=px, qty_lots=10)
            q.append("ack", t + 900_000, cl_ord_id=cl, order_id=f"X{i}")
            q.append("fill", t + 50_000_000, cl_ord_id=cl, exec_id=f"E{i}", side=side, px_ticks=px, qty_lots=10,
                     leaves_lots=0, liquidity=1, fee="0.0125")
            pos += 10 if side == "1" else -10
            q.append("mark", t + 60_000_000, fair_mid_e8=(mid_ticks + i % 5) * 50_000_000)
            q.append("pnl", t + 60_000_000, position_lots=pos, realized_e8=i * 1000, unrealized_e8=-i,
                     fees_e8=i * 125, fair_mid_e8=(mid_ticks + i % 5) * 50_000_000)
            counts["quoter"] += 5
            if i % 7 == 3:
                q.append("cancel", t + 70_000_000, cl_ord_id=f"c{i}", orig_cl_ord_id=cl, side=side)
                q.append("cancel_reject", t + 71_000_000, cl_ord_id=f"c{i}", orig_cl_ord_id=cl, reason=1,
                         text="unknown order", ord_status="8")
                # a resend of the fill with PossDup: journalled again, booked once
                q.append("fill", t + 72_000_000, cl_ord_id=cl, exec_id=f"E{i}", side=side, px_ticks=px,
                         qty_lots=10, leaves_lots=0, liquidity=1, fee="0.0125")
                counts["quoter"] += 3
            if i % 10 == 9:
                hc = f"h{i}"
                h.append("hedge", t + 80_000_000, cl_ord_id=hc, hedge_id=i, side="sell", volume_e8=1_000_000,
                         price_e8=0)
                h.append("hedge_ack", t + 81_000_000, cl_ord_id=hc, txid=f"T{i}", adopted=False)
                h.append("hedge_fill", t + 82_000_000, cl_ord_id=hc, exec_id=f"T{i}:1000000", lots=100,
                         vol_exec_e8=1_000_000, cost="900.5", fee="2.34", carry_e8=0, price="90050.0")
                q.append("hedge_fill", t + 83_000_000, exec_id=f"T{i}:1000000", side="SELL", qty_lots=100,
                         price="90050.0", fee="2.34", source="quoter")
                counts["hedger"] += 3
                counts["quoter"] += 1
        return counts
    finally:
        if quoter is None:
            q.close()
        h.close()
        s.close()


def ship(state: Path, dsn: str, name: str) -> Config:
    """Run the real shipper once over instance ``name``'s journals in ``state``: everything to ``dsn``."""
    cfg = load_config(None, {"FASTMM_INSTANCE__NAME": name, "FASTMM_INSTANCE__STATE_DIR": str(state),
                             "FASTMM_SHIP__DSN": dsn, "FASTMM_DB_PASSWORD": os.environ["FASTMM_DB_PASSWORD"]})

    async def go() -> None:
        stop = asyncio.Event()
        stop.set()
        await shipper.run(cfg, stop)
    asyncio.run(go())
    return cfg
