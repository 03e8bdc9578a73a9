"""Operator commands: ``fastmm metrics``, ``fastmm ops wait | pids | cancel-orders | reach | host-check |
host-tune``.

* ``metrics``: the Prometheus exporter (:mod:`fastmm.metrics`), a separate read-only process.
* ``ops wait``: block until an instance reaches a phase or has stopped, so runbooks and scripts can
  sequence steps without sleeping and guessing.
* ``ops cancel-orders``: the last step of the emergency kill switch. After the engine was killed hard
  (kill -9, OOM, a host crash) its quotes may still rest on TrueX, which has no mass cancel and no order
  status: the journal is the only list of what may be live. This logs on to order entry with the
  engine's own session (CompIDs and sequence store), sends one OrderCancelRequest per order the journal
  says may be live, journals every answer (fills that raced in too, so the next start books them) and
  logs out. It refuses to run while the engine runs (two writers of one journal and one FIX session).
* ``ops wait --clock-synced``: block until the kernel says the clock is synchronized (after a reboot,
  before anything logs on to TrueX, which rejects a SendingTime more than 2 minutes off).
* ``ops reach``: TCP reachability of the venue endpoints of the config, without logging on (a second
  order-entry session would fight the engine's over sequence numbers).
* ``ops host-check``: the bare-metal tuning of ``ops/host-tuning.md`` checked read-only: facts read from
  /proc and /sys (:func:`read_facts`), judged by pure rules (:func:`check_host`).
* ``ops host-tune``: the same facts turned into a plan (:func:`plan_host`, pure): the CPU governor, THP,
  IRQ affinity away from the hot CPUs, irqbalance's ban list, the cpu_dma_latency udev rule, and the
  kernel command line to add (advice only: a boot loader is not something to edit behind a human's
  back); ``--apply`` writes the plan (:func:`apply_plan`).

The host commands read (and ``host-tune --apply`` writes) under ``--root``, default ``$FASTMM_HOST_ROOT``
or ``/``: the tests point them at a temporary tree shaped like /sys, /proc and /etc.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fastmm.config import Config, ConfigError, load_config
from fastmm.logs import setup_logging

if TYPE_CHECKING:
    from fastmm.core.trading_core import TradingCore

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

    def __init__(self, orig_by_cancel: dict[str, str], orders: Iterable[str] = ()) -> None:
        self.orig_by_cancel = orig_by_cancel           # our cancel's ClOrdID -> the order's ClOrdID
        self.waiting = set(orig_by_cancel.values()) | set(orders)
        self.canceled: list[str] = []
        self.gone: list[str] = []                     # unknown to the venue, already filled, rejected
        self.filled: list[str] = []
        self.unconfirmed: list[str] = []
        self.retry: list[str] = []                    # throttled by the venue: to send again

    def _end(self, orig: str, bucket: list[str]) -> None:
        if orig in self.waiting:
            self.waiting.discard(orig)
            bucket.append(orig)

    def on_report(self, rec: Any) -> None:
        """An ExecutionReport or OrderCancelReject from the venue."""
        from fastmm.venues.truex.codec import BusinessMessageReject, ExecutionReport, OrderCancelReject

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
        elif isinstance(rec, BusinessMessageReject) and rec.reason in self.THROTTLED:
            orig = self.orig_by_cancel.get(rec.ref_id)
            if orig in self.waiting:
                self.retry.append(orig)      # the venue did not take this cancel: send another, paced

    THROTTLED = frozenset({8, 9, 10})

    @property
    def done(self) -> bool:
        return not self.waiting


def cancel_core(cfg: Config) -> TradingCore:
    """The core ``cancel-orders`` recovers the journal into: the engine's settings (its rate limit paces
    the cancels), ClOrdIDs of its own."""
    from fastmm.core.trading_core import TradingCore

    return TradingCore.from_config(cfg, cl_ord_prefix="k" + format(time.time_ns() // 10_000_000, "x")[-6:])


async def cancel_orders(cfg: Config, timeout_s: float, out: TextIO) -> int:
    """Cancel every possibly-live order of the journal over the engine's own order-entry session."""
    from fastmm.core.ids import RecentIds
    from fastmm.core.types import CancelOrder
    from fastmm.fix.session import AppMessage, LoggedOn
    from fastmm.journal import Journal
    from fastmm.procs.order_journal import journal_report, order_message
    from fastmm.procs.recovery import recover
    from fastmm.venues.truex import factory as truex_sessions
    from fastmm.venues.truex.codec import TruexCodec

    path = cfg.state_path / cfg.journal.file
    core = cancel_core(cfg)
    recovered = recover(path, core, cfg)
    if not recovered.possibly_live:
        print(f"cancel-orders: the journal ({recovered.records} records) lists no order that may be live",
              file=out)
        return 0
    tx = cfg.truex
    if not tx.api_key_id or not tx.api_secret:
        raise ConfigError("truex.api_key_id/api_secret: set FASTMM_TRUEX_API_KEY_ID and "
                          "FASTMM_TRUEX_API_SECRET")
    side_of = recovered.possibly_live
    canceler = OrderCanceler({}, side_of)
    print(f"cancel-orders: {len(side_of)} order(s) may be live: {', '.join(sorted(canceler.waiting))}",
          file=out, flush=True)
    journal = Journal(path, cfg.journal.durability, cfg.journal.rotate_bytes)
    oe = tx.order_entry
    codec = TruexCodec(core.instrument, tx.client_id.reveal() if tx.client_id else "")
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
            # the answer names our request: the venue has handled it, its rate slot frees a window later
            ref = getattr(ev.record, "cl_ord_id", None) or getattr(ev.record, "ref_id", None)
            if isinstance(ref, str):
                core.on_venue_answer(ref, time.monotonic_ns())
            changed.set()

    initiator = truex_sessions.order_entry(cfg, codec.decode, on_event)
    store = initiator.session.store
    loop = asyncio.get_running_loop()
    fix_task = loop.create_task(initiator.run())
    deadline = loop.time() + timeout_s
    sent = False
    try:
        await initiator.wait_logged_on(timeout_s)
        await asyncio.sleep(0.2)      # answers to a ResendRequest (reports missed while down) come first
        async def send_cancel(orig: str) -> None:
            # paced by the engine's own limiter, which counts what the engine sent in the last minute
            # (from the journal) and frees a slot from TrueX's answer: a burst would be throttled
            while not core.try_acquire_message(time.monotonic_ns(), cancel=True):
                await asyncio.sleep(0.02)
            cl = core.next_cl_ord_id()
            core.sent_as(cl)
            canceler.orig_by_cancel[cl] = orig
            rec, msg_type, body = order_message(codec, CancelOrder(cl, orig, side_of[orig]), time.time_ns(),
                                                source="cancel-orders")
            journal.write(rec)
            initiator.send(msg_type, body)

        for orig in list(side_of):
            if orig in canceler.waiting and loop.time() < deadline:
                await send_cancel(orig)
        sent = True
        while not canceler.done and loop.time() < deadline:
            while canceler.retry and loop.time() < deadline:
                orig = canceler.retry.pop(0)
                if orig in canceler.waiting:
                    await send_cancel(orig)
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
    present: set[int] = field(default_factory=set)
    irq_default_affinity: set[int] | None = None                     # /proc/irq/default_smp_affinity
    irqbalance_conf: dict[str, str] = field(default_factory=dict)     # path under the root -> text
    udev_rule: str | None = None          # the installed cpu_dma_latency rule, None when absent


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


