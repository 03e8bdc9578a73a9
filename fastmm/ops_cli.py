"""Operator commands: ``fastmm metrics``, ``fastmm ops wait | cancel-orders | host-check``.

* ``metrics``: the Prometheus exporter (:mod:`fastmm.metrics`), a separate read-only process.
* ``ops wait``: block until an instance reaches a phase or has stopped, so runbooks and scripts can
  sequence steps without sleeping and guessing.
* ``ops cancel-orders``: the last step of the emergency kill switch. After the engine was killed hard
  (kill -9, OOM, a host crash) its quotes may still rest on TrueX, which has no mass cancel and no order
  status: the journal is the only list of what may be live. This logs on to order entry with the
  engine's own session (CompIDs and sequence store), sends one OrderCancelRequest per order the journal
  says may be live, journals every answer (fills that raced in too, so the next start books them) and
  logs out. It refuses to run while the engine runs (two writers of one journal and one FIX session).
* ``ops host-check``: the bare-metal tuning of ``ops/host-tuning.md`` checked read-only: facts read from
  /proc and /sys (:func:`read_facts`), judged by pure rules (:func:`check_host`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from fastmm.config import Config, ConfigError, load_config
from fastmm.logs import setup_logging

EXIT_TIMEOUT = 1
EXIT_REFUSED = 3


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
    w.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
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

    h = osub.add_parser("host-check", help="check the bare-metal tuning (isolated CPUs, IRQs, governor, "
                                           "THP, clock sync, cpu_dma_latency) read-only")
    h.add_argument("-c", "--config", help="TOML config file (the CPUs the processes are pinned to)")
    h.add_argument("--json", action="store_true", help="machine-readable output")
    h.add_argument("--root", default="/", help=argparse.SUPPRESS)   # a fake /proc and /sys, for tests
    h.add_argument("--strict", action="store_true", help="exit 1 when any check is not ok")
    h.set_defaults(handler=_host_check)


# -- metrics ------------------------------------------------------------------------------------------
def _metrics(args: argparse.Namespace) -> int:
    from fastmm.metrics import EngineCollector, run_exporter

    cfg = load_config(args.config, os.environ)
    setup_logging(cfg.instance.log_level)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: {args.port} is outside 0 .. 65535")
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    collector = EngineCollector(cfg.instance.name, cfg.state_path, cfg.journal.file)
    try:
        return run_exporter(collector, args.port, args.bind, stop)
    except OSError as e:
        print(f"fastmm metrics: cannot listen on {args.bind}:{args.port}: {e}", file=sys.stderr)
        return 1


# -- wait ---------------------------------------------------------------------------------------------
def _wait(args: argparse.Namespace) -> int:
    from fastmm.procs.lifecycle import Phase
    from fastmm.status import read_status

    cfg = load_config(args.config, os.environ)
    want = None
    if args.phase is not None:
        try:
            want = Phase[args.phase.upper()].name
        except KeyError:
            raise ConfigError(f"--phase: {args.phase!r} is not one of "
                              f"{', '.join(p.name for p in Phase)}") from None
    deadline = time.monotonic() + args.timeout
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


# -- pids -------------------------------------------------------------------------------------------
def _pids(args: argparse.Namespace) -> int:
    """Live pids only, one line, so ``kill -KILL $(fastmm ops pids)`` is the hard kill."""
    from fastmm.shm.segment import pid_alive
    from fastmm.status import read_status

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
class OrderCanceler:
    """The cancel pass's state: which orders are still waiting for their end (sans-I/O)."""

    TERMINAL_STATUS = frozenset({"2", "4", "8", "C"})   # filled, canceled, rejected, expired

    def __init__(self, orig_by_cancel: dict[str, str]) -> None:
        self.orig_by_cancel = orig_by_cancel           # our cancel's ClOrdID -> the order's ClOrdID
        self.waiting = set(orig_by_cancel.values())
        self.canceled: list[str] = []
        self.gone: list[str] = []                     # unknown to the venue, already filled, rejected
        self.filled: list[str] = []
        self.unconfirmed: list[str] = []

    def _end(self, orig: str, bucket: list[str]) -> None:
        if orig in self.waiting:
            self.waiting.discard(orig)
            bucket.append(orig)

    def on_report(self, rec: Any) -> None:
        """An ExecutionReport or OrderCancelReject from the venue."""
        from fastmm.venues.truex.codec import ExecutionReport, OrderCancelReject

        if isinstance(rec, ExecutionReport):
            orig = self.orig_by_cancel.get(rec.cl_ord_id, rec.orig_cl_ord_id or rec.cl_ord_id)
            if rec.exec_type in ("4", "C"):
                self._end(orig, self.canceled)
            elif rec.exec_type == "F" and rec.leaves_qty == 0:
                self._end(rec.cl_ord_id, self.filled)
            elif rec.exec_type == "8":
                self._end(orig, self.gone)
        elif isinstance(rec, OrderCancelReject):
            orig = self.orig_by_cancel.get(rec.cl_ord_id, rec.orig_cl_ord_id)
            if rec.ord_status in self.TERMINAL_STATUS or rec.reason == 1:
                self._end(orig, self.gone)
            else:
                self._end(orig, self.unconfirmed)

    @property
    def done(self) -> bool:
        return not self.waiting


