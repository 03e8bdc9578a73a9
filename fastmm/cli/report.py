"""``fastmm report JOURNAL [--out DIR]``: a PNG and an HTML summary of one session, from its journal.

The journal is the session's complete record of orders, answers and fills, so the report rebuilds
everything from it alone (:func:`build_session`, pure): our best bid and ask over time from the orders
and their answers, the position and exact PnL by replaying every fill through the engine's own
:class:`~fastmm.core.pnl.PnLTracker`, fills, rejects by reason, and order round-trip latencies. Files
the engine leaves next to the journal add to it when present: ``supervisor.jsonl`` (phase changes),
``latency.quoter.txt`` (per-stage latency) and ``report.json`` (the engine's own final position and PnL,
shown beside the rebuilt one as a cross-check).

The mid: the quoter journals its fair mid in ``mark`` records (``fair_mid_e8``, at most once a second,
when it changed); quotes are drawn against it and PnL is marked to it. Before the first mark (or in a
journal without marks) the centre of our own best bid and ask stands in for it (the ladder is built
around the fair mid, shifted by the inventory skew).

Output: ``session.png`` (quotes against the mid with fills, PnL, inventory, latency), ``session.html``
(the PNG inline, plus tables) and ``summary.json``. Plots use matplotlib's Agg backend (no display).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastmm.config import Config, ConfigError, load_config
from fastmm.core.pnl import PnLTracker
from fastmm.core.types import HedgeFilled, Liquidity, OrderFilled, Side
from fastmm.instrument import Instrument
from fastmm.journal.reader import exists, segments
from fastmm.journal.records import Fill as FillRecord
from fastmm.journal.records import HedgeFill, Record, RecordError, from_dict
from fastmm.journal.replay import Booking, OrderFold
from fastmm.logs import OnceLogger
from fastmm.monitor.journal_stats import JournalStats, parse_latency_table, parse_lines
from fastmm.units import E8, e8_to_decimal, format_e8

log = logging.getLogger("fastmm.report")


@dataclass
class Fill:
    """One fill as the report lists it."""

    t_ns: int
    venue: str          # truex | kraken
    side: str           # buy | sell
    price: float
    qty_btc: float
    liquidity: str
    fee: str | None
    cl_ord_id: str


@dataclass
class Session:
    """Everything the report shows, rebuilt from journal records."""

    start_ns: int = 0
    end_ns: int = 0
    records: int = 0
    skipped: int = 0
    quotes: list[tuple[int, float, float]] = field(default_factory=list)    # t, best bid, best ask (0 none)
    mids: list[tuple[int, float, str]] = field(default_factory=list)        # t, mid, source
    pnl: list[tuple[int, float, float, float, float]] = field(default_factory=list)  # t, total, realized,
    #                                                                                # unrealized, fees
    position: list[tuple[int, float]] = field(default_factory=list)        # t, BTC
    fills: list[Fill] = field(default_factory=list)
    stats: JournalStats = field(default_factory=lambda: JournalStats(keep_samples=True))
    final: dict[str, Any] = field(default_factory=dict)
    lot_size: Decimal = Decimal(0)      # the instrument's lot, BTC (a position in lots times this is BTC)


class _Rebuild:
    """Folds records into a :class:`Session` (no I/O): orders and fills through the journal's one fold
    (:class:`fastmm.journal.replay.OrderFold`, its ``working`` view: what the venue most likely shows)."""

    def __init__(self, cfg: Config) -> None:
        self.instrument = Instrument.from_config(cfg.instrument)
        self.tick = float(cfg.instrument.tick_size)
        self.lot = float(cfg.instrument.lot_size)
        self.pnl = PnLTracker(cfg.pnl, cfg.fees, self.instrument)
        self.fold = OrderFold()
        self.s = Session(lot_size=cfg.instrument.lot_size)
        self.bad = OnceLogger(log)
        self._last_quote: tuple[float, float] | None = None
        self._last_mid = 0.0

    def feed(self, rec: Record | dict[str, Any]) -> None:
        s = self.s
        if isinstance(rec, dict):
            kind, t = rec.get("kind"), rec.get("t_ns")
            if not isinstance(kind, str) or not isinstance(t, int) or isinstance(t, bool):
                s.skipped += 1
                self.bad("report: journal record without kind or t_ns skipped", repr(rec)[:100])
                return
            try:
                rec = from_dict(rec)
            except RecordError as e:
                s.records += 1
                s.start_ns = s.start_ns or t
                s.end_ns = max(s.end_ns, t)
                s.skipped += 1
                self.bad(f"report: unreadable {kind} record skipped", f"{e}: {repr(rec)[:100]}")
                return
        t = rec.t_ns
        s.records += 1
        s.start_ns = s.start_ns or t
        s.end_ns = max(s.end_ns, t)
        s.stats.feed(rec)
        if self.fold.apply(rec) == Booking.BOOKED:
            if isinstance(rec, FillRecord):
                self._fill(rec)
            elif isinstance(rec, HedgeFill):
                self._hedge_fill(rec)
        mid_e8 = getattr(rec, "fair_mid_e8", 0)
        if mid_e8 > 0:
            self._mark(t, mid_e8 / E8, "journal")
        self._quote_changed(t)

    def _fill(self, rec: FillRecord) -> None:
        liq = Liquidity.TAKER if rec.liquidity == 2 else Liquidity.MAKER
        fee = e8_to_decimal(rec.fee_e8) if rec.fee_e8 is not None else None
        self.pnl.on_truex_fill(rec.t_ns, OrderFilled(rec.cl_ord_id, rec.exec_id, rec.side, rec.px_ticks,
                                                     rec.qty_lots, rec.leaves_lots, liq, fee))
        self.s.fills.append(Fill(rec.t_ns, "truex", rec.side.name.lower(), rec.px_ticks * self.tick,
                                  rec.qty_lots * self.lot, liq.name.lower(),
                                  format_e8(rec.fee_e8) if rec.fee_e8 is not None else None, rec.cl_ord_id))
        self._money(rec.t_ns)

    def _hedge_fill(self, rec: HedgeFill) -> None:
        assert rec.side is not None     # the fold books none without
        price, fee = e8_to_decimal(rec.price_e8), e8_to_decimal(rec.fee_e8 or 0)
        self.pnl.on_hedge_fill(rec.t_ns, HedgeFilled(rec.exec_id, rec.side, rec.qty_lots, price,
                                                     Liquidity.TAKER, fee))
        self.s.fills.append(Fill(rec.t_ns, "kraken", rec.side.name.lower(), float(price),
                                  rec.qty_lots * self.lot, "taker", format_e8(rec.fee_e8 or 0),
                                  rec.cl_ord_id))
        self._money(rec.t_ns)

    def _quote_changed(self, t: int) -> None:
        working = self.fold.working
        bids = [p for sd, p in working.values() if sd == Side.BUY]
        asks = [p for sd, p in working.values() if sd == Side.SELL]
        q = (max(bids) * self.tick if bids else 0.0, min(asks) * self.tick if asks else 0.0)
        if q == self._last_quote:
            return
        self._last_quote = q
        self.s.quotes.append((t, *q))
        if q[0] and q[1] and not any(src == "journal" for _, _, src in self.s.mids[-1:]):
            self._mark(t, (q[0] + q[1]) / 2, "quote centre")

    def _mark(self, t: int, mid: float, source: str) -> None:
        if mid == self._last_mid:
            return
        self._last_mid = mid
        self.s.mids.append((t, mid, source))
        self.pnl.on_mark(t, mid)
        if self.pnl.position_lots:
            self._money(t)

    def _money(self, t: int) -> None:
        p = self.pnl
        self.s.pnl.append((t, p.total_units / E8, p.realized_units / E8, p.unrealized_units / E8,
                           p.fees_units / E8))
        self.s.position.append((t, p.position_lots * self.lot))

    def finish(self) -> Session:
        p = self.pnl
        sm = p.summary(self.s.end_ns)
        self.s.final = {
            "position_btc": p.position_lots * self.lot, "realized": float(sm.realized),
            "unrealized": float(sm.unrealized), "fees": float(sm.fees), "total": float(sm.total),
            "trades": sm.trades, "volume_btc": sm.volume_lots * self.lot,
            "volume_notional": float(sm.volume_notional), "max_drawdown": float(sm.max_drawdown),
            "avg_entry": float(p.avg_entry() or 0), "last_mid": self._last_mid,
        }
        return self.s


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every record of a journal (rotated segments first); corrupt lines are skipped and counted."""
    records: list[dict[str, Any]] = []
    lines = 0
    for seg in segments(path):
        data = seg.read_bytes()
        data = data[: data.rfind(b"\n") + 1]           # a torn last line of a crashed writer
        lines += sum(1 for ln in data.splitlines() if ln.strip())
        records.extend(parse_lines(data))
    return records, lines - len(records)


