"""Two supervised engines (BTC and ETH recordings) on one host, one PostgreSQL, one Redis.

Each engine runs its shipper and firm processes; a third BTC desk (another host, here a publisher in
the test) holds +0.2 BTC in Redis. With risk.firm_max_position_btc = 0.5 the BTC engine's long side is
capped at 0.3 BTC; the journals and the database agree row for row at the end, for both instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from redis.exceptions import RedisError

from fastmm.config import Config, _parse_env_value, _toml_value, load_config
from fastmm.data.paths import data_dir
from fastmm.db import firm
from fastmm.db.shipper import streams_of
from fastmm.db.verify import differences
from fastmm.journal import read_journal
from fastmm.procs import lifecycle as lc
from fastmm.procs.plan import default_children, processes
from fastmm.procs.restart import RestartPolicy
from fastmm.procs.supervisor import Supervisor
from fastmm.shm import list_segments
from fastmm.sim import venues as sim_venues
from fastmm.sim.background import SimThread

ETH_DATA = data_dir() / "binance-spot-ethusdt-20240808"
CAP_LOTS = 5_000         # 0.5 BTC
DESK_LOTS = 2_000        # +0.2 BTC held by the other desk


class Running:
    def __init__(self, cfg: Config, sup: Supervisor, sims: SimThread) -> None:
        self.cfg, self.sup, self.sims = cfg, sup, sims


def toml_of(env: dict[str, str]) -> str:
    """FASTMM_<SECTION>__<KEY> settings as a TOML file (each engine's own: its children read the file,
    so a child the supervisor restarts never picks up the other engine's settings from the environment)."""
    raw: dict = {}
    for k, v in env.items():
        if k.startswith("FASTMM_") and "__" in k:
            *path, last = k[len("FASTMM_"):].lower().split("__")
            node = raw
            for part in path:
                node = node.setdefault(part, {})
            node[last] = _parse_env_value(v)

    def emit(prefix: str, table: dict) -> str:
        out = f"[{prefix}]\n" if prefix else ""
        out += "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items() if not isinstance(v, dict))
        for k, v in table.items():
            if isinstance(v, dict):
                out += emit(f"{prefix}.{k}" if prefix else k, v)
        return out

    return emit("", raw)


def start_engine(settings: dict[str, str], root: Path, made: list[Running]) -> Running:
    sim_venues.paper_credentials(os.environ)        # secrets: the environment (the same for both)
    cfg = load_config(None, {**os.environ, **settings})
    st, venues = sim_venues.start_in_thread(cfg)
    settings = {**settings, **sim_venues.config_for(cfg, venues)}
    path = root / f"{settings['FASTMM_INSTANCE__NAME']}.toml"
    path.write_text(toml_of(settings))
    cfg = load_config(path, os.environ)
    assert processes(cfg)[-2:] == ("shipper", "firm")
    sup = Supervisor(cfg, default_children(cfg, str(path), processes(cfg)),
                     restart=RestartPolicy(first_delay_ns=100_000_000))
    run = Running(cfg, sup, st)
    made.append(run)
    sup.start()
    return run


@pytest.fixture
def engines() -> Iterator[list[Running]]:
    made: list[Running] = []
    before = set(os.environ)
    yield made
    for k in set(os.environ) - before:          # the paper credentials start_engine put there
        if k.startswith("FASTMM_"):
            del os.environ[k]
    for r in made:
        try:
            if r.sup.lifecycle.phase != lc.Phase.STOPPED and r.sup.channels:
                r.sup.request_stop("test teardown")
                deadline = time.monotonic() + 30
                while r.sup.lifecycle.phase != lc.Phase.STOPPED and time.monotonic() < deadline:
                    r.sup.step()
                    time.sleep(0.005)
        finally:
            r.sup.close()
            r.sims.close()
        assert list_segments(r.cfg.instance.name) == []


def step_all(made: list[Running], until, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while not until():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}: "
                                 f"{[r.sup.lifecycle.phase.name for r in made]}")
        for r in made:
            r.sup.step()
        time.sleep(0.003)


def position_lots(r: Running) -> int:
    ch = r.sup.channels["position"]
    return int(ch.rx["position_lots"][0]) if ch.read() > 0 else 0


