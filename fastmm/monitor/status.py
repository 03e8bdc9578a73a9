"""A running instance's state, read from its shared memory without disturbing it.

:func:`read_status` attaches read-only (it never claims a writer role) to the control, health, position
and book channels of an instance and returns plain data; :func:`render` turns it into the few lines of
the ``fastmm paper`` screen and ``fastmm status``. Nothing here writes to the engine.

The quoter's per-stage latency (feed receive to publish, publish to wake, wake to decision, decision to
order bytes written) is read live from its ``latency.quoter`` channel, which it refreshes about once a
second: percentiles over its run so far and over the last 10 to 20 s.

Given the instance's state folder, :func:`read_status` adds what only the files know: round-trip
latencies and reject reasons from the tail of the journal, the quoter's per-stage latency table of its
last exit, and, when the engine is not running, the final report of its last run. Segments left by
a supervisor that died (kill -9, a crash) are reported as such, not as a running engine.

Positions in lots and quotes in ticks become BTC and PYUSD with the instrument's increments (the
caller's configured instrument; the default one when none is given).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from fastmm.config import InstrumentConfig
from fastmm.instrument import Instrument
from fastmm.monitor.files import read_latency_file, read_tail
from fastmm.monitor.journal_stats import JournalStats
from fastmm.procs.book_channel import read_top
from fastmm.procs.latency_channel import read_latency
from fastmm.procs.lifecycle import Phase
from fastmm.procs.plan import OPTIONAL, PROCESSES, QUOTER_LATENCY, health_channel
from fastmm.procs.venue_reconcile import STATUS_FILE as RECONCILE_FILE
from fastmm.procs.venue_reconcile import render_status as render_reconcile
from fastmm.shm import LatestValue, ShmError
from fastmm.shm.instance_lock import holder_pid
from fastmm.shm.records import (
    CONTROL,
    FIRM,
    HEALTH,
    POSITION,
    STAGE_LATENCY,
    STATE_CONNECTED,
    STATE_FRESH,
    STATE_JOURNAL_FAILED,
    STATE_LOGGED_ON,
    STATE_QUOTING,
    STATE_RISK_TRIPPED,
    STATE_SUBSCRIBED,
    TOP_OF_BOOK,
)
from fastmm.units import E8


def _attach(instance: str, name: str, dtype: Any) -> LatestValue | None:
    try:
        return LatestValue.attach(instance, name, dtype, wait="spin")
    except ShmError:
        return None


def read_status(instance: str, channels: dict[str, LatestValue] | None = None,
                state_path: Path | None = None, journal_file: str = "journal.jsonl",
                instrument: Instrument | None = None) -> dict[str, Any]:
    """Everything the screen shows, as plain data. ``channels`` reuses open ones (the supervisor's);
    ``state_path`` (``<state_dir>/<instance>``) adds the journal tail, latency table and last report;
    ``instrument`` is the instance's (its ticks and lots)."""
    ins = instrument if instrument is not None else Instrument.from_config(InstrumentConfig())
    out = _read_shm(instance, channels, float(ins.tick_size), float(ins.lot_size))
    out["lot_btc"] = float(ins.lot_size)
    if state_path is not None:
        _add_files(out, Path(state_path), journal_file)
    return out


def _read_shm(instance: str, channels: dict[str, LatestValue] | None, tick: float,
              lot_btc: float) -> dict[str, Any]:
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
        owner = ctl.segment.owner_pid
        out["supervisor_pid"] = owner
        holder = holder_pid(instance)   # the kernel's word, not a pid that may have been reused
        if holder is None or holder not in (0, owner):
            out["stale"] = True     # segments of a supervisor that died: nothing is running
            out["phase"] = Phase(int(ctl.rx["phase"][0])).name
            return out
        out["running"] = True
        out["phase"] = Phase(int(ctl.rx["phase"][0])).name
        out["reason"] = bytes(ctl.rx["reason"][0]).decode("ascii", "replace")
        procs = {}
        for p in PROCESSES + OPTIONAL:
            ch = get(health_channel(p), HEALTH)
            if ch is None or ch.read() <= 0:
                continue
            r = ch.rx[0]
            st = int(r["state"])
            procs[p] = {"pid": int(r["pid"]), "age_ms": (now - int(r["t_pub"])) // 1_000_000,
                        "fresh": bool(st & STATE_FRESH), "logged_on": bool(st & STATE_LOGGED_ON),
                        "subscribed": bool(st & STATE_SUBSCRIBED), "quoting": bool(st & STATE_QUOTING),
                        "connected": bool(st & STATE_CONNECTED),
                        "risk_tripped": bool(st & STATE_RISK_TRIPPED),
                        "journal_failed": bool(st & STATE_JOURNAL_FAILED), "messages": int(r["messages"]),
                        "errors": int(r["errors"]), "restarts": int(r["restarts"])}
        out["processes"] = procs
        books = {}
        for name in ("ref.coinbase", "ref.kraken", "truex.book"):
            ch = get(name, TOP_OF_BOOK)
            top = read_top(ch) if ch is not None else None
            if top is not None:
                books[name] = {"bid": top.bid_e8 / E8, "ask": top.ask_e8 / E8, "usable": top.usable,
                               "age_ms": (now - top.t_pub_ns) // 1_000_000,
                               "recv_to_pub_us": (top.t_pub_ns - top.t_recv_ns) / 1000
                               if top.t_recv_ns else None}
        out["books"] = books
        pos = get("position", POSITION)
        if pos is not None and pos.read() > 0:
            r = pos.rx[0]
            out["position"] = {
                "btc": int(r["position_lots"]) * lot_btc, "avg_entry": int(r["avg_entry_e8"]) / E8,
                "realized": int(r["realized_e8"]) / E8, "unrealized": int(r["unrealized_e8"]) / E8,
                "fees": int(r["fees_e8"]) / E8,
                "pnl": (int(r["realized_e8"]) + int(r["unrealized_e8"]) - int(r["fees_e8"])) / E8,
                "fair_mid": int(r["fair_mid_e8"]) / E8, "truex_fills": int(r["truex_fills"]),
                "hedge_fills": int(r["hedge_fills"]), "live_orders": int(r["live_orders"]),
                "quote_bid": int(r["quote_bid_ticks"]) * tick, "quote_ask": int(r["quote_ask_ticks"]) * tick,
                "orders_sent": int(r["orders_sent"]), "risk_tripped": bool(int(r["risk_tripped"]))}
        firm = get("firm", FIRM)
        if firm is not None and firm.read() > 0:
            r = firm.rx[0]
            t_ok = int(r["t_ok"])
            out["firm"] = {"redis_up": bool(int(r["redis_up"])), "others_live": int(r["others_live"]),
                           "others_position": int(r["others_position_e8"]) / E8,
                           "own_position": int(r["own_position_e8"]) / E8,
                           "others_pnl": int(r["others_total_e8"]) / E8, "errors": int(r["errors"]),
                           "ok_age_ms": (now - t_ok) // 1_000_000 if t_ok else None}
        lat = get(QUOTER_LATENCY, STAGE_LATENCY)
        live = read_latency(lat, now) if lat is not None else None
        if live is not None:
            out["live_latency"] = live
    finally:
        for ch in own:
            with contextlib.suppress(Exception):
                ch.close()
    return out


def _add_files(out: dict[str, Any], state_path: Path, journal_file: str) -> None:
    """Journal-tail statistics, the quoter's latency table, and the last report when not running."""
    out["state_path"] = str(state_path)
    stats = JournalStats()
    stats.feed_all(read_tail(state_path / journal_file))
    out["journal_tail"] = stats.summary(time.time_ns())
    latency = read_latency_file(state_path)
    if latency is not None:
        out["latency"] = latency
    with contextlib.suppress(OSError, ValueError):
        out["reconcile"] = json.loads((state_path / RECONCILE_FILE).read_text())
    if not out.get("running"):
        with contextlib.suppress(OSError, ValueError):
            out["last_report"] = json.loads((state_path / "report.json").read_text())


def _px(v: float) -> str:
    return f"{v:.1f}" if v else "-"


def render(st: dict[str, Any], elapsed_s: float | None = None) -> str:
    if not st.get("running"):
        return _render_stopped(st)
    head = f"fastmm {st['instance']}  phase {st['phase']}"
    if st.get("reason"):
        head += f" ({st['reason']})"
    if elapsed_s is not None:
        head += f"  t+{elapsed_s:.0f}s"
    lines = [head]
    procs = st.get("processes", {})
    parts = []
    for p, h in procs.items():
        flags = [k for k in ("fresh", "logged_on", "subscribed", "quoting") if h[k]]
        if p in OPTIONAL:       # the shipper's database, the firm process's Redis
            flags.append("connected" if h["connected"] else "DOWN")
        if h["risk_tripped"]:
            flags.append("RISK")
        if h.get("journal_failed"):
            flags.append("JOURNAL-CANNOT-WRITE")
        extra = f" restarts {h['restarts']}" if h["restarts"] else ""
        parts.append(f"{p}[{','.join(flags) or '-'} {h['age_ms']}ms{extra}]")
    lines.append("procs    " + "  ".join(parts))
    books = st.get("books", {})
    lines.append("feeds    " + "  ".join(
        f"{n} {b['bid']:.2f}/{b['ask']:.2f} {'ok' if b['usable'] else 'STALE'} age {b['age_ms']}ms"
        for n, b in books.items()))
    pos = st.get("position")
    if pos:
        quotes = (f"bid {_px(pos['quote_bid'])} / ask {_px(pos['quote_ask'])}" if pos["live_orders"]
                  else "none")
        lines.append(f"quotes   {quotes}  live {pos['live_orders']}  sent {pos['orders_sent']}  "
                     f"fair {pos['fair_mid']:.2f}")
        lines.append(f"position {pos['btc']:+.4f} BTC  avg {pos['avg_entry']:.2f}  "
                     f"fills {pos['truex_fills']} truex / {pos['hedge_fills']} hedge")
        risk = "  RISK TRIPPED" if pos["risk_tripped"] else ""
        lines.append(f"pnl      {pos['pnl']:+.2f} PYUSD (realized {pos['realized']:+.2f}, unrealized "
                     f"{pos['unrealized']:+.2f}, fees {pos['fees']:.2f}){risk}")
    firm = st.get("firm")
    if firm:
        if firm["redis_up"]:
            lines.append(f"firm     Redis up  {firm['others_live']} other instance(s): position "
                         f"{firm['others_position']:+.4f}, PnL {firm['others_pnl']:+.2f}; firm "
                         f"{firm['own_position'] + firm['others_position']:+.4f}")
        else:
            age = f" (last ok {firm['ok_age_ms']} ms ago)" if firm["ok_age_ms"] is not None else " (never)"
            lines.append(f"firm     REDIS DOWN{age}: own limits only, {firm['errors']} failed round trips")
    lines += _render_live_latency(st.get("live_latency"))
    lines += _render_files(st)
    return "\n".join(lines)


def _stage(v: dict[str, Any]) -> str:
    if not v["count"]:
        return "-"
    return (f"p50 {v['p50_us']:.1f} p99 {v['p99_us']:.1f} p99.9 {v['p999_us']:.1f} max {v['max_us']:.1f} us "
            f"n {v['count']}")


def _render_live_latency(lat: dict[str, Any] | None) -> list[str]:
    """One line per quoter stage: the recent window, then the run so far."""
    if not lat:
        return []
    return [f"stage    {name:<15} last {lat['window_s']:.0f}s {_stage(lat['window'][name])}   "
            f"run {lat['run_s']:.0f}s {_stage(run)}" for name, run in lat["run"].items()]


def _render_files(st: dict[str, Any]) -> list[str]:
    lines = []
    if st.get("reconcile"):
        lines.append(render_reconcile(st["reconcile"]))
    tail = st.get("journal_tail")
    if tail:
        rts = tail.get("round_trips", {})
        rt = "  ".join(f"{k} p50 {v['p50_ms']:.2f} p99 {v['p99_ms']:.2f} ms (n {v['count']})"
                       for k, v in rts.items())
        lines.append(f"orders   {tail['order_rate_per_s']:.1f}/s  rejects "
                     f"{sum(tail['rejects'].values())} {tail['rejects'] or ''}".rstrip())
        if rt:
            lines.append(f"latency  {rt}")
    books = st.get("books", {})
    r2p = [f"{n} {b['recv_to_pub_us']:.0f}us" for n, b in books.items() if b.get("recv_to_pub_us")]
    if r2p:
        lines.append("feed lat recv_to_pub (latest record) " + "  ".join(r2p))
    lat = st.get("latency")
    if lat and lat.get("stages"):
        stages = "  ".join(f"{k} p50 {v['p50_us']:.0f} p99 {v['p99_us']:.0f} us"
                           for k, v in lat["stages"].items() if v["count"])
        lines.append(f"quoter   (table of its last exit, {lat['written_at']}) {stages}")
    return lines


def _render_stopped(st: dict[str, Any]) -> str:
    if st.get("stale"):
        head = (f"instance {st['instance']}: not running: segments of a dead supervisor (pid "
                f"{st['supervisor_pid']}, last phase {st['phase']}); the next start removes them")
    else:
        head = f"instance {st['instance']}: not running (no control segment)"
    lines = [head]
    rep = st.get("last_report")
    if rep:
        pos = rep.get("position") or {}
        lines.append(f"last run stopped: {rep.get('stop_reason')}; unconfirmed stop steps: "
                     f"{', '.join(rep.get('timed_out_steps') or []) or 'none'}")
        if pos:
            pnl = (pos["realized_e8"] + pos["unrealized_e8"] - pos["fees_e8"]) / E8
            lot_btc = st.get("lot_btc")
            size = (f"{pos['position_lots'] * lot_btc:+.4f} BTC" if lot_btc is not None
                    else f"{pos['position_lots']:+d} lots")
            lines.append(f"last position {size}, PnL {pnl:+.2f} PYUSD, "
                         f"fills {pos['truex_fills']} truex / {pos['hedge_fills']} hedge")
    lines += _render_files(st)
    return "\n".join(lines)