async def cancel_orders(cfg: Config, timeout_s: float, out: TextIO) -> int:
    """Cancel every possibly-live order of the journal over the engine's own order-entry session."""
    from fastmm.core.ids import RecentIds
    from fastmm.core.trading_core import TradingCore
    from fastmm.fix.session import AppMessage, FixSession, LoggedOn, SessionSettings
    from fastmm.fix.store import FileSeqStore
    from fastmm.fix.transport import FixInitiator
    from fastmm.journal import Journal
    from fastmm.procs.order_journal import journal_report
    from fastmm.procs.recovery import recover
    from fastmm.venues.truex.auth import LogonCredentials
    from fastmm.venues.truex.codec import ORDER_ENTRY_TYPES, TruexCodec

    path = cfg.state_path / cfg.journal.file
    prefix = "k" + format(time.time_ns() // 10_000_000, "x")[-6:]
    core = TradingCore(cfg, cl_ord_prefix=prefix)
    recovered = recover(path, core, cfg)
    if not recovered.possibly_live:
        print(f"cancel-orders: the journal ({recovered.records} records) lists no order that may be live",
              file=out)
        return 0
    tx = cfg.truex
    if not tx.api_key_id or not tx.api_secret:
        raise ConfigError("truex.api_key_id/api_secret: set FASTMM_TRUEX_API_KEY_ID and "
                          "FASTMM_TRUEX_API_SECRET")
    actions = recovered.cancels(core)
    canceler = OrderCanceler({a.cl_ord_id: a.orig_cl_ord_id for a in actions})
    print(f"cancel-orders: {len(actions)} order(s) may be live: {', '.join(sorted(canceler.waiting))}",
          file=out, flush=True)
    journal = Journal(path, cfg.journal.durability, cfg.journal.rotate_bytes)
    oe = tx.order_entry
    store = FileSeqStore(cfg.state_path / f"fix.{oe.sender_comp_id}-{oe.target_comp_id}.seq",
                         fsync=oe.seq_store_fsync)
    codec = TruexCodec(core.instrument, tx.client_id.reveal() if tx.client_id else "")
    session = FixSession(
        SessionSettings(oe.sender_comp_id, oe.target_comp_id, heartbeat_s=oe.heartbeat_s,
                        reset_on_logon=oe.reset_on_logon, logon_timeout_s=oe.logon_timeout_s,
                        app_msg_types=ORDER_ENTRY_TYPES),
        store, logon_fields=LogonCredentials(tx.api_key_id, tx.api_secret), decoder=codec.decode)
    fill_ids = RecentIds()
    for exec_id in recovered.fill_ids:
        fill_ids.add(exec_id)
    changed = asyncio.Event()

    def on_event(conn: object, ev: object) -> None:
        if isinstance(ev, LoggedOn):
            changed.set()
        elif isinstance(ev, AppMessage) and ev.record is not None:
            journal_report(journal, ev.record, fill_ids, source="cancel-orders")
            canceler.on_report(ev.record)
            changed.set()

    initiator = FixInitiator(session, oe.host, oe.port, on_event, connect_timeout_s=oe.connect_timeout_s)
    loop = asyncio.get_running_loop()
    fix_task = loop.create_task(initiator.run())
    deadline = loop.time() + timeout_s
    sent = False
    try:
        await initiator.wait_logged_on(timeout_s)
        await asyncio.sleep(0.2)      # answers to a ResendRequest (reports missed while down) come first
        for a in actions:
            if a.orig_cl_ord_id in canceler.waiting:
                journal.append("cancel", time.time_ns(), cl_ord_id=a.cl_ord_id,
                               orig_cl_ord_id=a.orig_cl_ord_id, side="1" if a.side.name == "BUY" else "2",
                               source="cancel-orders")
                initiator.send(b"F", codec.order_cancel_request(a.cl_ord_id, a.orig_cl_ord_id))
        sent = True
        while not canceler.done and loop.time() < deadline:
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), max(0.01, deadline - loop.time()))
            except TimeoutError:
                break
    except TimeoutError:
        print(f"cancel-orders: not logged on to {oe.host}:{oe.port} within {timeout_s:g} s", file=out)
    finally:
        try:
            await asyncio.wait_for(initiator.stop("fastmm cancel-orders done"), 5)
        except Exception as e:  # the summary below must still print
            print(f"cancel-orders: logout did not complete: {e!r}", file=out)
        fix_task.cancel()
        await asyncio.gather(fix_task, return_exceptions=True)
        journal.close()
        store.close()
    left = sorted(canceler.waiting) + sorted(canceler.unconfirmed)
    print(f"cancel-orders: canceled {len(canceler.canceled)}, filled {len(canceler.filled)}, already gone "
          f"{len(canceler.gone)}, NOT CONFIRMED {len(left)}{': ' + ', '.join(left) if left else ''}",
          file=out, flush=True)
    if not sent or left:
        print("cancel-orders: orders may still be live on TrueX: cancel them in the TrueX UI or call TrueX",
              file=out, flush=True)
        return EXIT_TIMEOUT
    return 0


