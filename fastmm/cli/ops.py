"""Operator commands: ``fastmm metrics``, ``fastmm ops wait | pids | cancel-orders | reach | host-check |
host-tune``.

* ``metrics``: the Prometheus exporter (:mod:`fastmm.monitor.metrics`), a separate read-only process.
* ``ops wait``: block until an instance reaches a phase or has stopped, so runbooks and scripts can
  sequence steps without sleeping and guessing.
* ``ops cancel-orders``: the last step of the emergency kill switch. After the engine was killed hard
  (kill -9, OOM, a host crash) its quotes may still rest on TrueX, which has no mass cancel and no order
  status: the journal is the only list of what may be live. This logs on to order entry with the
  engine's own session (CompIDs and sequence store), sends one OrderCancelRequest per order the journal
  says may be live, journals every answer (fills that raced in too, so the next start books them) and
  logs out (:mod:`fastmm.ops.cancel`). It refuses to run while the engine runs (two writers of one
  journal and one FIX session).
* ``ops wait --clock-synced``: block until the kernel says the clock is synchronized (after a reboot,
  before anything logs on to TrueX, which rejects a SendingTime more than 2 minutes off).
* ``ops reach``: TCP reachability of the venue endpoints of the config, without logging on (a second
  order-entry session would fight the engine's over sequence numbers).
* ``ops host-check``: the bare-metal tuning of ``ops/host-tuning.md`` checked read-only: facts read from
  /proc and /sys (:func:`fastmm.ops.host.read_facts`), judged by pure rules
  (:func:`fastmm.ops.host_check.check_host`).
* ``ops host-tune``: the same facts turned into a plan (:func:`fastmm.ops.host_tune.plan_host`, pure):
  the CPU governor, THP, IRQ affinity away from the hot CPUs, irqbalance's ban list, the cpu_dma_latency
  udev rule, and the kernel command line to add (advice only: a boot loader is not something to edit
  behind a human's back); ``--apply`` writes the plan (:func:`fastmm.ops.host_tune.apply_plan`).

The host commands read (and ``host-tune --apply`` writes) under ``--root``, default ``$FASTMM_HOST_ROOT``
or ``/``: the tests point them at a temporary tree shaped like /sys, /proc and /etc.

This module is the command line only: what the commands do lives in :mod:`fastmm.ops`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from fastmm.config import ConfigError, load_config
from fastmm.logs import setup_logging
from fastmm.ops.endpoints import endpoints
from fastmm.ops.host import clock_synced, read_facts
from fastmm.ops.host_check import check_host, render_checks
from fastmm.ops.host_tune import apply_plan, plan_host

EXIT_TIMEOUT = 1
EXIT_REFUSED = 3
HOST_ROOT_ENV = "FASTMM_HOST_ROOT"
_ROOT_HELP = f"read the host under this root instead of / (default ${HOST_ROOT_ENV} or /; for tests, chroots)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="Prometheus metrics of a running instance on loopback (read-only)",
                       description="Serve /metrics (Prometheus text format): phase, processes, feeds, "
                                   "position, PnL, fills, order rate, rejects by reason, round-trip and "
                                   "per-stage latency. Attaches to shared memory as a reader and tails "
                                   "the journals; it never writes anything the engine reads.")
    p.add_argument("-c", "--config", help="TOML config file (instance name and state folder)")
    p.add_argument("--port", type=int, default=9464, help="TCP port (0 = any free port); default 9464")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on; default loopback only")
    p.set_defaults(handler=_metrics)

    p = sub.add_parser("ops", help="operator tools: wait for a phase, cancel orders left live, host check")
    osub = p.add_subparsers(dest="ops_command", metavar="ACTION", required=True)
    w = osub.add_parser("wait", help="wait until the instance is in a phase (or stopped); exit 1 on timeout")
    w.add_argument("-c", "--config", help="TOML config file")
    g = w.add_mutually_exclusive_group(required=True)
    g.add_argument("--phase", help="STARTING, FEEDS_UP, OE_LOGGED_ON, MD_SUBSCRIBED, QUOTING, STOPPING")
    g.add_argument("--stopped", action="store_true", help="wait until no supervisor of the instance runs")
    g.add_argument("--clock-synced", action="store_true",
                   help="wait until the kernel clock is synchronized (chrony, ntpd or PTP; adjtimex)")
    w.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    w.add_argument("--root", help=_ROOT_HELP)
    w.set_defaults(handler=_wait)

    q = osub.add_parser("pids", help="pids of the running instance: supervisor first, then its processes")
    q.add_argument("-c", "--config", help="TOML config file")
    q.add_argument("--process", help="only this process (feed-coinbase, feed-kraken, feed-truex-md, quoter, "
                                     "hedger, supervisor)")
    q.set_defaults(handler=_pids)

    c = osub.add_parser("cancel-orders",
                        help="kill switch, last step: cancel every order the journal says may be live")
    c.add_argument("-c", "--config", help="TOML config file")
    c.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for every answer")
    c.set_defaults(handler=_cancel_orders)

    r = osub.add_parser("reach", help="TCP reachability of the venue endpoints of the config (no logon)")
    r.add_argument("-c", "--config", help="TOML config file")
    r.add_argument("--venue", choices=("truex", "coinbase", "kraken"), help="only this venue")
    r.add_argument("--timeout", type=float, default=3.0, help="seconds per endpoint (default 3)")
    r.set_defaults(handler=_reach)

    h = osub.add_parser("host-check", help="check the bare-metal tuning (isolated CPUs, IRQs, governor, "
                                           "THP, clock sync, cpu_dma_latency) read-only")
    h.add_argument("-c", "--config", help="TOML config file (the CPUs the processes are pinned to)")
    h.add_argument("--json", action="store_true", help="machine-readable output")
    h.add_argument("--root", help=_ROOT_HELP)
    h.add_argument("--strict", action="store_true", help="exit 1 when any check is not ok")
    h.set_defaults(handler=_host_check)

    t = osub.add_parser("host-tune", help="show (or --apply) the bare-metal tuning: governor, THP, IRQ "
                                          "affinity, irqbalance ban list, cpu_dma_latency rule, kernel "
                                          "command line advice",
                        description="Plan the tuning of ops/host-tuning.md for the CPUs the config pins the "
                                    "hot processes to (and any CPU already isolated), and with --apply "
                                    "write it (as root). The kernel command line is only printed: add it "
                                    "with your boot loader's tool and reboot. Exit 1 when a write failed.")
    t.add_argument("-c", "--config", help="TOML config file (the CPUs the processes are pinned to)")
    t.add_argument("--apply", action="store_true", help="write the changes (as root); default: show them")
    t.add_argument("--root", help=_ROOT_HELP)
    t.set_defaults(handler=_host_tune)


def _host_root(args: argparse.Namespace) -> Path:
    return Path(args.root or os.environ.get(HOST_ROOT_ENV) or "/")


# -- metrics ------------------------------------------------------------------------------------------
def _metrics(args: argparse.Namespace) -> int:
    from fastmm.instrument import Instrument
    from fastmm.monitor.metrics import EngineCollector, run_exporter

    cfg = load_config(args.config, os.environ)
    setup_logging(cfg.instance.log_level)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: {args.port} is outside 0 .. 65535")
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    collector = EngineCollector(cfg.instance.name, cfg.state_path, cfg.journal.file,
                                instrument=Instrument.from_config(cfg.instrument))
    try:
        return run_exporter(collector, args.port, args.bind, stop)
    except OSError as e:
        print(f"fastmm metrics: cannot listen on {args.bind}:{args.port}: {e}", file=sys.stderr)
        return 1


# -- wait ---------------------------------------------------------------------------------------------
def _wait(args: argparse.Namespace) -> int:
    from fastmm.monitor.status import read_status
    from fastmm.procs.lifecycle import Phase

    cfg = load_config(args.config, os.environ)
    want = None
    if args.phase is not None:
        try:
            want = Phase[args.phase.upper()].name
        except KeyError:
            raise ConfigError(f"--phase: {args.phase!r} is not one of "
                              f"{', '.join(p.name for p in Phase)}") from None
    deadline = time.monotonic() + args.timeout
    if args.clock_synced:
        return _wait_clock(_host_root(args), deadline, args.timeout)
    while True:
        st = read_status(cfg.instance.name)
        if (args.stopped and not st.get("running")) or (want and st.get("running") and st["phase"] == want):
            print(f"fastmm ops wait: {cfg.instance.name} {'stopped' if args.stopped else want}")
            return 0
        if time.monotonic() >= deadline:
            now = st.get("phase", "-") if st.get("running") else "not running"
            print(f"fastmm ops wait: timed out after {args.timeout:g} s; {cfg.instance.name} is {now}",
                  file=sys.stderr)
            return EXIT_TIMEOUT
        time.sleep(0.1)


def _wait_clock(root: Path, deadline: float, timeout: float) -> int:
    while True:
        synced = clock_synced(root)
        if synced:
            print("fastmm ops wait: the kernel clock is synchronized")
            return 0
        if synced is None:
            print("fastmm ops wait: cannot tell whether the clock is synchronized here (no adjtimex); check "
                  "chronyc tracking", file=sys.stderr)
            return EXIT_TIMEOUT
        if time.monotonic() >= deadline:
            print(f"fastmm ops wait: timed out after {timeout:g} s; the kernel clock is NOT synchronized "
                  "(chronyc tracking, chronyc sources)", file=sys.stderr)
            return EXIT_TIMEOUT
        time.sleep(0.2)


# -- pids -------------------------------------------------------------------------------------------
def _pids(args: argparse.Namespace) -> int:
    """Live pids only, one line, so ``kill -KILL $(fastmm ops pids)`` is the hard kill."""
    from fastmm.monitor.status import read_status
    from fastmm.shm.segment import pid_alive

    cfg = load_config(args.config, os.environ)
    st = read_status(cfg.instance.name)
    pids: dict[str, int] = {}
    if st.get("supervisor_pid"):
        pids["supervisor"] = st["supervisor_pid"]
    for name, h in st.get("processes", {}).items():
        pids[name] = h["pid"]
    if args.process:
        pids = {k: v for k, v in pids.items() if k == args.process}
    live = [str(p) for p in pids.values() if pid_alive(p)]
    if not live:
        print(f"fastmm ops pids: no live process of {cfg.instance.name!r}"
              f"{' named ' + args.process if args.process else ''}", file=sys.stderr)
        return 1
    print(" ".join(live))
    return 0


# -- cancel-orders ------------------------------------------------------------------------------------
def _cancel_orders(args: argparse.Namespace) -> int:
    from fastmm.event_loop import run
    from fastmm.monitor.status import read_status
    from fastmm.ops.cancel import cancel_orders

    cfg = load_config(args.config, os.environ)
    setup_logging("WARNING")
    st = read_status(cfg.instance.name)
    if st.get("running"):
        print(f"cancel-orders: instance {cfg.instance.name!r} is running (supervisor pid "
              f"{st.get('supervisor_pid')}): use `fastmm stop`, which cancels every quote itself",
              file=sys.stderr)
        return EXIT_REFUSED
    return run(cancel_orders(cfg, args.timeout, sys.stdout))


# -- host-check ---------------------------------------------------------------------------------------
def _host_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, os.environ)
    checks = check_host(read_facts(_host_root(args)), cfg)
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        print(render_checks(checks))
    return 1 if args.strict and any(c.level == "warn" for c in checks) else 0


# -- host-tune ----------------------------------------------------------------------------------------
def _host_tune(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, os.environ)
    root = _host_root(args)
    steps = plan_host(read_facts(root), cfg)
    width = max(len(s.name) for s in steps)
    where = "" if root == Path("/") else f" under {root}"
    if not args.apply:
        print(f"host-tune: plan{where} (nothing written; --apply writes the changes, as root)")
        for s in steps:
            print(f"{s.action.upper():<7} {s.name:<{width}}  {s.detail}")
            if s.then:
                print(f"{'':<7} {'':<{width}}  then: {s.then}")
        return 0
    print(f"host-tune: applying{where}")
    failed = False
    results = {id(step): (errors, refused) for step, errors, refused in apply_plan(root, steps)}
    for s in steps:
        if id(s) not in results:
            label = "OK" if s.action in ("ok", "skip") else s.action.upper()
            print(f"{label:<7} {s.name:<{width}}  {s.detail}")
            if s.then:
                print(f"{'':<7} {'':<{width}}  do it: {s.then}")
            continue
        errors, refused = results[id(s)]
        failed |= bool(errors)
        print(f"{'FAILED' if errors else 'DONE':<7} {s.name:<{width}}  {s.detail}"
              + (f" ({refused} managed IRQ(s) kept by the kernel)" if refused else ""))
        for e in errors[:5]:
            print(f"{'':<7} {'':<{width}}  {e}")
        if len(errors) > 5:
            print(f"{'':<7} {'':<{width}}  ... {len(errors) - 5} more")
        if s.then and not errors:
            print(f"{'':<7} {'':<{width}}  then: {s.then}")
    if failed:
        print("host-tune: some changes were not written (run it as root)", file=sys.stderr)
    print("host-tune: sysfs and procfs settings last until the next boot: run --apply again after each boot")
    return 1 if failed else 0


# -- reach ----------------------------------------------------------------------------------------------
def _reach(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, os.environ)
    bad = 0
    for venue, what, host, port in endpoints(cfg):
        if args.venue and venue != args.venue:
            continue
        t0 = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=args.timeout):
                ms = (time.monotonic() - t0) * 1000
            print(f"ok    {venue:<8} {what:<18} {host}:{port}  connect {ms:.1f} ms")
        except OSError as e:
            bad += 1
            print(f"FAIL  {venue:<8} {what:<18} {host}:{port}  {e.strerror or e}")
    return 1 if bad else 0