def build_session(records: list[dict[str, Any]], cfg: Config) -> Session:
    r = _Rebuild(cfg)
    def t_ns(rec: dict[str, Any]) -> int:
        t = rec.get("t_ns")
        return t if isinstance(t, int) else 0

    for rec in sorted(records, key=t_ns):
        r.feed(rec)
    return r.finish()


# -- output -------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_session(s: Session, phases: list[tuple[int, str]], path: Path) -> Path:
    plt = _pyplot()
    span_s = max(1e-9, (s.end_ns - s.start_ns) / 1e9)
    unit, div = ("minutes", 60e9) if span_s > 300 else ("seconds", 1e9)

    def x(t: int) -> float:
        return (t - s.start_ns) / div

    fig, axes = plt.subplots(4, 1, figsize=(11, 13), gridspec_kw={"height_ratios": [3, 2, 1.5, 1.8]})
    axes[1].sharex(axes[0])
    axes[2].sharex(axes[0])
    ax = axes[0]
    if s.mids:
        ax.step([x(t) for t, _, _ in s.mids], [m for _, m, _ in s.mids], where="post", color="k", lw=0.8,
                label=f"mid ({s.mids[-1][2]})")
    if s.quotes:
        qt = [x(t) for t, _, _ in s.quotes]
        ax.step(qt, [b or float("nan") for _, b, _ in s.quotes], where="post", color="tab:green", lw=0.8,
                label="our best bid")
        ax.step(qt, [a or float("nan") for _, _, a in s.quotes], where="post", color="tab:red", lw=0.8,
                label="our best ask")
    for side, marker, color in (("buy", "^", "tab:green"), ("sell", "v", "tab:red")):
        fs = [f for f in s.fills if f.side == side and f.venue == "truex"]
        if fs:
            ax.scatter([x(f.t_ns) for f in fs], [f.price for f in fs], marker=marker, color=color, s=22,
                       zorder=3, label=f"TrueX {side} fill")
    _phase_lines(ax, phases, x)
    ax.set_ylabel("PYUSD")
    ax.set_title("Quotes against the mid, and fills")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    ax = axes[1]
    if s.pnl:
        t = [x(r[0]) for r in s.pnl]
        ax.step(t, [r[1] for r in s.pnl], where="post", label="total", lw=1.2)
        ax.step(t, [r[2] for r in s.pnl], where="post", label="realized", lw=0.8)
        ax.step(t, [-r[4] for r in s.pnl], where="post", label="-fees", lw=0.8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("PYUSD")
    ax.set_title("PnL (marked to the mid)")
    if s.pnl:
        ax.legend(fontsize=8, loc="best")
    ax = axes[2]
    if s.position:
        ax.step([x(t) for t, _ in s.position], [p for _, p in s.position], where="post", color="tab:purple")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("BTC")
    ax.set_title("Inventory")
    for a in axes[:3]:
        a.set_xlabel(unit)
        a.grid(alpha=0.3)
    ax = axes[3]
    samples = s.stats.samples or []
    stages = sorted({st for st, _, _ in samples})
    for st in stages:
        vals = [ns / 1e6 for stg, _, ns in samples if stg == st]
        ax.hist(vals, bins=40, alpha=0.55, label=f"{st} (n {len(vals)})")
    ax.set_xlabel("milliseconds")
    ax.set_ylabel("count")
    ax.set_title("Order round trips (journal: request written -> answer read)")
    if stages:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _phase_lines(ax: Any, phases: list[tuple[int, str]], x: Any) -> None:
    if not phases:
        return
    span = max(1e-9, x(phases[-1][0]) - x(phases[0][0]))
    last = None
    for t, name in phases:
        ax.axvline(x(t), color="grey", lw=0.6, ls=":")
        if last is None or x(t) - last > span / 40:     # phases a moment apart: label the first only
            ax.annotate(name, (x(t), 1), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                        va="top", ha="right", color="grey")
            last = x(t)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    e = html.escape
    out = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
    return "\n".join([*out, "</table>"])


def _ts(t_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t_ns / 1e9)) + f".{t_ns % 10**9 // 10**6:03d}Z"


