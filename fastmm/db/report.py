"""``fastmm report --db URL [--instance NAME] [--since T]``: the session report, from the database.

For each instance the journal records it shipped (``journal_records``) go through the very fold the
journal report uses (fastmm.report.session.build_session), so the per-instance PNG/HTML is the same report
the journal would give; with ``--since`` the rebuild starts flat at that time. Beside them
``firm.html`` and ``summary.json`` put the instances side by side from the SQL views: PnL per day, fill
ratio, order-to-fill latency, spread capture and markouts per level.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from fastmm.config import Config, ConfigError
from fastmm.report.html import render_html, table
from fastmm.report.plots import plot_session
from fastmm.report.session import build_session, summary
from fastmm.units import E8

_REL = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_since(text: str | None, now_ns: int) -> int:
    """``2025-12-03T08:00:00Z``, a date, or an age such as ``90m``, ``6h``, ``2d``: nanoseconds."""
    if not text:
        return 0
    m = _REL.match(text)
    if m:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return now_ns - int(Decimal(m.group(1)) * mult * 10**9)
    from datetime import UTC, datetime

    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since: {text!r} is neither a time (ISO 8601) nor an age like 6h") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def _records(conn: psycopg.Connection[Any], instance: str, stream: str,
             since_ns: int) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT body FROM journal_records WHERE instance = %s AND stream = %s AND t_ns >= %s "
                       "ORDER BY seq", (instance, stream, since_ns))
    return [b for (b,) in cur]


def _rows(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)  # our own SQL
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def make_db_report(conn: psycopg.Connection[Any], out_dir: Path, cfg: Config, *,
                   instance: str | None = None, since_ns: int = 0) -> dict[str, Any]:
    """Write ``<instance>/session.{png,html}``, ``firm.html`` and ``summary.json``; returns the summary."""
    insts = _rows(conn, "SELECT instance, symbol, base_asset, tick_e8, lot_e8 FROM instances "
                        "WHERE %s::text IS NULL OR instance = %s ORDER BY instance", (instance, instance))
    if not insts:
        raise ConfigError(f"no instance {instance!r} in the database" if instance
                          else "no instance shipped yet")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = tuple(i["instance"] for i in insts)
    sections: dict[str, Any] = {}
    for inst in insts:
        name = inst["instance"]
        icfg = dataclasses.replace(cfg, instrument=dataclasses.replace(
            cfg.instrument, symbol=inst["symbol"], tick_size=Decimal(inst["tick_e8"]) / E8,
            lot_size=Decimal(inst["lot_e8"]) / E8))
        s = build_session(_records(conn, name, "quoter", since_ns), icfg)
        phases = [(r["t_ns"], str(r["phase"])) for r in _records(conn, name, "supervisor", since_ns)
                  if r.get("kind") == "phase" and "previous" in r]
        d = out_dir / name
        d.mkdir(parents=True, exist_ok=True)
        png = plot_session(s, phases, d / "session.png")
        summ = summary(s, {"journal": f"database, instance {name}"})
        (d / "session.html").write_text(render_html(s, summ, png.read_bytes(), phases))
        sections[name] = summ
    where = "WHERE instance = ANY(%s)"
    ns = since_ns
    firm = {
        "pnl_daily": _rows(conn, f"SELECT * FROM pnl_daily {where} AND bucket >= to_timestamp(%s / 1e9) "
                                 "ORDER BY instance, bucket", (list(names), ns)),
        "fill_ratio": _rows(conn, "SELECT instance, sum(orders) AS orders, sum(fills) AS fills, "
                                  "sum(fills)::numeric / nullif(sum(orders), 0) AS fill_ratio "
                                  "FROM fill_ratio "
                                  f"{where} AND bucket >= date_trunc('hour', to_timestamp(%s / 1e9)) "
                                  "GROUP BY instance ORDER BY instance", (list(names), ns)),
        "order_to_fill": _rows(conn, "SELECT instance, count(*) AS fills, percentile_cont(0.5) WITHIN GROUP "
                                     "(ORDER BY latency_ms) AS p50_ms, percentile_cont(0.99) WITHIN GROUP "
                                     f"(ORDER BY latency_ms) AS p99_ms FROM order_to_fill {where} "
                                     "AND t_ns >= %s GROUP BY instance ORDER BY instance", (list(names), ns)),
        "markouts_by_level": _rows(conn, "SELECT instance, level_ticks, count(*) AS fills, "
                                         "sum(capture_e8) AS capture_e8, "
                                         "avg(markout_1s_bps) AS markout_1s_bps, "
                                         "avg(markout_5s_bps) AS markout_5s_bps, avg(markout_60s_bps) AS "
                                         f"markout_60s_bps FROM fill_markouts {where} AND t_ns >= %s "
                                         "GROUP BY instance, level_ticks ORDER BY instance, level_ticks",
                                   (list(names), ns)),
    }
    firm = {k: [{c: _plain(v) for c, v in r.items()} for r in rows] for k, rows in firm.items()}
    result = {"since_ns": since_ns, "instances": sections, "firm": firm}
    (out_dir / "summary.json").write_text(json.dumps(result, indent=2, default=str))
    (out_dir / "firm.html").write_text(_firm_html(result))
    return result


def _firm_html(result: dict[str, Any]) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>fastmm firm report</title></head>"
             "<body>",
             "<h1>fastmm firm report</h1>",
             table(["instance", "records", "position", "PnL PYUSD", "fills TrueX", "fills hedge", "report"],
                    [[n, s["records"], f"{s['rebuilt']['position_btc']:+.4f}",
                      f"{s['rebuilt']['total']:+.2f}",
                      s["fills"]["truex"], s["fills"]["kraken"], f"{n}/session.html"]
                     for n, s in result["instances"].items()])]
    for key, rows in result["firm"].items():
        parts.append(f"<h2>{e(key)}</h2>")
        parts.append(table(list(rows[0]), [[r[c] for c in rows[0]] for r in rows]) if rows
                     else "<p>none</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def now_ns() -> int:
    return time.time_ns()
