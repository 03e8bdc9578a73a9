"""Journal shipping: throughput against the journal's write rate, and the quoter's price-event latency
with shipping on and off, in the same run.

A throwaway PostgreSQL (fastmm.db.servers) on loopback. Rows:

* ``paper_max_speed``: ``fastmm paper --speed 0`` (the recording replayed as fast as the engine takes it)
  for ``--paper-s`` seconds with ``ship.enabled``: the journals' records per second over the session,
  and whether the shipper process had shipped every record when the engine stopped (before the
  supervisor's last few records, which the next start ships);
* ``journal_write``: the engine's record mix (order, ack, fill, mark, pnl; hedges, cancels, phases;
  tests/db/db_journals.py) appended with the default durability (``flush``: one write per record) as
  fast as one process can: the most records per second any replay speed can make the journal take;
* ``ship``: the shipper (fastmm.db.shipper, default batch) shipping that journal from its start into the
  database, records per second; ``ship / write`` is how many times faster than the journal can be
  written the shipper drains it;
* ``price_event_ship_off`` / ``_on``: bench/core.py's price event (aggregator -> fair mid -> ladder ->
  reconcile -> actions) timed per event, 1 ms apart, while a writer process appends the record mix at
  each of ``--rates`` records per second to a journal; "on" runs the real ``fastmm db ship`` process
  on it (and PostgreSQL takes the rows), "off" does not. Off and on alternate ``--rounds`` times so drift on a
  shared machine falls on both.

    .venv/bin/python bench/ship.py [--paper-s 30] [--records 60000] [--rates 200,2000] [--events 3000]
                                   [--rounds 3] [--json P]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "db"))

from core import bench_price_event, summary  # noqa: E402  (bench/core.py)
from db_journals import write_session  # noqa: E402  (the tests' record mix)

from fastmm.config import Config, load_config  # noqa: E402
from fastmm.db import shipper  # noqa: E402
from fastmm.db.servers import PostgresServer  # noqa: E402
from fastmm.db.tail import last_seq  # noqa: E402
from fastmm.procs.heap import freeze_startup_heap  # noqa: E402

ROUND_RECORDS = 5.3      # records per write_session round on average (5 + cancels/hedges)

WRITER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from db_journals import write_session
from fastmm.journal import Journal
state, rate = sys.argv[2], float(sys.argv[3])
j = Journal(state + "/journal.jsonl", "flush", 8 << 20)
i, t0 = 10**6, time.monotonic()
while True:
    write_session(__import__("pathlib").Path(state), 10, start=i, quoter=j)
    i += 10
    ahead = (i - 10**6) * 5.3 / rate - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
"""


def cfg_for(state: Path, dsn: str, name: str) -> Config:
    return load_config(None, {"FASTMM_INSTANCE__NAME": name, "FASTMM_INSTANCE__STATE_DIR": str(state),
                              "FASTMM_SHIP__DSN": dsn,
                              "FASTMM_DB_PASSWORD": os.environ["FASTMM_DB_PASSWORD"]})


def throughput(pg: PostgresServer, root: Path, records: int) -> dict[str, float]:
    cfg = cfg_for(root, pg.dsn(), "tp")
    rounds = int(records / ROUND_RECORDS)
    t0 = time.perf_counter()
    write_session(cfg.state_path, rounds, rotate_bytes=8 << 20)
    t_write = time.perf_counter() - t0
    n = sum(last_seq(p) for p in shipper.streams_of(cfg).values())

    async def ship() -> shipper.ShipStats:
        stop = asyncio.Event()
        stop.set()
        return await shipper.run(cfg, stop, drain_s=3600)

    shipper.migrate_dsn(pg.dsn(), pg.password)
    t0 = time.perf_counter()
    stats = asyncio.run(ship())
    t_ship = time.perf_counter() - t0
    assert stats.shipped == n, (stats.shipped, n)
    return {"records": n, "write_per_s": n / t_write, "ship_per_s": n / t_ship,
            "ship_over_write": (n / t_ship) / (n / t_write), "batches": stats.batches}


def paper(pg: PostgresServer, root: Path, seconds: float) -> dict[str, float]:
    """A max-speed paper session with the shipper on: the journals' write rate and what got shipped."""
    import psycopg

    from fastmm.journal import read_journal

    name = f"paper{os.getpid()}"
    env = {**os.environ, "FASTMM_INSTANCE__NAME": name, "FASTMM_INSTANCE__STATE_DIR": str(root),
           "FASTMM_INSTANCE__LOG_LEVEL": "WARNING", "FASTMM_SHIP__ENABLED": "true",
           "FASTMM_SHIP__DSN": pg.dsn(), "FASTMM_SIM__TAKER_PROBABILITY": "1.0",
           "FASTMM_QUOTING__BASE_SPREAD_BPS": "2"}
    p = subprocess.run([sys.executable, "-m", "fastmm.cli", "paper", "--speed", "0", "--duration",
                        str(seconds), "--quiet"], env=env, capture_output=True, text=True,
                       timeout=seconds + 300)
    if p.returncode != 0:
        raise RuntimeError(f"paper exited {p.returncode}: {p.stderr[-2000:]}")
    cfg = cfg_for(root, pg.dsn(), name)
    total = 0
    t_lo, t_hi = 2**63, 0
    shipped = 0
    with psycopg.connect(pg.dsn(), password=pg.password) as c:
        for stream, path in shipper.streams_of(cfg).items():
            recs = list(read_journal(path))
            total += len(recs)
            if stream == "quoter" and recs:
                t_lo, t_hi = min(t_lo, recs[0]["t_ns"]), max(t_hi, recs[-1]["t_ns"])
            row = c.execute("SELECT seq FROM ship_cursor WHERE instance = %s AND stream = %s",
                            (name, stream)).fetchone()
            shipped += row[0] if row else 0
    span = max(1e-9, (t_hi - t_lo) / 1e9)
    quoter = sum(1 for _ in read_journal(shipper.streams_of(cfg)["quoter"]))
    return {"records": total, "quoter_records": quoter, "quoter_span_s": span,
            "quoter_per_s": quoter / span, "shipped": shipped, "unshipped_at_stop": total - shipped,
            "paper_output_tail": p.stdout[-1500:]}