@pytest.mark.timeout(600)
@pytest.mark.skipif(not ETH_DATA.is_dir(), reason="the ETH recording is not in ../shared/data")
def test_two_engines_one_database_one_redis_and_the_firm_cap(
        tmp_path: Path, db: str, redis_url: str, engines: list[Running]) -> None:
    prefix = f"two{os.getpid()}"
    common = {
        "FASTMM_INSTANCE__STATE_DIR": str(tmp_path), "FASTMM_INSTANCE__LOG_LEVEL": "WARNING",
        "FASTMM_SIM__SPEED": "4", "FASTMM_SIM__TAKER_PROBABILITY": "1.0",
        "FASTMM_QUOTING__BASE_SPREAD_BPS": "2", "FASTMM_PROCESSES__HEARTBEAT_TIMEOUT_MS": "10000",
        "FASTMM_RISK__STALE_DATA_MS": "30000",   # a host loaded by other work must not trip the kill switch
        "FASTMM_SHIP__ENABLED": "true", "FASTMM_SHIP__DSN": db, "FASTMM_SHIP__POLL_MS": "100",
        "FASTMM_FIRM__ENABLED": "true", "FASTMM_FIRM__REDIS_URL": redis_url, "FASTMM_FIRM__PREFIX": prefix,
        "FASTMM_FIRM__PUBLISH_MS": "200", "FASTMM_FIRM__TIMEOUT_MS": "3000", "FASTMM_FIRM__TTL_S": "10", "FASTMM_FIRM__STOP_OPENING_WHEN_DOWN": "true",
        "FASTMM_SHM__WARM_EVERY_MS": "0",
    }
    # the other BTC desk: publishes +0.2 BTC every 200 ms for as long as the test runs
    desk_cfg = load_config(None, {"FASTMM_INSTANCE__NAME": "desk", "FASTMM_FIRM__REDIS_URL": redis_url,
                                  "FASTMM_FIRM__PREFIX": prefix, "FASTMM_FIRM__TTL_S": "5", "FASTMM_FIRM__TIMEOUT_MS": "3000",
                                  "FASTMM_REDIS_PASSWORD": os.environ["FASTMM_REDIS_PASSWORD"]})
    desk_stop = threading.Event()

    def desk() -> None:
        async def go() -> None:
            pub = firm.FirmPublisher(desk_cfg, firm.client(desk_cfg))
            while not desk_stop.is_set():
                t = time.time_ns() // 1_000_000
                with contextlib.suppress(RedisError, OSError):    # a loaded machine: try again
                    await pub.exchange(firm.entry(instance="desk", asset="BTC", position_lots=DESK_LOTS,
                                                  lot_e8=10_000, realized_e8=0, unrealized_e8=0, fees_e8=0,
                                                  phase="QUOTING", t_ms=t), t)
                await asyncio.sleep(0.2)
            await pub.r.aclose()
        asyncio.run(go())

    desk_thread = threading.Thread(target=desk, daemon=True)
    desk_thread.start()
    try:
        btc = start_engine({**common, "FASTMM_INSTANCE__NAME": f"btc{os.getpid()}",
                            "FASTMM_RISK__FIRM_MAX_POSITION_BTC": "0.5",
                            "FASTMM_QUOTING__BASE_SIZE_BTC": "0.05", "FASTMM_SIM__TAKER_SIZE_SCALE": "20",
                            "FASTMM_HEDGE__ENABLED": "false"}, tmp_path, engines)
        eth = start_engine({**common, "FASTMM_INSTANCE__NAME": f"eth{os.getpid()}",
                            "FASTMM_INSTRUMENT__SYMBOL": "ETH-PYUSD", "FASTMM_SIM__DATA_DIR": str(ETH_DATA),
                            "FASTMM_HEDGE__ENABLED": "false", "FASTMM_QUOTING__BASE_SIZE_BTC": "0.5"},
                           tmp_path, engines)
        step_all(engines, lambda: all(r.sup.lifecycle.phase == lc.Phase.QUOTING for r in engines), 240, "QUOTING")
        peak = 0
        t_end = time.monotonic() + 40
        step_all(engines, lambda: time.monotonic() > t_end or False, 60, "trading")
        for r in engines:
            r.sup.request_stop("test")
        step_all(engines, lambda: all(r.sup.lifecycle.phase == lc.Phase.STOPPED for r in engines), 90, "STOPPED")
    finally:
        desk_stop.set()
        desk_thread.join(10)
    # The BTC engine's position never passed the firm cap less the desk's (from its own journal's fills).
    pos = 0
    fills = 0
    for rec in read_journal(btc.cfg.state_path / btc.cfg.journal.file):
        if rec["kind"] == "fill":
            pos += rec["qty_lots"] if rec["side"] == "1" else -rec["qty_lots"]
            fills += 1
            peak = max(peak, pos)
    print(f"BTC engine: {fills} fills, peak long {peak} lots, desk {DESK_LOTS}, cap {CAP_LOTS}")
    assert fills > 0, "the BTC engine traded"
    assert peak + DESK_LOTS <= CAP_LOTS, f"firm position {peak + DESK_LOTS} lots over the cap {CAP_LOTS}"
    # The supervisor journals its last phases after its children (the shipper among them) have exited:
    # the next start of the instance ships them; here `fastmm db ship --once` does what it would.
    for r in (btc, eth):
        out = subprocess.run([sys.executable, "-m", "fastmm.cli", "db", "ship", "--once", "-c",
                              str(tmp_path / f"{r.cfg.instance.name}.toml")], capture_output=True, text=True,
                             timeout=120, env=dict(os.environ))
        assert out.returncode == 0, out.stderr
    # Both instances' rows, and each instance's journals equal to its rows.
    with psycopg.connect(db, password=os.environ["FASTMM_DB_PASSWORD"]) as c:
        names = [n for (n,) in c.execute("SELECT instance FROM instances ORDER BY instance")]
        assert names == sorted([btc.cfg.instance.name, eth.cfg.instance.name])
        symbols = dict(c.execute("SELECT instance, symbol FROM instances").fetchall())
        assert symbols[eth.cfg.instance.name] == "ETH-PYUSD"
        for r in (btc, eth):
            assert differences(c, r.cfg.instance.name, streams_of(r.cfg)) == [], r.cfg.instance.name
            n = c.execute("SELECT count(*) FROM journal_records WHERE instance = %s",
                          (r.cfg.instance.name,)).fetchone()[0]
            assert n > 50
