"""Ship an instance's journals into PostgreSQL, each record exactly once.

An instance writes three journals (streams): the quoter's (``journal.file``), ``hedger.jsonl`` and
``supervisor.jsonl``. For each, :class:`Shipper` reads the records after the stream's cursor
(``ship_cursor``) and writes, in one transaction: every record into ``journal_records``, its typed row
(fastmm.db.rows) and the new cursor. The cursor moves only with the rows, so a shipper (or database)
killed at any point resumes without a gap or a duplicate; the cursor update also checks the value it
read, so a second shipper of the same instance fails instead of writing twice.

The shipper is its own process and only reads the journal files: a slow or dead database delays
shipping and never the quoter. The journal keeps every segment (rotation renames, never deletes), so
nothing unshipped is lost while the database is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from fastmm.config import Config
from fastmm.db import rows
from fastmm.db.firm import base_asset
from fastmm.db.migrate import migrate
from fastmm.db.tail import JournalTail
from fastmm.instrument import Instrument

log = logging.getLogger("fastmm.shipper")


class CursorMoved(RuntimeError):
    """The stream's cursor is not where this shipper left it: another shipper of the instance runs."""


def streams_of(cfg: Config) -> dict[str, Path]:
    """Journal file of each stream of the instance."""
    st = cfg.state_path
    return {"quoter": st / cfg.journal.file, "hedger": st / "hedger.jsonl",
            "supervisor": st / "supervisor.jsonl"}


@dataclass
class ShipStats:
    shipped: int = 0
    batches: int = 0
    errors: int = 0
    connected: bool = False
    last_error: str = ""
    per_stream: dict[str, int] = field(default_factory=dict)


_INSERT = {t: (f"INSERT INTO {t} ({', '.join(rows.COMMON + cols)}) VALUES "
               f"({', '.join(['%s'] * (len(rows.COMMON) + len(cols)))})")
           for t, cols in rows.COLUMNS.items()}
_INSERT["executions"] += " ON CONFLICT (instance, venue, exec_id) DO NOTHING"