def _cancel_orders(args: argparse.Namespace) -> int:
    from fastmm.procs.run import run_loop
    from fastmm.status import read_status

    cfg = load_config(args.config, os.environ)
    setup_logging("WARNING")
    st = read_status(cfg.instance.name)
    if st.get("running"):
        print(f"cancel-orders: instance {cfg.instance.name!r} is running (supervisor pid "
              f"{st.get('supervisor_pid')}): use `fastmm stop`, which cancels every quote itself",
              file=sys.stderr)
        return EXIT_REFUSED
    return run_loop(cancel_orders(cfg, args.timeout, sys.stdout))


# -- host-check ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: str          # ok | warn | info
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "level": self.level, "detail": self.detail}


@dataclass
class HostFacts:
    """What the tuning checks need, read once from the host (or a fake tree in tests)."""

    cpus: int = 0
    cmdline: str = ""
    isolated: set[int] = field(default_factory=set)
    nohz_full: set[int] = field(default_factory=set)
    governors: dict[int, str] = field(default_factory=dict)
    thp_enabled: str = ""
    thp_defrag: str = ""
    irq_affinity: dict[str, set[int]] = field(default_factory=dict)   # IRQ number -> CPUs
    irqbalance_running: bool = False
    clock_synced: bool | None = None      # None: not known (no adjtimex here)
    dma_latency_writable: bool = False
    dma_latency_exists: bool = False


def parse_cpu_list(text: str) -> set[int]:
    """The kernel's CPU list format: ``0-3,8,10-11`` (empty = none)."""
    out: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            return set()
    return out