def format_cpu_list(cpus: set[int]) -> str:
    """The kernel's CPU list format, ranges folded: {0, 1, 2, 5} -> ``0-2,5``."""
    runs: list[list[int]] = []
    for c in sorted(cpus):
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def parse_cpu_mask(text: str) -> set[int]:
    """A hex CPU mask in the kernel's format (32-bit groups separated by commas) -> CPUs."""
    try:
        value = int(text.strip().replace(",", ""), 16)
    except ValueError:
        return set()
    return {i for i in range(value.bit_length()) if value >> i & 1}


def format_cpu_mask(cpus: set[int]) -> str:
    """CPUs -> a hex mask in 32-bit groups (``ff,ffffffff``), what /proc/irq/default_smp_affinity takes."""
    value = sum(1 << c for c in cpus)
    words = []
    while True:
        words.append(value & 0xFFFFFFFF)
        value >>= 32
        if not value:
            break
    return ",".join([f"{words[-1]:x}", *(f"{w:08x}" for w in reversed(words[:-1]))])


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


def clock_synced(root: Path = Path("/")) -> bool | None:
    """The kernel's own view (adjtimex) on this host; under another root, that tree's ``clock_synced``
    file (``1`` or ``0``), since a clock cannot be faked in a folder."""
    if root == Path("/"):
        return _clock_synced()
    text = _read(root / "clock_synced").strip()
    return None if not text else text == "1"


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
    f.present = present or set(range(os.cpu_count() or 0))
    f.cpus = len(f.present)
    f.cmdline = _read(root / "proc/cmdline").strip()
    f.isolated = parse_cpu_list(_read(sysc / "isolated"))
    f.nohz_full = parse_cpu_list(_read(sysc / "nohz_full"))
    for gov in sorted(sysc.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        with contextlib.suppress(ValueError):
            f.governors[int(gov.parent.parent.name[3:])] = _read(gov).strip()
    f.thp_enabled = _bracketed(_read(root / "sys/kernel/mm/transparent_hugepage/enabled"))
    f.thp_defrag = _bracketed(_read(root / "sys/kernel/mm/transparent_hugepage/defrag"))
    for aff in (root / "proc/irq").glob("[0-9]*/smp_affinity_list"):
        f.irq_affinity[aff.parent.name] = parse_cpu_list(_read(aff))
    default = _read(root / "proc/irq/default_smp_affinity")
    f.irq_default_affinity = parse_cpu_mask(default) if default.strip() else None
    for rel in IRQBALANCE_CONF:
        if (root / rel).is_file():
            f.irqbalance_conf[rel] = _read(root / rel)
    rule = root / UDEV_RULE_PATH
    f.udev_rule = _read(rule) if rule.is_file() else None
    for comm in (root / "proc").glob("[0-9]*/comm"):
        if _read(comm).strip() == "irqbalance":
            f.irqbalance_running = True
            break
    dma = root / "dev/cpu_dma_latency"
    f.dma_latency_exists = dma.exists()
    f.dma_latency_writable = f.dma_latency_exists and os.access(dma, os.W_OK)
    f.clock_synced = clock_synced(root)
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
    banned = banned_cpus(f)
    if not f.irqbalance_running:
        out.append(Check("irqbalance", "ok", "not running"))
    elif f.isolated and not f.isolated <= banned:
        out.append(Check("irqbalance", "warn", "running: it moves IRQs back onto isolated CPUs "
                                               f"{format_cpu_list(f.isolated - banned)} ({_BANNED})"))
    else:
        out.append(Check("irqbalance", "ok", f"running, banned from {format_cpu_list(banned) or 'no CPU'}"))
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
    checks = check_host(read_facts(_host_root(args)), cfg)
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        print(render_checks(checks))
    return 1 if args.strict and any(c.level == "warn" for c in checks) else 0


# -- host-tune ----------------------------------------------------------------------------------------
IRQBALANCE_CONF = ("etc/default/irqbalance", "etc/sysconfig/irqbalance")    # Debian/Ubuntu, RHEL/Fedora
UDEV_RULE_PATH = "etc/udev/rules.d/99-fastmm-cpu-dma-latency.rules"
# The same text as ops/99-fastmm-cpu-dma-latency.rules (a test keeps them equal).
UDEV_RULE = """\
# /etc/udev/rules.d/99-fastmm-cpu-dma-latency.rules
# Let the fastmm group hold /dev/cpu_dma_latency (fastmm.shm.wait.hold_cpu_dma_latency), so the engine
# can keep CPUs out of deep idle states without running as root. See host-tuning.md, step 6.
KERNEL=="cpu_dma_latency", GROUP="fastmm", MODE="0660"
"""
_BANNED = "IRQBALANCE_BANNED_CPULIST"


@dataclass(frozen=True, slots=True)
class TuneStep:
    """One item of the tuning: ``ok`` (nothing to do), ``change`` (``writes`` do it), ``advice`` (a human
    does it, as ``then`` says) or ``skip`` (does not apply here)."""

    name: str
    action: str
    detail: str
    writes: tuple[tuple[str, str], ...] = ()     # (path under the root, text to write)
    then: str = ""                               # what makes a written change take effect, if anything


def hot_cpus(f: HostFacts, cfg: Config) -> set[int]:
    """The CPUs of the latency-critical processes (quoter and feeds) and any CPU already isolated."""
    pins = (cfg.processes.quoter, cfg.processes.feed_coinbase, cfg.processes.feed_kraken,
            cfg.processes.feed_truex_md)
    return set().union(*map(set, pins)) | f.isolated


def banned_cpus(f: HostFacts) -> set[int]:
    """The CPUs irqbalance is told to leave alone, from its config files (the union of them)."""
    out: set[int] = set()
    for text in f.irqbalance_conf.values():
        for line in text.splitlines():
            key, _, value = line.strip().partition("=")
            if key == _BANNED:
                out |= parse_cpu_list(value.strip().strip("\"'"))
    return out


def _with_banned(text: str, cpus: str) -> str:
    """The config text with ``IRQBALANCE_BANNED_CPULIST`` set (replaced, or added at the end)."""
    lines = text.splitlines()
    new = f"{_BANNED}={cpus}"
    for i, line in enumerate(lines):
        if line.strip().partition("=")[0] == _BANNED:
            lines[i] = new
            break
    else:
        lines.append(new)
    return "\n".join(lines) + "\n"


def kernel_args(hot: set[int], housekeeping: set[int]) -> dict[str, str]:
    hl = format_cpu_list(hot)
    return {"isolcpus": f"managed_irq,domain,{hl}", "nohz_full": hl, "rcu_nocbs": hl,
            "irqaffinity": format_cpu_list(housekeeping), "transparent_hugepage": "never"}


def plan_host(f: HostFacts, cfg: Config) -> list[TuneStep]:
    """The tuning of ops/host-tuning.md for these facts and the config's pinning (pure)."""
    out: list[TuneStep] = []
    hot = hot_cpus(f, cfg)
    housekeeping = f.present - hot
    # 1. CPU frequency governor: every CPU, as cpupower frequency-set does.
    slow = {c: g for c, g in f.governors.items() if g != "performance"}
    if not f.governors:
        out.append(TuneStep("CPU governor", "skip", "no cpufreq here (a VM, or the firmware owns it)"))
    elif slow:
        was = ",".join(sorted({g or "unreadable" for g in slow.values()}))
        out.append(TuneStep("CPU governor", "change",
                            f"CPUs {format_cpu_list(set(slow))}: {was} -> performance",
                            tuple((f"sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor", "performance")
                                  for c in sorted(slow))))
    else:
        out.append(TuneStep("CPU governor", "ok", "performance on every CPU"))
    # 2. Transparent huge pages.
    if not f.thp_enabled:
        out.append(TuneStep("transparent huge pages", "skip", "no /sys/kernel/mm/transparent_hugepage"))
    elif f.thp_enabled != "never" or f.thp_defrag != "never":
        out.append(TuneStep("transparent huge pages", "change",
                            f"enabled={f.thp_enabled} defrag={f.thp_defrag} -> never",
                            (("sys/kernel/mm/transparent_hugepage/enabled", "never"),
                             ("sys/kernel/mm/transparent_hugepage/defrag", "never"))))
    else:
        out.append(TuneStep("transparent huge pages", "ok", "enabled=never defrag=never"))
    if not hot:
        why = "no hot CPU: pin the quoter and the feeds (processes.*) first"
        out += [TuneStep(n, "skip", why) for n in ("IRQ affinity", "irqbalance", "kernel command line")]
    elif not housekeeping:
        why = f"every CPU ({format_cpu_list(f.present)}) is hot: leave some to the OS and the IRQs"
        out += [TuneStep(n, "advice", why) for n in ("IRQ affinity", "irqbalance", "kernel command line")]
    else:
        out += _irq_steps(f, hot, housekeeping)
    # 5. cpu_dma_latency udev rule.
    if f.udev_rule == UDEV_RULE:
        out.append(TuneStep("cpu_dma_latency rule", "ok", f"/{UDEV_RULE_PATH} installed"))
    else:
        out.append(TuneStep("cpu_dma_latency rule", "change",
                            f"{'update' if f.udev_rule is not None else 'install'} /{UDEV_RULE_PATH}",
                            ((UDEV_RULE_PATH, UDEV_RULE),),
                            "udevadm control --reload && udevadm trigger --name-match=cpu_dma_latency "
                            "(or at the next boot)"))
    return out


def _irq_steps(f: HostFacts, hot: set[int], housekeeping: set[int]) -> list[TuneStep]:
    out: list[TuneStep] = []
    hk, hl = format_cpu_list(housekeeping), format_cpu_list(hot)
    # 3. IRQ affinity: every IRQ that may run on a hot CPU moves to the housekeeping CPUs.
    moving = sorted((irq for irq, cpus in f.irq_affinity.items() if cpus & hot),
                    key=lambda s: int(s) if s.isdigit() else 0)
    writes = [(f"proc/irq/{irq}/smp_affinity_list", hk) for irq in moving]
    if f.irq_default_affinity is not None and f.irq_default_affinity != housekeeping:
        writes.append(("proc/irq/default_smp_affinity", format_cpu_mask(housekeeping)))
    if writes:
        out.append(TuneStep("IRQ affinity", "change",
                            f"{len(moving)} IRQ(s) may run on hot CPUs {hl}: move to {hk}"
                            + ("; new IRQs too (default_smp_affinity)" if len(writes) > len(moving) else ""),
                            tuple(writes)))
    else:
        out.append(TuneStep("IRQ affinity", "ok", f"no IRQ on hot CPUs {hl}"))
    # 4. irqbalance: told to leave the hot CPUs alone, in each config file it has.
    if not f.irqbalance_conf:
        out.append(TuneStep("irqbalance", "advice" if f.irqbalance_running else "ok",
                            "running without a config file: stop and disable it" if f.irqbalance_running
                            else "not installed"))
    elif hot <= banned_cpus(f):
        out.append(TuneStep("irqbalance", "ok", f"{_BANNED} covers {hl}"))
    else:
        out.append(TuneStep("irqbalance", "change", f"{_BANNED}={hl} in "
                            + ", ".join(f"/{p}" for p in f.irqbalance_conf),
                            tuple((p, _with_banned(t, hl)) for p, t in f.irqbalance_conf.items()),
                            "systemctl restart irqbalance" if f.irqbalance_running else ""))
    # 6. Kernel command line: advice, applied by a human with the boot loader's tool, then a reboot.
    now = dict(w.partition("=")[::2] for w in f.cmdline.split())
    want = kernel_args(hot, housekeeping)
    missing = [f"{k}={v}" for k, v in want.items() if now.get(k) != v]
    if missing:
        args = " ".join(missing)
        out.append(TuneStep("kernel command line", "advice", f"add {args}",
                            then=f'grubby --update-kernel=ALL --args="{args}" (Debian, Ubuntu: add them to '
                                 "GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub), then reboot"))
    else:
        out.append(TuneStep("kernel command line", "ok", " ".join(f"{k}={v}" for k, v in want.items())))
    return out


def _write(root: Path, rel: str, text: str) -> None:
    """sysfs and procfs files take one write() to a file that must exist; config files are replaced
    whole (written next to it, then renamed)."""
    path = root / rel
    if rel.startswith(("sys/", "proc/")):
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".fastmm-new")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(path)