def latency(pg: PostgresServer, root: Path, rate: float, events: int,
            rounds: int) -> dict[str, dict[str, float]]:
    runs: dict[str, list[int]] = {"off": [], "on": []}
    shipped = 0
    for r in range(rounds):
        for mode in ("off", "on"):
            name = f"lat{int(rate)}r{r}{mode}"
            state = root / name
            state.mkdir(parents=True)
            env = {**os.environ, "FASTMM_INSTANCE__NAME": name, "FASTMM_INSTANCE__STATE_DIR": str(root),
                   "FASTMM_SHIP__DSN": pg.dsn()}
            procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(HERE.parent / "tests" / "db"),
                                       str(state), str(rate)], env=env)]
            if mode == "on":
                procs.append(subprocess.Popen([sys.executable, "-m", "fastmm.cli", "db", "ship"], env=env,
                                              stdout=subprocess.DEVNULL))
            try:
                time.sleep(1.0)           # both running before the timing starts
                all_ns, _ = bench_price_event(events, 500, "ladder", idle_s=0.001)
                runs[mode] += all_ns
            finally:
                for p in procs:
                    p.send_signal(signal.SIGTERM)
                for p in procs:
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
            if mode == "on":
                import psycopg

                with psycopg.connect(pg.dsn(), password=pg.password) as c:
                    shipped += c.execute("SELECT count(*) FROM journal_records WHERE instance = %s",
                                         (name,)).fetchone()[0]
    return {"off": summary(runs["off"]), "on": summary(runs["on"]), "shipped_during_on": {"n": shipped}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=60_000)
    ap.add_argument("--rates", default="200,2000",
                    help="journal records per second while timing, one row pair each (the quoter's "
                         "journal takes at most ~40/s: TrueX lets 8-10 orders a second through)")
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paper-s", type=float, default=30.0, help="max-speed paper session length (0 = skip)")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    freeze_startup_heap()
    pg = PostgresServer()
    root = Path(tempfile.mkdtemp(prefix="fastmm-bench-ship-"))
    try:
        pg.start()
        os.environ["FASTMM_DB_PASSWORD"] = pg.password
        pp = paper(pg, root / "paper", args.paper_s) if args.paper_s > 0 else None
        tp = throughput(pg, root, args.records)
        lat = {rate: latency(pg, root, float(rate), args.events, args.rounds)
               for rate in args.rates.split(",")}
    finally:
        pg.remove()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    print(f"{'row':<40} {'value':>14}")
    if pp is not None:
        print(f"{'paper_max_speed quoter journal records/s':<40} {pp['quoter_per_s']:>14,.1f}")
        print(f"{'paper_max_speed records (all journals)':<40} {pp['records']:>14,}")
        print(f"{'paper_max_speed unshipped at stop':<40} {pp['unshipped_at_stop']:>14,}")
    print(f"{'journal_write records/s':<40} {tp['write_per_s']:>14,.0f}")
    print(f"{'ship records/s':<40} {tp['ship_per_s']:>14,.0f}")
    print(f"{'ship / journal_write':<40} {tp['ship_over_write']:>14.2f}")
    if pp is not None:
        print(f"{'ship / paper_max_speed':<40} {tp['ship_per_s'] / pp['quoter_per_s']:>14.1f}")
    print()
    print(f"{'row':<34} {'n':>7} {'p50 us':>8} {'p99 us':>8} {'p50 on/off':>11} {'p99 on/off':>11} "
          f"{'shipped':>8}")
    for rate, rows in lat.items():
        off = rows["off"]
        for mode in ("off", "on"):
            row = rows[mode]
            n_sh = rows["shipped_during_on"]["n"] if mode == "on" else 0
            print(f"{f'price_event_ship_{mode} @{rate}/s':<34} {int(row['n']):>7} {row['p50_us']:>8.2f} "
                  f"{row['p99_us']:>8.2f} {row['p50_us'] / off['p50_us']:>11.3f} "
                  f"{row['p99_us'] / off['p99_us']:>11.3f} {n_sh:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps({"paper": pp, "throughput": tp, "latency": lat,
                                               "args": vars(args), "python": platform.python_version()},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
