"""A running instance's state, read from its shared memory without disturbing it.

:func:`read_status` attaches read-only (it never claims a writer role) to the control, health, position
and book channels of an instance and returns plain data; :func:`render` turns it into the few lines of
the ``fastmm paper`` screen and ``fastmm status``. Nothing here writes to the engine.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from fastmm.procs.book_channel import read_top
from fastmm.procs.lifecycle import Phase
from fastmm.procs.plan import PROCESSES, health_channel
from fastmm.shm import LatestValue, ShmError
from fastmm.shm.records import (
    CONTROL,
    HEALTH,
    POSITION,
    STATE_FRESH,
    STATE_LOGGED_ON,
    STATE_QUOTING,
    STATE_RISK_TRIPPED,
    STATE_SUBSCRIBED,
    TOP_OF_BOOK,
)

E8 = 100_000_000
TICK = 0.5
LOT_BTC = 0.0001


def _attach(instance: str, name: str, dtype: Any) -> LatestValue | None:
    try:
        return LatestValue.attach(instance, name, dtype, wait="spin")
    except ShmError:
        return None


def read_status(instance: str, channels: dict[str, LatestValue] | None = None) -> dict[str, Any]:
    """Everything the screen shows, as plain data. ``channels`` reuses open ones (the supervisor's)."""
    own: list[LatestValue] = []

    def get(name: str, dtype: Any) -> LatestValue | None:
        if channels is not None and name in channels:
            return channels[name]
        ch = _attach(instance, name, dtype)
        if ch is not None:
            own.append(ch)
        return ch

    now = time.monotonic_ns()
    out: dict[str, Any] = {"instance": instance, "running": False}
    try:
        ctl = get("control", CONTROL)
        if ctl is None or ctl.read() <= 0:
            return out
        out["running"] = True
        out["phase"] = Phase(int(ctl.rx["phase"][0])).name
        out["reason"] = bytes(ctl.rx["reason"][0]).decode("ascii", "replace")
        procs = {}
        for p in PROCESSES:
            ch = get(health_channel(p), HEALTH)
            if ch is None or ch.read() <= 0:
                continue
            r = ch.rx[0]
            st = int(r["state"])
            procs[p] = {"pid": int(r["pid"]), "age_ms": (now - int(r["t_pub"])) // 1_000_000,
                        "fresh": bool(st & STATE_FRESH), "logged_on": bool(st & STATE_LOGGED_ON),
                        "subscribed": bool(st & STATE_SUBSCRIBED), "quoting": bool(st & STATE_QUOTING),
                        "risk_tripped": bool(st & STATE_RISK_TRIPPED), "messages": int(r["messages"]),
                        "errors": int(r["errors"]), "restarts": int(r["restarts"])}
        out["processes"] = procs
        books = {}
        for name in ("ref.coinbase", "ref.kraken", "truex.book"):
            ch = get(name, TOP_OF_BOOK)
            top = read_top(ch) if ch is not None else None
            if top is not None:
                books[name] = {"bid": top.bid_e8 / E8, "ask": top.ask_e8 / E8, "usable": top.usable,
                               "age_ms": (now - top.t_pub_ns) // 1_000_000}
        out["books"] = books
        pos = get("position", POSITION)
        if pos is not None and pos.read() > 0:
            r = pos.rx[0]
            out["position"] = {
                "btc": int(r["position_lots"]) * LOT_BTC, "avg_entry": int(r["avg_entry_e8"]) / E8,
                "realized": int(r["realized_e8"]) / E8, "unrealized": int(r["unrealized_e8"]) / E8,
                "fees": int(r["fees_e8"]) / E8,
                "pnl": (int(r["realized_e8"]) + int(r["unrealized_e8"]) - int(r["fees_e8"])) / E8,
                "fair_mid": int(r["fair_mid_e8"]) / E8, "truex_fills": int(r["truex_fills"]),
                "hedge_fills": int(r["hedge_fills"]), "live_orders": int(r["live_orders"]),
                "quote_bid": int(r["quote_bid_ticks"]) * TICK, "quote_ask": int(r["quote_ask_ticks"]) * TICK,
                "orders_sent": int(r["orders_sent"]), "risk_tripped": bool(int(r["risk_tripped"]))}
    finally:
        for ch in own:
            with contextlib.suppress(Exception):
                ch.close()
    return out


def render(st: dict[str, Any], elapsed_s: float | None = None) -> str:
    if not st.get("running"):
        return f"instance {st['instance']}: not running (no control segment)"
    head = f"fastmm {st['instance']}  phase {st['phase']}"
    if elapsed_s is not None:
        head += f"  t+{elapsed_s:.0f}s"
    lines = [head]
    procs = st.get("processes", {})
    parts = []
    for p, h in procs.items():
        flags = [k for k in ("fresh", "logged_on", "subscribed", "quoting") if h[k]]
        if h["risk_tripped"]:
            flags.append("RISK")
        parts.append(f"{p}[{','.join(flags) or '-'} {h['age_ms']}ms]")
    lines.append("procs    " + "  ".join(parts))
    books = st.get("books", {})
    lines.append("books    " + "  ".join(
        f"{n} {b['bid']:.2f}/{b['ask']:.2f}{'' if b['usable'] else ' STALE'}" for n, b in books.items()))
    pos = st.get("position")
    if pos:
        quotes = (f"{pos['quote_bid']:.1f} / {pos['quote_ask']:.1f}" if pos["live_orders"] else "none")
        lines.append(f"quotes   {quotes}  live {pos['live_orders']}  sent {pos['orders_sent']}  "
                     f"fair {pos['fair_mid']:.2f}")
        lines.append(f"position {pos['btc']:+.4f} BTC  avg {pos['avg_entry']:.2f}  "
                     f"fills {pos['truex_fills']} truex / {pos['hedge_fills']} hedge")
        risk = "  RISK TRIPPED" if pos["risk_tripped"] else ""
        lines.append(f"pnl      {pos['pnl']:+.2f} PYUSD (realized {pos['realized']:+.2f}, unrealized "
                     f"{pos['unrealized']:+.2f}, fees {pos['fees']:.2f}){risk}")
    return "\n".join(lines)
