"""``fastmm paper``: the simulators and the supervised engine together, on the recorded data.

The venues run in a background thread of this process (:mod:`fastmm.sim.background`), on ephemeral
loopback ports handed to the engine through its FASTMM_* configuration; the engine runs exactly as under
``fastmm supervise``: separate processes, shared memory, the start and stop sequences. A status screen
is printed every second; on Ctrl-C, SIGTERM, the end of the data or ``--duration`` the engine goes
through its stop sequence and the final report is printed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from fastmm.config import Config, load_config
from fastmm.instrument import Instrument
from fastmm.monitor.status import read_status, render
from fastmm.procs import lifecycle as lc
from fastmm.procs.plan import default_children, processes
from fastmm.procs.supervisor import Supervisor
from fastmm.shm.instance_lock import InstanceLock
from fastmm.sim import venues as sim_venues
from fastmm.sim.background import SimThread
from fastmm.units import E8


@dataclass
class PaperOptions:
    config_path: str | None = None
    duration_s: float = 0.0        # 0 = until the data ends or Ctrl-C
    screen_every_s: float = 1.0
    processes: tuple[str, ...] | None = None    # None: the config's (fastmm.procs.plan.processes)


def run_paper(opts: PaperOptions, out: TextIO = sys.stdout) -> int:
    made = sim_venues.paper_credentials(os.environ)
    if made:
        print(f"paper: throw-away simulator credentials set for {', '.join(made)}", file=out)
    cfg = load_config(opts.config_path, os.environ)
    # Take the instance first: a live engine of it keeps its sequence files and segments untouched.
    instance: InstanceLock | None = InstanceLock.acquire(cfg.instance.name)
    sims: SimThread | None = None
    try:
        # A new simulated venue is a new FIX session day: sequence numbers start again on both sides.
        # (fastmm.venues.truex.factory.session_store_path; the second pattern is an earlier release's place)
        for stale in [*(cfg.state_path / "fix").glob("*.seq"), *cfg.state_path.glob("fix.*.seq")]:
            stale.unlink()
        sims, venues = sim_venues.start_in_thread(cfg)
        for name, where in venues.addresses.items():
            print(f"paper: {name:<18} {where}", file=out)
        os.environ.update(sim_venues.config_for(cfg, venues))
        cfg = load_config(opts.config_path, os.environ)
        sup = Supervisor(cfg, default_children(cfg, opts.config_path,
                                                   opts.processes or processes(cfg)))
        sup.instance_lock, instance = instance, None
        return _watch(sup, venues, opts, out)
    finally:
        if sims is not None:
            sims.close()
        if instance is not None:
            instance.close()


def _watch(sup: Supervisor, venues: sim_venues.VenueSet, opts: PaperOptions, out: TextIO) -> int:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, _frame: object) -> None:
        sup.request_stop(signal.Signals(signum).name)

    for s in previous:
        signal.signal(s, on_signal)
    t0 = time.monotonic()
    next_screen = t0
    try:
        sup.start()
        while sup.lifecycle.phase != lc.Phase.STOPPED:
            sup.step()
            now = time.monotonic()
            if sup.lifecycle.phase < lc.Phase.STOPPING:
                if venues.finished:
                    sup.request_stop("end of the recorded data")
                elif opts.duration_s and now - t0 >= opts.duration_s:
                    sup.request_stop(f"--duration {opts.duration_s:g} s reached")
            if opts.screen_every_s and now >= next_screen and sup.channels:
                next_screen = now + opts.screen_every_s
                st = read_status(sup.cfg.instance.name, sup.channels,  # type: ignore[arg-type]
                                 state_path=sup.cfg.state_path, journal_file=sup.cfg.journal.file,
                                 instrument=Instrument.from_config(sup.cfg.instrument))
                print(render(st, now - t0) + "\n", file=out, flush=True)
            time.sleep(0.005)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        sup.close()
    print(final_report(sup.cfg, sup.report_path), file=out, flush=True)
    return sup.exit_code


def final_report(cfg: Config, report_path: Path) -> str:
    lines = ["", "=== fastmm paper: final report ==="]
    try:
        rep = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return "\n".join([*lines, f"(no report at {report_path})"])
    lines.append(f"stopped: {rep.get('stop_reason')}; unconfirmed stop steps: "
                 f"{', '.join(rep.get('timed_out_steps') or []) or 'none'}")
    pos = rep.get("position")
    if pos:
        pnl = (pos["realized_e8"] + pos["unrealized_e8"] - pos["fees_e8"]) / E8
        btc = pos["position_lots"] * cfg.instrument.lot_size
        lines.append(f"position {btc:+.4f} BTC; fills {pos['truex_fills']} TrueX, "
                     f"{pos['hedge_fills']} hedge")
        lines.append(f"PnL {pnl:+.2f} PYUSD = realized {pos['realized_e8'] / E8:+.2f} + unrealized "
                     f"{pos['unrealized_e8'] / E8:+.2f} - fees {pos['fees_e8'] / E8:.2f}")
    try:
        pnl = json.loads((cfg.state_path / "pnl.quoter.json").read_text())
    except (OSError, ValueError):
        pnl = None
    if pnl:
        marks = ", ".join(f"{m['horizon_s']:g}s {m['avg_bps']:+.2f} bps ({m['fills']} fills)"
                          for m in pnl.get("markouts", []) if m.get("avg_bps") is not None)
        lines.append(f"quoter: {pnl['trades']} trades, spread capture "
                     f"{pnl.get('avg_spread_capture_bps') or 0:+.2f} bps; markouts: {marks or 'none yet'}")
    restarts = {k: v for k, v in (rep.get("restarts") or {}).items() if v}
    lines.append(f"process restarts: {restarts or 'none'}")
    latency = cfg.state_path / "latency.quoter.txt"
    if latency.exists():
        lines += ["quoter latency (us):", latency.read_text().rstrip()]
    lines.append(f"journal: {cfg.state_path / cfg.journal.file}; report: {report_path}")
    return "\n".join(lines)