def _bracketed(text: str) -> str:
    """``always madvise [never]`` -> ``never``."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.strip()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _clock_synced() -> bool | None:
    """adjtimex(2) with modes = 0 only reads: TIME_ERROR (5) means the kernel clock is not synchronized."""
    import ctypes

    class Timex(ctypes.Structure):
        _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 204)]

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        state = libc.adjtimex(ctypes.byref(Timex()))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != 5


def read_facts(root: Path = Path("/")) -> HostFacts:
    sysc = root / "sys/devices/system/cpu"
    f = HostFacts()
    present = parse_cpu_list(_read(sysc / "present")) or parse_cpu_list(_read(sysc / "online"))
    f.cpus = len(present) or (os.cpu_count() or 0)
    f.cmdline = _read(root / "proc/cmdline").strip()
    f.isolated = parse_cpu_list(_read(sysc / "isolated"))
    f.nohz_full = parse_cpu_list(_read(sysc / "nohz_full"))
    for gov in sorted(sysc.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        with contextlib.suppress(ValueError):
            f.governors[int(gov.parent.parent.name[3:])] = gov.read_text().strip()
    f.thp_enabled = _bracketed(_read(root / "sys/kernel/mm/transparent_hugepage/enabled"))
    f.thp_defrag = _bracketed(_read(root / "sys/kernel/mm/transparent_hugepage/defrag"))
    for aff in (root / "proc/irq").glob("[0-9]*/smp_affinity_list"):
        f.irq_affinity[aff.parent.name] = parse_cpu_list(_read(aff))
    for comm in (root / "proc").glob("[0-9]*/comm"):
        if _read(comm).strip() == "irqbalance":
            f.irqbalance_running = True
            break
    dma = root / "dev/cpu_dma_latency"
    f.dma_latency_exists = dma.exists()
    f.dma_latency_writable = f.dma_latency_exists and os.access(dma, os.W_OK)
    if root == Path("/"):
        f.clock_synced = _clock_synced()
    else:
        text = _read(root / "clock_synced").strip()
        f.clock_synced = None if not text else text == "1"
    return f


def check_host(f: HostFacts, cfg: Config) -> list[Check]:
    """Judge the facts against ops/host-tuning.md and the config's pinning (pure)."""
    from fastmm.procs.plan import PROCESSES

    out: list[Check] = []
    pins = {name: set(getattr(cfg.processes, name.replace("-", "_"))) for name in ("supervisor", *PROCESSES)}
    pinned = set().union(*pins.values())
    hot = pins["quoter"] | pins["feed-coinbase"] | pins["feed-kraken"] | pins["feed-truex-md"]
    n_procs = len(PROCESSES) + 1
    if f.isolated:
        how = "isolcpus= on the kernel command line" if "isolcpus=" in f.cmdline else "cpusets"
        out.append(Check("isolated CPUs", "ok", f"isolated {_cpus(f.isolated)} ({how})"))
    else:
        out.append(Check("isolated CPUs", "warn", "no isolated CPU: add isolcpus=/nohz_full= for the hot "
                                                  "processes (host-tuning.md, step 1)"))
    if hot and f.isolated and not hot <= f.isolated:
        out.append(Check("pinning", "warn", f"hot processes pinned to {_cpus(hot - f.isolated)}, which are "
                                            "not isolated"))
    elif hot:
        out.append(Check("pinning", "ok", "hot processes: " + ", ".join(
            f"{n} {_cpus(c)}" for n, c in pins.items() if c)))
    else:
        out.append(Check("pinning", "info", "no process is pinned (processes.* empty): fine on a small "
                                            "machine, set them on bare metal"))
    if pins["quoter"] and any(pins["quoter"] & c for n, c in pins.items() if n != "quoter"):
        out.append(Check("quoter CPU", "warn", "the quoter shares a CPU with another fastmm process"))
    if cfg.shm.wait == "spin" and (f.cpus < n_procs or not f.isolated):
        out.append(Check("wait strategy", "warn", f"shm.wait = spin with {f.cpus} CPUs and "
                                                  f"{len(f.isolated)} isolated: use block"))
    else:
        out.append(Check("wait strategy", "ok", f"shm.wait = {cfg.shm.wait} with {f.cpus} CPUs"))
    targets = pinned or f.isolated
    if f.governors:
        slow = {c for c, g in f.governors.items() if g != "performance" and (not targets or c in targets)}
        out.append(Check("CPU governor", "warn" if slow else "ok",
                         f"not 'performance' on CPUs {_cpus(slow)}" if slow else "performance"))
    else:
        out.append(Check("CPU governor", "info", "no cpufreq here (a VM, or the firmware owns it)"))
    thp = f.thp_enabled or "unknown"
    out.append(Check("transparent huge pages", "ok" if thp in ("never", "madvise") else "warn",
                     f"enabled={thp} defrag={f.thp_defrag or 'unknown'} (want never or madvise)"))
    if f.isolated:
        busy = sorted((irq for irq, cpus in f.irq_affinity.items() if cpus & f.isolated and
                       not cpus <= f.isolated), key=lambda s: int(s) if s.isdigit() else 0)
        only = sorted(irq for irq, cpus in f.irq_affinity.items() if cpus and cpus <= f.isolated)
        bad = busy + only
        out.append(Check("IRQ affinity", "warn" if bad else "ok",
                         f"IRQs {', '.join(bad[:12])}{' ...' if len(bad) > 12 else ''} may run on isolated "
                         "CPUs" if bad else "no IRQ targets an isolated CPU"))
    out.append(Check("irqbalance", "warn" if f.irqbalance_running and f.isolated else "ok",
                     "running: it moves IRQs back onto isolated CPUs unless IRQBALANCE_BANNED_CPULIST is set"
                     if f.irqbalance_running else "not running"))
    if f.clock_synced is None:
        out.append(Check("clock sync", "info", "unknown here; check chronyc tracking"))
    else:
        out.append(Check("clock sync", "ok" if f.clock_synced else "warn",
                         "kernel clock synchronized" if f.clock_synced else
                         "kernel clock NOT synchronized: TrueX rejects SendingTime > 2 min off"))
    if f.dma_latency_writable:
        out.append(Check("cpu_dma_latency", "ok", "/dev/cpu_dma_latency writable: CPUs can be held out of "
                                                  "deep idle (hold_cpu_dma_latency, tuned)"))
    else:
        out.append(Check("cpu_dma_latency", "warn" if f.dma_latency_exists else "info",
                         "/dev/cpu_dma_latency " + ("not writable by this user" if f.dma_latency_exists
                                                    else "absent (container or VM)")))
    return out


def _cpus(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus)) or "-"


def render_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{c.level.upper():<5} {c.name:<{width}}  {c.detail}" for c in checks)


def _host_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, os.environ)
    checks = check_host(read_facts(Path(args.root)), cfg)
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        print(render_checks(checks))
    return 1 if args.strict and any(c.level == "warn" for c in checks) else 0
