"""The shipper against a real PostgreSQL: every record once, across restarts, kills and outages."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from db_journals import write_session

from fastmm.config import Config, load_config
from fastmm.db import shipper
from fastmm.db.migrate import current_version, latest_version, migrate
from fastmm.db.servers import PostgresServer
from fastmm.db.verify import differences
from fastmm.journal import Journal

REPO = Path(__file__).resolve().parents[2]


def config(tmp: Path, dsn: str, name: str = "alpha", **extra: str) -> Config:
    env = {"FASTMM_INSTANCE__NAME": name, "FASTMM_INSTANCE__STATE_DIR": str(tmp),
           "FASTMM_SHIP__DSN": dsn, "FASTMM_SHIP__RETRY_S": "0.1", "FASTMM_SHIP__POLL_MS": "20",
           "FASTMM_DB_PASSWORD": os.environ["FASTMM_DB_PASSWORD"], **extra}
    return load_config(None, env)


def ship_all(cfg: Config) -> shipper.ShipStats:
    async def go() -> shipper.ShipStats:
        stop = asyncio.Event()
        stop.set()
        return await shipper.run(cfg, stop, drain_s=60)
    return asyncio.run(go())


def conn(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, password=os.environ["FASTMM_DB_PASSWORD"], autocommit=True)


def test_migrate_is_versioned_and_idempotent(db: str) -> None:
    with conn(db) as c:
        assert current_version(c) == 0
        assert migrate(c) == list(range(1, latest_version() + 1))
        assert migrate(c) == []
        assert current_version(c) == latest_version()


def test_fastmm_db_migrate_takes_the_password_from_the_environment(db: str) -> None:
    env = {**os.environ, "FASTMM_SHIP__DSN": db}
    out = subprocess.run([sys.executable, "-m", "fastmm.cli", "db", "migrate"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"schema at version {latest_version()}" in out.stdout
    env.pop("FASTMM_DB_PASSWORD")
    env["PGPASSFILE"] = "/nonexistent"
    out = subprocess.run([sys.executable, "-m", "fastmm.cli", "db", "migrate"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "password" in out.stderr


def test_a_password_in_the_url_is_refused(tmp_path: Path) -> None:
    from fastmm.config import ConfigError

    with pytest.raises(ConfigError, match="FASTMM_DB_PASSWORD"):
        load_config(None, {"FASTMM_SHIP__DSN": "postgresql://u:pw@127.0.0.1/x"})
    with pytest.raises(ConfigError, match="FASTMM_REDIS_PASSWORD"):
        load_config(None, {"FASTMM_FIRM__REDIS_URL": "redis://:pw@127.0.0.1:6379/0"})


def test_ships_every_record_once_and_then_only_the_new_ones(tmp_path: Path, db: str) -> None:
    cfg = config(tmp_path, db)
    write_session(cfg.state_path, 200, rotate_bytes=8192)
    assert len(list(cfg.state_path.glob("journal.jsonl.*"))) > 3
    s1 = ship_all(cfg)
    with conn(db) as c:
        assert differences(c, "alpha", shipper.streams_of(cfg)) == []
        n1 = c.execute("SELECT count(*) FROM journal_records").fetchone()[0]
        assert n1 == s1.shipped
        assert c.execute("SELECT count(*) FROM executions WHERE venue = 'truex'").fetchone()[0] == 200
        assert c.execute("SELECT tick_e8, lot_e8, base_asset FROM instances").fetchone() == (50_000_000, 10_000, "BTC")
    write_session(cfg.state_path, 50, start=200, rotate_bytes=8192)
    s2 = ship_all(cfg)
    assert 0 < s2.shipped < s1.shipped
    assert ship_all(cfg).shipped == 0
    with conn(db) as c:
        assert differences(c, "alpha", shipper.streams_of(cfg)) == []


def test_a_second_shipper_of_the_instance_cannot_write_twice(tmp_path: Path, db: str) -> None:
    cfg = config(tmp_path, db)
    write_session(cfg.state_path, 20)

    async def race() -> None:
        shipper.migrate_dsn(db, os.environ["FASTMM_DB_PASSWORD"])
        a, b = shipper.Shipper.from_config(cfg), shipper.Shipper.from_config(cfg)
        ca = await shipper.connect(db, os.environ["FASTMM_DB_PASSWORD"])
        cb = await shipper.connect(db, os.environ["FASTMM_DB_PASSWORD"])
        await a.attach(ca)
        await b.attach(cb)
        assert await a.ship_once(ca) > 0
        with pytest.raises((shipper.CursorMoved, psycopg.errors.UniqueViolation)):
            await b.ship_once(cb)
        await ca.close()
        await cb.close()
        a.close()
        b.close()

    asyncio.run(race())
    with conn(db) as c:
        assert differences(c, "alpha", shipper.streams_of(cfg)) == []


def _start_shipper_process(cfg_env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "fastmm.cli", "db", "ship"], env={**os.environ, **cfg_env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(pred, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _shipped(db: str) -> int:
    try:
        with conn(db) as c:
            return int(c.execute("SELECT count(*) FROM journal_records").fetchone()[0])
    except psycopg.Error:
        return -1


def test_shipper_killed_mid_stream_resumes_without_gap_or_duplicate(tmp_path: Path, db: str) -> None:
    cfg = config(tmp_path, db, FASTMM_SHIP__BATCH_RECORDS="50")
    env = {"FASTMM_INSTANCE__NAME": "alpha", "FASTMM_INSTANCE__STATE_DIR": str(tmp_path), "FASTMM_SHIP__DSN": db,
           "FASTMM_SHIP__BATCH_RECORDS": "50", "FASTMM_SHIP__POLL_MS": "10"}
    write_session(cfg.state_path, 2000, rotate_bytes=64 * 1024)
    for kill in range(3):
        p = _start_shipper_process(env)
        try:
            before = max(_shipped(db), 0)
            _wait(lambda b=before: _shipped(db) > b + 200)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        write_session(cfg.state_path, 100, start=2000 + kill * 100, rotate_bytes=64 * 1024)
    ship_all(cfg)
    with conn(db) as c:
        assert differences(c, "alpha", shipper.streams_of(cfg)) == []


def test_database_down_at_start_then_killed_mid_stream(tmp_path: Path, db: str, pg_server: PostgresServer) -> None:
    """The engine writes on; the shipper waits out a database that is not there, then one that dies."""
    cfg = config(tmp_path, db, FASTMM_SHIP__BATCH_RECORDS="100")
    write_session(cfg.state_path, 300, rotate_bytes=32 * 1024)
    pg_server.stop()
    stats: list[shipper.ShipStats] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(shipper.run(cfg, stop, on_status=lambda s: stats.append(s)))
        await asyncio.sleep(1.0)
        assert stats and stats[-1].errors > 0 and stats[-1].shipped == 0   # down at start: waits
        await asyncio.to_thread(pg_server.start)
        for _ in range(600):
            await asyncio.sleep(0.05)
            if stats[-1].shipped > 300:
                break
        await asyncio.to_thread(pg_server.crash)                          # killed mid-stream
        errors = stats[-1].errors
        write_session(cfg.state_path, 300, start=300, rotate_bytes=32 * 1024)   # the engine goes on
        for _ in range(100):
            await asyncio.sleep(0.05)
            if stats[-1].errors > errors:
                break
        await asyncio.to_thread(pg_server.start)
        j = Journal(cfg.state_path / "journal.jsonl", "flush", 32 * 1024)
        write_session(cfg.state_path, 100, start=600, quoter=j)
        j.close()
        stop.set()
        await asyncio.wait_for(task, 120)

    asyncio.run(scenario())
    ship_all(cfg)
    with conn(db) as c:
        assert differences(c, "alpha", shipper.streams_of(cfg)) == []
        assert c.execute("SELECT count(*) FROM executions WHERE venue = 'truex'").fetchone()[0] == 700
