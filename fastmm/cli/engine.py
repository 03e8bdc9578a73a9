"""``fastmm supervise | paper | stop | status``: run, watch and stop an engine instance."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from fastmm.config import load_config
from fastmm.logs import setup_logging
from fastmm.procs.plan import default_children, processes
from fastmm.procs.supervisor import Supervisor
from fastmm.shm.segment import InstanceRunning


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("supervise", help="run the engine: shared memory, every process, start/stop sequences",
                       description="Start feed-coinbase, feed-kraken, feed-truex-md, quoter and hedger as "
                                   "separate processes, enforce the start and stop sequences; SIGINT or "
                                   "SIGTERM (or `fastmm stop`) runs the stop sequence.")
    p.add_argument("-c", "--config", help="TOML config file")
    p.set_defaults(handler=_supervise)

    p = sub.add_parser("paper", help="the simulators and the engine together on the recorded data",
                       description="Start the TrueX, Coinbase and Kraken simulators on loopback and the "
                                   "supervised engine against them; print a status screen every second and "
                                   "the final report at the end of the data, --duration, or Ctrl-C.")
    p.add_argument("-c", "--config", help="TOML config file")
    p.add_argument("--duration", type=float, default=0.0, help="stop after N seconds (0 = end of data)")
    p.add_argument("--speed", type=float, help="replay speed (overrides sim.speed; 0 = as fast as possible)")
    p.add_argument("--quiet", action="store_true", help="no status screen, only the final report")
    p.set_defaults(handler=_paper)

    p = sub.add_parser("stop", help="run the stop sequence of a running instance")
    p.add_argument("-c", "--config", help="TOML config file (for the instance name)")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the supervisor to exit")
    p.set_defaults(handler=_stop)

    p = sub.add_parser("status", help="phase, feeds, quotes, position and PnL of a running instance")
    p.add_argument("-c", "--config", help="TOML config file (for the instance name)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_status)


def _supervise(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, os.environ)
    setup_logging(cfg.instance.log_level)
    sup = Supervisor(cfg, default_children(cfg, args.config, processes(cfg)))
    try:
        return sup.run()
    except InstanceRunning as e:
        print(f"fastmm supervise: {e}", file=sys.stderr)
        return 1


def _paper(args: argparse.Namespace) -> int:
    from fastmm.paper import PaperOptions, run_paper

    if args.speed is not None:
        os.environ["FASTMM_SIM__SPEED"] = repr(args.speed)
    cfg = load_config(args.config, os.environ)
    setup_logging(cfg.instance.log_level if not args.quiet else "WARNING")
    try:
        return run_paper(PaperOptions(args.config, args.duration, 0.0 if args.quiet else 1.0))
    except InstanceRunning as e:
        print(f"fastmm paper: {e}", file=sys.stderr)
        return 1


def _stop(args: argparse.Namespace) -> int:
    from fastmm.shm import list_segments
    from fastmm.shm.instance_lock import holder_pid

    cfg = load_config(args.config, os.environ)
    name = cfg.instance.name
    pid = holder_pid(name)
    if pid is None:
        left = (" (segments of a dead supervisor remain; the next start removes them)"
                if list_segments(name) else "")
        print(f"fastmm stop: instance {name!r} is not running{left}", file=sys.stderr)
        return 1
    if pid == 0:
        print(f"fastmm stop: the supervisor of {name!r} holds the instance but does not answer",
              file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    print(f"fastmm stop: sent SIGTERM to the supervisor of {name!r} (pid {pid})")
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if holder_pid(name) != pid:     # the kernel released the instance: the supervisor has exited
            print("fastmm stop: the supervisor has stopped")
            return 0
        time.sleep(0.1)
    print(f"fastmm stop: the supervisor (pid {pid}) is still running after {args.wait:g} s", file=sys.stderr)
    return 1


def _status(args: argparse.Namespace) -> int:
    from fastmm.instrument import Instrument
    from fastmm.monitor.status import read_status, render

    cfg = load_config(args.config, os.environ)
    st = read_status(cfg.instance.name, state_path=cfg.state_path, journal_file=cfg.journal.file,
                     instrument=Instrument.from_config(cfg.instrument))
    print(json.dumps(st, indent=2) if args.json else render(st))
    return 0 if st.get("running") else 1
