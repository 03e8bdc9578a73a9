"""``fastmm report JOURNAL [--out DIR]`` and ``fastmm report --db``: the session report of
:mod:`fastmm.report` from a journal, or from the trading-records database (:mod:`fastmm.db.report`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fastmm.config import Config, load_config
from fastmm.report.make import make_report


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