def apply_plan(root: Path, steps: list[TuneStep]) -> list[tuple[TuneStep, list[str], int]]:
    """Write every ``change`` step; per step the errors and the IRQs that refused (managed or per-CPU
    interrupts answer EIO: ``isolcpus=managed_irq`` keeps those off the isolated CPUs)."""
    done = []
    for step in steps:
        if step.action != "change":
            continue
        errors: list[str] = []
        refused = 0
        for rel, text in step.writes:
            try:
                _write(root, rel, text)
            except OSError as e:
                if e.errno == errno.EIO and rel.startswith("proc/irq/"):
                    refused += 1
                else:
                    errors.append(f"/{rel}: {e.strerror or e}")
        done.append((step, errors, refused))
    return done


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
def endpoints(cfg: Config) -> list[tuple[str, str, str, int]]:
    """(venue, what, host, port) of every endpoint the engine connects to."""
    from urllib.parse import urlsplit

    out = [("truex", "order entry (FIX)", cfg.truex.order_entry.host, cfg.truex.order_entry.port),
           ("truex", "market data (FIX)", cfg.truex.market_data.host, cfg.truex.market_data.port)]
    urls = []
    if cfg.coinbase.enabled:
        urls.append(("coinbase", "websocket", cfg.coinbase.ws_url))
    if cfg.kraken.enabled:
        urls += [("kraken", "websocket", cfg.kraken.ws_url), ("kraken", "REST", cfg.kraken.rest_url)]
    for venue, what, url in urls:
        u = urlsplit(url)
        default = 443 if u.scheme in ("https", "wss") else 80
        out.append((venue, what, u.hostname or "", u.port or default))
    return out


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