def summary(s: Session, extras: dict[str, Any]) -> dict[str, Any]:
    st = s.stats.summary(s.end_ns)
    fills = {v: sum(f.venue == v for f in s.fills) for v in ("truex", "kraken")}
    return {"journal": extras.get("journal"), "start": _ts(s.start_ns) if s.start_ns else None,
            "end": _ts(s.end_ns) if s.end_ns else None, "duration_s": round((s.end_ns - s.start_ns) / 1e9, 3),
            "records": s.records, "skipped_records": s.skipped, "corrupt_lines": extras.get("corrupt", 0),
            "rebuilt": s.final, "orders": st["order_messages"], "rejects": st["rejects"],
            "round_trips_ms": st["round_trips"], "fills": fills,
            "engine_report": extras.get("engine_report"), "stage_latency_us": extras.get("latency")}


def render_html(s: Session, summ: dict[str, Any], png: bytes, phases: list[tuple[int, str]]) -> str:
    e = html.escape
    f = s.final
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>fastmm session report</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1100px}",
        "table{border-collapse:collapse;margin:.5em 0}",
        "td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px;text-align:right}th{background:#f3f3f3}",
        "</style></head><body>",
        f"<h1>fastmm session report</h1><p>{e(str(summ['journal']))}<br>{e(str(summ['start']))} to "
        f"{e(str(summ['end']))} ({summ['duration_s']:.1f} s), {s.records} records"
        f"{f', {s.skipped} skipped' if s.skipped else ''}"
        f"{', ' + str(summ['corrupt_lines']) + ' corrupt lines' if summ['corrupt_lines'] else ''}</p>",
        "<h2>Result (rebuilt from the journal's fills)</h2>",
        _table(["position BTC", "PnL PYUSD", "realized", "unrealized", "fees", "trades", "volume BTC",
                "max drawdown", "last mid"],
               [[f"{f['position_btc']:+.4f}", f"{f['total']:+.2f}", f"{f['realized']:+.2f}",
                 f"{f['unrealized']:+.2f}", f"{f['fees']:.2f}", f["trades"], f"{f['volume_btc']:.4f}",
                 f"{f['max_drawdown']:.2f}", f"{f['last_mid']:.2f}"]]),
    ]
    rep = summ.get("engine_report")
    if rep and rep.get("position"):
        p = rep["position"]
        parts += ["<h2>Engine's own final report (report.json)</h2>", _table(
            ["stop reason", "position BTC", "PnL PYUSD", "realized", "unrealized", "fees", "fills TrueX",
             "fills hedge", "unconfirmed stop steps"],
            [[rep.get("stop_reason"), f"{p['position_lots'] * s.lot_size:+.4f}",
              f"{(p['realized_e8'] + p['unrealized_e8'] - p['fees_e8']) / E8:+.2f}",
              f"{p['realized_e8'] / E8:+.2f}", f"{p['unrealized_e8'] / E8:+.2f}", f"{p['fees_e8'] / E8:.2f}",
              p["truex_fills"], p["hedge_fills"], ", ".join(rep.get("timed_out_steps") or []) or "none"]])]
    parts.append(f"<img alt='session plots' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    parts += ["<h2>Orders and rejects</h2>",
              _table(["new", "cancel", "replace"], [[summ["orders"].get(k, 0) for k in
                                                     ("order", "cancel", "replace")]]),
              _table(["reject reason", "count"], [[k, n] for k, n in sorted(summ["rejects"].items())])
              if summ["rejects"] else "<p>no rejects</p>"]
    rts = summ["round_trips_ms"]
    parts += ["<h2>Latency</h2>", _table(["round trip", "count", "p50 ms", "p99 ms", "max ms"],
                                         [[k, v["count"], f"{v['p50_ms']:.3f}", f"{v['p99_ms']:.3f}",
                                           f"{v['max_ms']:.3f}"] for k, v in rts.items()])
              if rts else "<p>no round trips in the journal</p>"]
    lat = summ.get("stage_latency_us")
    if lat:
        parts.append(_table(["quoter stage", "count", "p50 us", "p99 us", "p99.9 us", "max us"],
                            [[k, v["count"], v["p50_us"], v["p99_us"], v["p999_us"], v["max_us"]]
                             for k, v in lat.items()]))
    if phases:
        parts += ["<h2>Phases</h2>", _table(["time", "phase"], [[_ts(t), n] for t, n in phases])]
    fills = s.fills[-500:]
    parts += [f"<h2>Fills ({len(s.fills)}{', last 500' if len(s.fills) > 500 else ''})</h2>",
              _table(["time", "venue", "side", "price", "BTC", "liquidity", "fee", "ClOrdID"],
                     [[_ts(x.t_ns), x.venue, x.side, f"{x.price:.2f}", f"{x.qty_btc:.4f}", x.liquidity,
                       x.fee or "", x.cl_ord_id] for x in fills]) if fills else "<p>no fills</p>",
              "</body></html>"]
    return "\n".join(parts)


