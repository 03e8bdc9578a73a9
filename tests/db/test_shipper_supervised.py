"""The shipper as the supervisor runs it: registered only when enabled, restarted after kill -9, and the
database equal to the journals at the end (the supervisor's own journal included)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import psycopg
import pytest
from db_journals import write_session

from fastmm.config import load_config
from fastmm.db import shipper
from fastmm.db.verify import differences
from fastmm.journal import read_journal
from fastmm.procs.plan import PROCESSES, default_children, processes
from fastmm.procs.restart import RestartPolicy
from fastmm.procs.supervisor import Supervisor
from fastmm.shm import list_segments


def test_optional_processes_only_when_enabled() -> None:
    assert processes(load_config(None, {})) == PROCESSES
    assert processes(load_config(None, {"FASTMM_SHIP__ENABLED": "true"})) == (*PROCESSES, "shipper")
    assert processes(load_config(None, {"FASTMM_FIRM__ENABLED": "true", "FASTMM_SHIP__ENABLED": "true"}))[-2:] == (
        "shipper", "firm")


@pytest.mark.timeout(300)
def test_supervised_shipper_survives_kill_9(tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"FASTMM_INSTANCE__NAME": f"ship{os.getpid()}", "FASTMM_INSTANCE__STATE_DIR": str(tmp_path),
           "FASTMM_INSTANCE__LOG_LEVEL": "WARNING", "FASTMM_SHIP__ENABLED": "true", "FASTMM_SHIP__DSN": db,
           "FASTMM_SHIP__POLL_MS": "20", "FASTMM_SHIP__BATCH_RECORDS": "100",
           "FASTMM_PROCESSES__HEARTBEAT_TIMEOUT_MS": "10000"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = load_config(None, os.environ)
    sup = Supervisor(cfg, default_children(cfg, None, ("shipper",)), restart=RestartPolicy(first_delay_ns=50_000_000))

    def shipped() -> int:
        with psycopg.connect(db, password=os.environ["FASTMM_DB_PASSWORD"]) as c:
            try:
                return int(c.execute("SELECT coalesce(sum(seq), 0) FROM ship_cursor").fetchone()[0])
            except psycopg.errors.UndefinedTable:
                return 0

    def until(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            sup.step()
            time.sleep(0.01)

    try:
        sup.start()
        write_session(cfg.state_path, 1500, rotate_bytes=64 * 1024, supervisor=False)
        until(lambda: shipped() > 1000, 120, "the first records shipped")
        child = sup.children["shipper"]
        assert child.proc is not None
        first = child.proc.pid
        os.kill(first, signal.SIGKILL)                               # mid-stream
        write_session(cfg.state_path, 500, start=1500, rotate_bytes=64 * 1024, supervisor=False)
        until(lambda: child.proc is not None and child.proc.pid != first, 60, "the restart")
        total = sum(len(list(read_journal(p))) for p in shipper.streams_of(cfg).values())
        until(lambda: shipped() >= total - 5, 120, "the rest shipped")
        sup.request_stop("test")
        until(lambda: sup.lifecycle.phase.name == "STOPPED", 60, "STOPPED")
    finally:
        sup.close()
    assert list_segments(cfg.instance.name) == []

    async def catch_up() -> None:        # what the next start's shipper does first
        stop = asyncio.Event()
        stop.set()
        await shipper.run(cfg, stop)

    asyncio.run(catch_up())
    with psycopg.connect(db, password=os.environ["FASTMM_DB_PASSWORD"]) as c:
        assert differences(c, cfg.instance.name, shipper.streams_of(cfg)) == []
        kinds = dict(c.execute("SELECT kind, count(*) FROM journal_records WHERE stream = 'supervisor' "
                               "GROUP BY kind").fetchall())
        assert kinds.get("note", 0) >= 2                        # "started shipper", twice
