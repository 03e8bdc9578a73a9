"""``fastmm db migrate|ship|lag``: the trading-records database by hand.

``migrate`` applies the schema migrations (fastmm.db.migrate); ``ship`` runs the shipper in the
foreground (``--once``: ship everything there is now and exit), as the supervised ``shipper`` process
does; ``lag`` prints each stream's last journal record against the database's cursor. The password
comes from FASTMM_DB_PASSWORD only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys

from fastmm.config import load_config


def _dsn(args: argparse.Namespace) -> tuple[str, str | None]:
    cfg = load_config(args.config, os.environ)
    return (args.dsn or cfg.ship.dsn), (cfg.ship.password.reveal() or None)


def _migrate(args: argparse.Namespace) -> int:
    import psycopg

    from fastmm.db.migrate import latest_version
    from fastmm.db.shipper import migrate_dsn

    dsn, pw = _dsn(args)
    try:
        applied = migrate_dsn(dsn, pw)
    except psycopg.Error as e:
        print(f"fastmm db migrate: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"fastmm db migrate: schema at version {latest_version()}"
          + (f" (applied {', '.join(map(str, applied))})" if applied else " (nothing to do)"))
    return 0


def _ship(args: argparse.Namespace) -> int:
    from fastmm.db import shipper

    cfg = load_config(args.config, os.environ)
    if args.dsn:
        cfg = dataclasses.replace(cfg, ship=dataclasses.replace(cfg.ship, dsn=args.dsn))

    async def main() -> shipper.ShipStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.once:
            stop.set()
        return await shipper.run(cfg, stop, drain_s=float(args.drain_s))

    stats = asyncio.run(main())
    print(f"fastmm db ship: {stats.shipped} records in {stats.batches} transactions, {stats.errors} errors"
          + (f" (last: {stats.last_error})" if stats.errors else ""))
    return 0 if not stats.errors else 1


def _lag(args: argparse.Namespace) -> int:
    import psycopg

    from fastmm.db.shipper import streams_of
    from fastmm.db.tail import last_seq

    cfg = load_config(args.config, os.environ)
    dsn, pw = _dsn(args)
    try:
        with psycopg.connect(dsn, password=pw, connect_timeout=5) if pw else psycopg.connect(dsn) as c:
            cur: dict[str, int] = dict(c.execute("SELECT stream, seq FROM ship_cursor WHERE instance = %s",
                                                 (cfg.instance.name,)).fetchall())
    except psycopg.Error as e:
        print(f"fastmm db lag: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    for stream, path in streams_of(cfg).items():
        last = last_seq(path)
        done = cur.get(stream, 0)
        print(f"{stream:<11} journal {last:>10}  shipped {done:>10}  lag {last - done}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="trading records in PostgreSQL: migrate, ship, lag")
    dsub = p.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    for name, fn, text in (("migrate", _migrate, "apply the schema migrations"),
                           ("ship", _ship, "ship the instance's journals (foreground)"),
                           ("lag", _lag, "journal records not yet shipped, per stream")):
        q = dsub.add_parser(name, help=text)
        q.add_argument("-c", "--config")
        q.add_argument("--dsn", help="database URL (default ship.dsn); password from FASTMM_DB_PASSWORD")
        if name == "ship":
            q.add_argument("--once", action="store_true", help="ship what there is now, then exit")
            q.add_argument("--drain-s", default="30", help="with --once: at most this long (seconds)")
        q.set_defaults(handler=fn)