class Shipper:
    """The shipping itself, over a psycopg AsyncConnection the caller opens (:func:`connect`)."""

    def __init__(self, instance: str, streams: dict[str, Path], *, symbol: str, asset: str,
                 tick_e8: int, lot_e8: int, batch: int = 2000) -> None:
        self.instance = instance
        self.streams = streams
        self.symbol, self.asset, self.tick_e8, self.lot_e8 = symbol, asset, tick_e8, lot_e8
        self.batch = batch
        self.tails: dict[str, JournalTail] = {}
        self.cursor: dict[str, int] = {}
        self.stats = ShipStats()

    @classmethod
    def from_config(cls, cfg: Config) -> Shipper:
        ins = Instrument.from_config(cfg.instrument)
        return cls(cfg.instance.name, streams_of(cfg), symbol=ins.symbol, asset=base_asset(cfg),
                   tick_e8=ins.tick_e8, lot_e8=ins.lot_e8,
                   batch=cfg.ship.batch_records)

    def close(self) -> None:
        for t in self.tails.values():
            t.close()
        self.tails.clear()

    async def attach(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """On a fresh connection: register the instance, read the cursors, reopen the tails after them
        (records read but not committed on a lost connection are read again)."""
        self.close()
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO instances (instance, symbol, base_asset, tick_e8, lot_e8) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (instance) DO UPDATE SET symbol = EXCLUDED.symbol, "
                "base_asset = EXCLUDED.base_asset, tick_e8 = EXCLUDED.tick_e8, lot_e8 = EXCLUDED.lot_e8, "
                "updated_at = now()",
                (self.instance, self.symbol, self.asset, self.tick_e8, self.lot_e8))
            for stream in self.streams:
                await conn.execute("INSERT INTO ship_cursor (instance, stream, seq) VALUES (%s, %s, 0) "
                                   "ON CONFLICT DO NOTHING", (self.instance, stream))
            cur = await conn.execute("SELECT stream, seq FROM ship_cursor WHERE instance = %s",
                                     (self.instance,))
            self.cursor = {s: int(q) for s, q in await cur.fetchall() if s in self.streams}
        for stream, path in self.streams.items():
            self.tails[stream] = JournalTail(path, self.cursor[stream])

    async def ship_once(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """One batch per stream, each in its own transaction; the number of records shipped."""
        total = 0
        for stream, tail in self.tails.items():
            recs = tail.poll(self.batch)
            if not recs:
                continue
            await self._write(conn, stream, recs)
            total += len(recs)
            self.stats.per_stream[stream] = self.stats.per_stream.get(stream, 0) + len(recs)
        self.stats.shipped += total
        return total

    async def _write(self, conn: psycopg.AsyncConnection[Any], stream: str,
                     recs: list[tuple[int, dict[str, Any], bytes]]) -> None:
        inst = self.instance
        typed: dict[str, list[tuple[Any, ...]]] = {}
        for seq, rec, _line in recs:
            row = rows.to_row(rec, self.tick_e8)
            if row is not None:
                table, vals = row
                typed.setdefault(table, []).append((inst, stream, seq, int(rec.get("t_ns", 0)),
                                                    str(rec.get("kind")), *vals))
        before, after = self.cursor[stream], recs[-1][0]
        async with conn.transaction(), conn.cursor() as cur:
                async with cur.copy("COPY journal_records (instance, stream, seq, t_ns, kind, body) "
                                    "FROM STDIN") as cp:
                    for seq, rec, line in recs:
                        await cp.write_row((inst, stream, seq, int(rec.get("t_ns", 0)), str(rec.get("kind")),
                                            line.decode("utf-8", "replace")))
                for table, table_rows in typed.items():
                    await cur.executemany(_INSERT[table], table_rows)
                await cur.execute("UPDATE ship_cursor SET seq = %s, shipped_at = now() "
                                  "WHERE instance = %s AND stream = %s AND seq = %s",
                                  (after, inst, stream, before))
                if cur.rowcount != 1:
                    raise CursorMoved(f"{inst}/{stream}: cursor is not at {before}: is another shipper "
                                      "running for this instance?")
        self.cursor[stream] = after
        self.stats.batches += 1


async def connect(dsn: str, password: str | None, timeout_s: float = 5.0) -> psycopg.AsyncConnection[Any]:
    """A connection with the password from the caller (the environment), never from the URL or argv."""
    kw: dict[str, Any] = {"connect_timeout": max(1, int(timeout_s)), "autocommit": True}
    if password:
        kw["password"] = password
    return await psycopg.AsyncConnection.connect(dsn, **kw)


def _password(cfg: Config) -> str | None:
    return cfg.ship.password.reveal() or None


async def run(cfg: Config, stop: asyncio.Event, *, on_status: Callable[[ShipStats], None] | None = None,
              drain_s: float = 3.0) -> ShipStats:
    """Ship until ``stop``; then ship what is left for up to ``drain_s``. Reconnects after failures
    (``ship.retry_s``), logging each kind of failure once until it clears."""
    shipper = Shipper.from_config(cfg)
    conn: psycopg.AsyncConnection[Any] | None = None
    poll_s = cfg.ship.poll_ms / 1000
    logged: str = ""
    stats = shipper.stats
    deadline: float | None = None
    try:
        while True:
            if stop.is_set() and deadline is None:
                deadline = time.monotonic() + drain_s
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                if conn is None:
                    if cfg.ship.migrate:
                        await asyncio.to_thread(migrate_dsn, cfg.ship.dsn, _password(cfg))
                    conn = await connect(cfg.ship.dsn, _password(cfg))
                    await shipper.attach(conn)
                    stats.connected = True
                    if logged:
                        log.warning("shipper: database back (%s); resuming at %s", cfg.ship.dsn,
                                    shipper.cursor)
                        logged = ""
                    else:
                        log.info("shipper: connected to %s; resuming at %s", cfg.ship.dsn, shipper.cursor)
                n = await shipper.ship_once(conn)
            except (psycopg.Error, OSError, CursorMoved) as e:
                stats.errors += 1
                stats.connected = False
                stats.last_error = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                if stats.last_error != logged:
                    log.error("shipper: %s; retrying every %.1f s (the journal keeps everything)",
                              stats.last_error, cfg.ship.retry_s)
                    logged = stats.last_error
                if conn is not None:
                    await _close(conn)
                    conn = None
                if on_status:
                    on_status(stats)
                if deadline is not None:
                    break
                await _sleep(stop, cfg.ship.retry_s)
                continue
            if on_status:
                on_status(stats)
            if n == 0:
                if deadline is not None:
                    break
                await _sleep(stop, poll_s)
    finally:
        shipper.close()
        if conn is not None:
            await _close(conn)
    return stats


def migrate_dsn(dsn: str, password: str | None, timeout_s: float = 5.0) -> list[int]:
    """Migrate over a short-lived connection of its own (the migrator is synchronous)."""
    kw: dict[str, Any] = {"connect_timeout": max(1, int(timeout_s)), "autocommit": True}
    if password:
        kw["password"] = password
    with psycopg.connect(dsn, **kw) as c:
        return migrate(c)


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(TimeoutError, psycopg.Error, OSError):
        await asyncio.wait_for(conn.close(), 2.0)


async def _sleep(stop: asyncio.Event, s: float) -> None:
    if stop.is_set():
        await asyncio.sleep(min(s, 0.05))
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), s)