def _phases(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    records, _ = read_records(path)
    return [(r["t_ns"], str(r["phase"])) for r in records if r.get("kind") == "phase" and "previous" in r
            and isinstance(r.get("t_ns"), int)]


def make_report(journal: Path, out_dir: Path, cfg: Config) -> dict[str, Any]:
    """Build ``session.png``, ``session.html`` and ``summary.json`` in ``out_dir``; returns the summary."""
    if not exists(journal):
        raise ConfigError(f"{journal}: no such journal")
    if journal.is_dir():
        raise ConfigError(f"{journal}: is a folder; give the journal file (e.g. {journal}/journal.jsonl)")
    records, corrupt = read_records(journal)
    if corrupt:
        log.warning("report: %d corrupt line(s) in %s skipped", corrupt, journal)
    s = build_session(records, cfg)
    here = journal.parent
    extras: dict[str, Any] = {"journal": str(journal), "corrupt": corrupt}
    with contextlib.suppress(OSError, ValueError):
        extras["engine_report"] = json.loads((here / "report.json").read_text())
    with contextlib.suppress(OSError):
        extras["latency"] = parse_latency_table((here / "latency.quoter.txt").read_text())
    phases = _phases(here / "supervisor.jsonl")
    out_dir.mkdir(parents=True, exist_ok=True)
    png_path = plot_session(s, phases, out_dir / "session.png")
    summ = summary(s, extras)
    (out_dir / "session.html").write_text(render_html(s, summ, png_path.read_bytes(), phases))
    (out_dir / "summary.json").write_text(json.dumps(summ, indent=2, default=str))
    return summ


def _report(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, os.environ)
    if args.db is not None:
        return _report_db(args, cfg)
    if not args.journal:
        print("fastmm report: give a JOURNAL, or --db URL", file=sys.stderr)
        return 2
    journal = Path(args.journal)
    out = Path(args.out) if args.out else journal.parent / "session-report"
    try:
        summ = make_report(journal, out, cfg)
    except OSError as e:
        print(f"fastmm report: {e}", file=sys.stderr)
        return 1
    f = summ["rebuilt"]
    print(f"fastmm report: {summ['records']} records, {summ['fills']['truex']} TrueX and "
          f"{summ['fills']['kraken']} hedge fills, position {f['position_btc']:+.4f} BTC, "
          f"PnL {f['total']:+.2f} PYUSD")
    print(f"fastmm report: wrote {out / 'session.html'}, {out / 'session.png'}, {out / 'summary.json'}")
    return 0


def _report_db(args: argparse.Namespace, cfg: Config) -> int:
    """The same report from the trading-records database, across instances (fastmm.db.report)."""
    import psycopg

    from fastmm.db.report import make_db_report, now_ns, parse_since

    out = Path(args.out or "session-report")
    pw = cfg.ship.password.reveal() or None
    try:
        with psycopg.connect(args.db or cfg.ship.dsn, connect_timeout=10, password=pw) as conn:
            res = make_db_report(conn, out, cfg, instance=args.instance,
                                 since_ns=parse_since(args.since, now_ns()))
    except psycopg.Error as e:
        print(f"fastmm report: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    for name, summ in res["instances"].items():
        f = summ["rebuilt"]
        print(f"fastmm report: {name}: {summ['records']} records, {summ['fills']['truex']} TrueX and "
              f"{summ['fills']['kraken']} hedge fills, position {f['position_btc']:+.4f}, "
              f"PnL {f['total']:+.2f} PYUSD")
    print(f"fastmm report: wrote {out / 'firm.html'}, {out / 'summary.json'} and a session report per "
          "instance")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="PNG and HTML summary of a session from its journal",
                       description="Rebuild a session from its journal (quotes, fills, position, PnL, "
                                   "rejects, round-trip latency) and write session.png, session.html and "
                                   "summary.json. supervisor.jsonl, latency.quoter.txt and report.json "
                                   "next to the journal are used when present.")
    p.add_argument("journal", nargs="?", help="the journal file, e.g. var/<instance>/journal.jsonl")
    p.add_argument("--db", metavar="URL", nargs="?", const="", help="draw it from the trading-records "
                   "database instead, across instances (no URL: the config's ship.dsn; password from "
                   "FASTMM_DB_PASSWORD)")
    p.add_argument("--instance", help="with --db: only this instance")
    p.add_argument("--since", help="with --db: from this time (ISO 8601) or age (90m, 6h, 2d)")
    p.add_argument("--out", help="output folder (default: session-report/ next to the journal)")
    p.add_argument("-c", "--config", help="TOML config file (instrument and fee rates)")
    p.set_defaults(handler=_report)
