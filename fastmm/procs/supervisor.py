"""The supervisor: creates the segments, starts and pins the processes, watches them, and carries out
the start and stop sequences that :mod:`fastmm.procs.lifecycle` decides.

It only starts, watches and stops (NautilusTrader's kernel, the Disruptor's rule of one writer per
thing): it never trades. Each step it reaps dead children (restarting them with backoff), kills a child
whose heartbeat stopped, turns the children's health records into lifecycle events, and publishes the
phase and commands in ``control``. Children acknowledge a command by its id in their health record; the
acknowledgements are the confirmations the stop sequence waits for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fastmm.config import SECRET_ENV, Config
from fastmm.journal import Journal
from fastmm.journal.records import make
from fastmm.procs import lifecycle as lc
from fastmm.procs.plan import (
    FEED_TRUEX_MD,
    FIRM,
    HEDGER,
    QUOTER,
    REFERENCE_FEEDS,
    SHIPPER,
    SUPERVISOR,
    ChannelSpec,
    channel_specs,
    create_channels,
    health_channel,
)
from fastmm.procs.restart import RestartPolicy
from fastmm.shm import EventRing, LatestValue, remove_stale_segments, unlink_instance
from fastmm.shm.instance_lock import InstanceLock
from fastmm.shm.records import (
    COMMAND_CODES,
    STATE_FRESH,
    STATE_LOGGED_ON,
    STATE_QUOTING,
    STATE_RISK_TRIPPED,
    STATE_SUBSCRIBED,
)

log = logging.getLogger("fastmm.supervisor")

# Which processes must acknowledge a command before the stop step it belongs to is done. The hedger
# acknowledges ``logout`` once no hedge order of its own is working any more (what it executed is then on
# the hedge ring), and the step also waits for the quoter to have booked everything on that ring.
_ACKERS = {
    "cancel_all": (QUOTER,),
    "hedge_flat": (HEDGER,),
    "logout": (QUOTER, FEED_TRUEX_MD, HEDGER),
}

# The secrets each process may see; every other FASTMM_ secret is left out of its environment (and so of
# /proc/<pid>/environ). TrueX market data logs on with the same key as order entry (Logon 553/554).
_TRUEX_LOGON = ("FASTMM_TRUEX_API_KEY_ID", "FASTMM_TRUEX_API_SECRET")
SECRETS_OF = {
    QUOTER: (*_TRUEX_LOGON, "FASTMM_TRUEX_CLIENT_ID"),
    FEED_TRUEX_MD: _TRUEX_LOGON,
    HEDGER: ("FASTMM_KRAKEN_API_KEY", "FASTMM_KRAKEN_API_SECRET"),
    SHIPPER: ("FASTMM_DB_PASSWORD",),
    FIRM: ("FASTMM_REDIS_PASSWORD",),
}
# The process that cancels a dead quoter's orders (``fastmm.procs.cancel_left``) needs the quoter's.
CANCEL_LEFT = "cancel-left"
SECRETS_OF[CANCEL_LEFT] = SECRETS_OF[QUOTER]
CANCEL_LEFT_TIMEOUT_S = 10.0


def child_env(name: str, environ: Mapping[str, str], supervisor_pid: int) -> dict[str, str]:
    """The environment of process ``name``: the supervisor's, less the secrets it does not need."""
    allowed = SECRETS_OF.get(name, ())
    env = {k: v for k, v in environ.items() if k not in SECRET_ENV or k in allowed}
    env["FASTMM_PROCESS"] = name
    env["FASTMM_SUPERVISOR_PID"] = str(supervisor_pid)
    return env


def spawn_without_sigint(argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
    """Start a child with SIGINT blocked from its first instruction (the mask is inherited through fork
    and exec; the child then ignores SIGINT for good, see ``fastmm.procs.run``): a Ctrl-C to the process
    group reaches only the supervisor, which runs the stop sequence the children follow. A SIGINT that
    arrives here while it is blocked is delivered when it is unblocked, not lost."""
    main_thread = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return subprocess.Popen(argv, **kw)  # type: ignore[call-overload,no-any-return]
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, main_thread)


@dataclass
class ChildSpec:
    """How to start one process. ``argv`` is complete; the config path is in it, secrets are not."""

    name: str
    argv: list[str]
    cpus: list[int] = field(default_factory=list)
    # Run to completion when this process dies, before it is restarted (the quoter's: cancel the orders
    # its journal says may be live, so a crash loop never leaves quotes unmanaged during the back-off).
    on_death: list[str] | None = None


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    started_ns: int = 0
    exits: list[int] = field(default_factory=list)
    killed_for_silence: int = 0
    after_death: subprocess.Popen[bytes] | None = None   # its ``on_death`` command, while it runs
    after_death_deadline: float = 0.0


def default_children(cfg: Config, config_path: str | None, names: Sequence[str]) -> list[ChildSpec]:
    """Each process as ``python -m fastmm.procs.run NAME [--config FILE]`` pinned as configured."""
    specs = []
    for name in names:
        argv = [sys.executable, "-m", "fastmm.procs.run", name]
        if config_path:
            argv += ["--config", str(config_path)]
        on_death = None
        if name == QUOTER:
            on_death = [*argv[:3], CANCEL_LEFT, *argv[4:]]
        specs.append(ChildSpec(name, argv, list(getattr(cfg.processes, name.replace("-", "_"))), on_death))
    return specs


class Supervisor:
    def __init__(self, cfg: Config, children: list[ChildSpec], *,
                 clock: Callable[[], int] = time.monotonic_ns,
                 restart: RestartPolicy | None = None,
                 timeouts: lc.StepTimeouts | None = None,
                 start_grace_ns: int = 10_000_000_000) -> None:
        self.cfg = cfg
        self.clock = clock
        self.children = {c.name: Child(c) for c in children}
        names = tuple(self.children)
        self.specs: list[ChannelSpec] = channel_specs(cfg, names)
        feeds = frozenset(REFERENCE_FEEDS[n] for n in names if n in REFERENCE_FEEDS)
        self.lifecycle = lc.Lifecycle(feeds or frozenset({"none"}), timeouts or lc.StepTimeouts(),
                                      hedge_on_stop=cfg.hedge.enabled and HEDGER in self.children)
        self.restart = restart or RestartPolicy()
        self.heartbeat_timeout_ns = cfg.processes.heartbeat_timeout_ms * 1_000_000
        self.start_grace_ns = start_grace_ns
        self.channels: dict[str, LatestValue | EventRing] = {}
        self.control: LatestValue | None = None
        self.journal: Journal | None = None
        self.command_id = 0
        self.command_name = "none"
        self._awaiting: dict[str, int] = {}      # process -> command id it must ack for the current step
        self._observed: dict[str, bool] = {}     # last value of each lifecycle input, to emit changes only
        self._stop_reason = ""
        self.history: list[tuple[int, str]] = []
        self.report_path = cfg.state_path / "report.json"
        self.exit_code = 0
        self.instance_lock: InstanceLock | None = None

    # -- start ----------------------------------------------------------------------------------
    def acquire_instance(self) -> None:
        """Take the instance before touching anything of it (segments, journal, sequence files); a
        live engine of the same instance raises InstanceRunning and nothing is changed."""
        if self.instance_lock is None:
            self.instance_lock = InstanceLock.acquire(self.cfg.instance.name)

    def start(self) -> None:
        cfg = self.cfg
        self.acquire_instance()
        cfg.state_path.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_segments(cfg.instance.name)
        if removed:
            log.warning("removed %d stale segment(s) of a dead earlier run: %s", len(removed),
                        ", ".join(removed))
        # hold: a full disk must not take the supervisor (and its stop sequence) down; see ops/disk-full.md
        self.journal = Journal(cfg.state_path / "supervisor.jsonl", "flush", cfg.journal.rotate_bytes,
                               hold=True)
        self.channels = create_channels(cfg, self.specs)
        self.control = self.channels["control"]  # type: ignore[assignment]
        self._publish_control()
        self._record("phase", phase=self.lifecycle.phase.name, detail="start")
        for child in self.children.values():
            self._spawn(child)

    def _inheritable_fds(self) -> tuple[int, ...]:
        fds: list[int] = []
        for ch in self.channels.values():
            fds.extend(ch.inheritable_fds())
        return tuple(fds)

    def _spawn(self, child: Child) -> None:
        now = self.clock()
        env = child_env(child.spec.name, os.environ, os.getpid())
        env["FASTMM_INSTANCE__NAME"] = self.cfg.instance.name
        child.proc = spawn_without_sigint(child.spec.argv, pass_fds=self._inheritable_fds(), env=env)
        child.started_ns = now
        if child.spec.cpus:
            try:
                os.sched_setaffinity(child.proc.pid, set(child.spec.cpus))
            except OSError as e:
                log.error("%s: cannot pin to CPUs %s: %s", child.spec.name, child.spec.cpus, e)
        self.restart.started(child.spec.name, now)
        log.info("started %s (pid %d)%s", child.spec.name, child.proc.pid,
                 f" on CPUs {child.spec.cpus}" if child.spec.cpus else "")
        self._record("note", detail=f"started {child.spec.name}", pid=child.proc.pid)

    # -- one step of the watch loop ---------------------------------------------------------------
    def step(self) -> None:
        now = self.clock()
        if self.instance_lock is not None:
            self.instance_lock.drain()
        stopping = self.lifecycle.phase >= lc.Phase.STOPPING
        for child in self.children.values():
            proc = child.proc
            if proc is None:
                continue
            code = proc.poll()
            if code is not None:
                child.exits.append(code)
                child.proc = None
                self._after_death(child)
                if stopping:
                    log.info("%s exited (%s) during stop", child.spec.name, code)
                    continue
                due = self.restart.exited(child.spec.name, now)
                log.error("%s died (exit %s); restart in %.1f s", child.spec.name, code, (due - now) / 1e9)
                self._record("note", detail=f"{child.spec.name} died", exit=code)
                continue
            if self._silent(child, now):
                log.error("%s: no heartbeat for %d ms; killing pid %d", child.spec.name,
                          self.cfg.processes.heartbeat_timeout_ms, proc.pid)
                child.killed_for_silence += 1
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        self._reap_after_death()
        if not stopping:
            for name in self.restart.due(now):
                if self.children[name].after_death is None:    # never beside its own clean-up
                    self._spawn(self.children[name])
        self._observe(now)
        self._carry_out(self.lifecycle.on_timer(now), now)
        self._check_step_acks(now)

    def _after_death(self, child: Child) -> None:
        """Start the dead child's ``on_death`` command (cancel what the dead quoter left on TrueX) at once,
        before the restart back-off, with the secrets that child had."""
        argv = child.spec.on_death
        if not argv or child.after_death is not None:
            return
        env = child_env(CANCEL_LEFT, os.environ, os.getpid())
        env["FASTMM_INSTANCE__NAME"] = self.cfg.instance.name
        try:
            child.after_death = spawn_without_sigint(argv, env=env)
        except OSError as e:
            log.error("%s: cannot start %s: %s", child.spec.name, " ".join(argv[2:4]), e)
            return
        child.after_death_deadline = time.monotonic() + CANCEL_LEFT_TIMEOUT_S + 10.0
        log.warning("%s died: canceling the orders its journal says may be live (pid %d) before it restarts",
                    child.spec.name, child.after_death.pid)
        self._record("note", detail=f"{child.spec.name} died: cancel-left started", pid=child.after_death.pid)

    def _reap_after_death(self, wait_s: float = 0.0) -> None:
        """Reap finished ``on_death`` commands; kill one that overran its deadline. ``wait_s`` > 0 waits
        (the stop does, so a clean-up is never cut short by the supervisor's own exit)."""
        for child in self.children.values():
            p = child.after_death
            if p is None:
                continue
            try:
                code = p.wait(timeout=wait_s) if wait_s > 0 else p.poll()
            except subprocess.TimeoutExpired:
                code = None
            if code is None and time.monotonic() > child.after_death_deadline:
                log.error("%s: cancel-left (pid %d) overran; killing it", child.spec.name, p.pid)
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                code = p.wait(timeout=10)
            if code is None:
                continue
            child.after_death = None
            if code == 0:
                log.info("%s: cancel-left done", child.spec.name)
                if self.command_name == "cancel_all" and child.spec.name in self._awaiting:
                    # the quoter died during the stop's cancel step: its clean-up confirmed every cancel
                    del self._awaiting[child.spec.name]
                    self._check_step_acks(self.clock())
            else:
                log.error("%s: cancel-left ended with status %d: orders may still be live on TrueX",
                          child.spec.name, code)
            self._record("note" if code == 0 else "risk",
                         detail=f"{child.spec.name}: cancel-left exit {code}")

    def _health(self, name: str) -> tuple[int, int, int] | None:
        """(heartbeat ns, state bits, acked id) of a live child, or None."""
        ch = self.channels.get(health_channel(name))
        child = self.children.get(name)
        if ch is None or child is None or child.proc is None:
            return None
        if ch.read() <= 0 or int(ch.rx["pid"][0]) != child.proc.pid:  # type: ignore[union-attr]
            return None
        rx = ch.rx
        return int(rx["t_pub"][0]), int(rx["state"][0]), int(rx["acked"][0])

    def _silent(self, child: Child, now: int) -> bool:
        h = self._health(child.spec.name)
        if h is None:
            return now - child.started_ns > max(self.start_grace_ns, self.heartbeat_timeout_ns)
        return now - h[0] > self.heartbeat_timeout_ns

    def _alive_with(self, name: str, bit: int, now: int) -> bool:
        h = self._health(name)
        return h is not None and now - h[0] <= self.heartbeat_timeout_ns and bool(h[1] & bit)

    def _observe(self, now: int) -> None:
        if self.lifecycle.phase < lc.Phase.STOPPING and self._alive_with(QUOTER, STATE_RISK_TRIPPED, now):
            self.request_stop("kill switch tripped in the quoter")
            return
        events: list[lc.Event] = []

        def changed(key: str, value: bool, on: lc.Event, off: lc.Event) -> None:
            if self._observed.get(key) != value:
                self._observed[key] = value
                events.append(on if value else off)

        for proc, source in REFERENCE_FEEDS.items():
            if proc in self.children:
                fresh = self._alive_with(proc, STATE_FRESH, now)
                changed(f"feed:{source}", fresh, lc.FeedFresh(source), lc.FeedStale(source))
        if QUOTER in self.children:
            changed("oe", self._alive_with(QUOTER, STATE_LOGGED_ON, now),
                    lc.OrderEntryUp(), lc.OrderEntryDown())
        else:
            changed("oe", True, lc.OrderEntryUp(), lc.OrderEntryDown())
        if FEED_TRUEX_MD in self.children:
            changed("md", self._alive_with(FEED_TRUEX_MD, STATE_SUBSCRIBED, now),
                    lc.MarketDataUp(), lc.MarketDataDown())
        else:
            changed("md", True, lc.MarketDataUp(), lc.MarketDataDown())
        quoting = self._alive_with(QUOTER, STATE_QUOTING, now)
        if self._observed.get("quoting") != quoting:
            self._observed["quoting"] = quoting
            if quoting:
                events.append(lc.QuotingStarted())
        for ev in events:
            before = self.lifecycle.phase
            try:
                commands = self.lifecycle.handle(ev, now)
            except lc.LifecycleError as e:
                log.error("lifecycle: %s", e)
                continue
            if self.lifecycle.phase != before:
                self._phase_changed(before, type(ev).__name__)
            self._carry_out(commands, now)

    # -- commands ---------------------------------------------------------------------------------
    def _carry_out(self, commands: list[lc.Command], now: int) -> None:
        for cmd in commands:
            log.info("command %s (%s)", cmd.name, cmd.detail)
            if cmd.name == "step_timed_out":
                log.error("stop step %s timed out: not confirmed", cmd.detail)
                self._record("risk", detail=f"stop step {cmd.detail} timed out")
                self.exit_code = 1
            elif cmd.name in ("start_quoting", "pull_quotes", "cancel_all", "hedge_flat", "logout"):
                self._send(cmd.name, cmd.detail, now)
            elif cmd.name == "write_report":
                self._write_report()
                self._done(lc.StopStep.REPORT, now)
            elif cmd.name == "unlink_segments":
                self._end_children()
                self._done(lc.StopStep.UNLINK, now)
        if self.lifecycle.phase == lc.Phase.STOPPED and self.control is not None:
            self._publish_control()

    def _send(self, name: str, detail: str, now: int) -> None:
        self.command_id += 1
        self.command_name = name
        self._publish_control(detail)
        self._record("phase", phase=self.lifecycle.phase.name, command=name, command_id=self.command_id,
                     detail=detail)
        self._awaiting = {p: self.command_id for p in _ACKERS.get(name, ()) if p in self.children}
        if name in _ACKERS:
            self._check_step_acks(now)

    def _check_step_acks(self, now: int) -> None:
        if self.lifecycle.phase != lc.Phase.STOPPING or self.command_name not in _ACKERS:
            return
        for proc, cid in list(self._awaiting.items()):
            h = self._health(proc)
            if h is not None and h[2] >= cid:
                del self._awaiting[proc]
            elif proc == HEDGER and self.command_name == "logout" and self.children[proc].proc is None:
                # A dead hedger has no order it could still finish; its journal lists any it left open,
                # and its next start follows that order on Kraken and publishes the fills.
                del self._awaiting[proc]
        if self.command_name == "logout" and not self._awaiting and not self._hedge_ring_booked():
            return
        if not self._awaiting:
            step = {"cancel_all": lc.StopStep.CANCEL_QUOTES, "hedge_flat": lc.StopStep.HEDGE,
                    "logout": lc.StopStep.LOGOUT}[self.command_name]
            self._done(step, now)

    def _hedge_ring_booked(self) -> bool:
        """Every hedge fill the hedger published has been taken by the quoter (the quoter journals a
        hedge fill as it takes it from the ring). A dead quoter books the rest from the hedger's journal
        at its next start (``fastmm.procs.recovery``), so its absence does not hold the stop."""
        ring = self.channels.get("hedge.fills")
        quoter = self.children.get(QUOTER)
        if not isinstance(ring, EventRing) or quoter is None or quoter.proc is None:
            return True
        return len(ring) == 0

    def _done(self, step: lc.StopStep, now: int) -> None:
        if self.lifecycle.step != step:
            return
        self.command_name = "none"
        before = self.lifecycle.phase
        commands = self.lifecycle.handle(lc.StepDone(step), now)
        if self.lifecycle.phase != before:
            self._phase_changed(before, f"step {step.name} done")
        self._carry_out(commands, now)

    def _phase_changed(self, before: lc.Phase, why: str) -> None:
        after = self.lifecycle.phase
        log.info("phase %s -> %s (%s)", before.name, after.name, why)
        self.history.append((self.clock(), after.name))
        self._publish_control(why)
        self._record("phase", phase=after.name, previous=before.name, detail=why)

    def _publish_control(self, reason: str = "") -> None:
        if self.control is None:
            return
        tx = self.control.tx
        tx["t_pub"] = self.clock()
        tx["phase"] = int(self.lifecycle.phase)
        tx["command"] = COMMAND_CODES.get(self.command_name, 0)
        tx["command_id"] = self.command_id
        tx["reason"] = reason.encode("ascii", "replace")[:48]
        self.control.publish()

    def _record(self, kind: str, **fields: object) -> None:
        if self.journal is not None:
            self.journal.write(make(kind, time.time_ns(), SUPERVISOR, **fields))

    # -- stop -------------------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        if self._stop_reason:
            return
        self._stop_reason = reason
        log.warning("stop requested: %s", reason)
        now = self.clock()
        before = self.lifecycle.phase
        commands = self.lifecycle.handle(lc.StopRequested(reason), now)
        if self.lifecycle.phase != before:
            self._phase_changed(before, reason)
        self._carry_out(commands, now)

    def _write_report(self) -> None:
        position = self.channels.get("position")
        pos = None
        if position is not None and position.read() > 0:
            rx = position.rx[0]
            pos = {k: int(rx[k]) for k in ("position_lots", "realized_e8", "unrealized_e8", "fees_e8",
                                           "truex_fills", "hedge_fills")}
        report = {
            "instance": self.cfg.instance.name,
            "stop_reason": self._stop_reason,
            "phases": self.history,
            "timed_out_steps": [s.name for s in self.lifecycle.timed_out],
            "restarts": dict(self.restart.restarts),
            "killed_for_silence": {n: c.killed_for_silence for n, c in self.children.items()},
            "position": pos,
        }
        text = json.dumps(report, indent=2)
        try:
            self.report_path.parent.mkdir(parents=True, exist_ok=True)
            self.report_path.write_text(text)
        except OSError as e:     # a full disk: the stop goes on, the report goes to the log instead
            log.error("cannot write the report to %s (%s); the report: %s", self.report_path, e,
                      json.dumps(report))
            return
        log.info("report written to %s", self.report_path)

    def _end_children(self, grace_s: float = 3.0) -> None:
        """Ask every child to exit, then SIGTERM, then SIGKILL; reap all of them."""
        self.command_name = "exit"
        self.command_id += 1
        self._publish_control("exit")
        deadline = time.monotonic() + grace_s / 2
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            live = [c.proc for c in self.children.values() if c.proc is not None and c.proc.poll() is None]
            if not live:
                break
            if sig is not None:
                for p in live:
                    with contextlib.suppress(ProcessLookupError):
                        p.send_signal(sig)
                deadline = time.monotonic() + grace_s / 2
            while time.monotonic() < deadline and any(p.poll() is None for p in live):
                time.sleep(0.01)
        for c in self.children.values():
            if c.proc is not None:
                c.proc.wait(timeout=10)
                c.exits.append(c.proc.returncode)
                c.proc = None
                # It could not wind down, or the venue never confirmed the stop's cancels: clean up after it.
                if c.exits[-1] != 0 or lc.StopStep.CANCEL_QUOTES in self.lifecycle.timed_out:
                    self._after_death(c)
        self._reap_after_death(wait_s=CANCEL_LEFT_TIMEOUT_S + 5.0)

    def close(self) -> None:
        """Release everything, whatever state the run ended in (also after an exception). A supervisor
        that never took the instance (another engine holds it) touches nothing of it."""
        self._end_children()
        for ch in self.channels.values():
            ch.close()
        self.channels.clear()
        self.control = None
        if self.instance_lock is not None:
            unlink_instance(self.cfg.instance.name)
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self.instance_lock is not None:
            self.instance_lock.close()
            self.instance_lock = None

    def run(self, poll_s: float = 0.005) -> int:
        """Start, watch until STOPPED (SIGINT/SIGTERM request the stop), clean up; the exit status."""
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def on_signal(signum: int, _frame: object) -> None:
            self.request_stop(signal.Signals(signum).name)

        for s in previous:
            signal.signal(s, on_signal)
        try:
            self.start()
            while self.lifecycle.phase != lc.Phase.STOPPED:
                self.step()
                time.sleep(poll_s)
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            self.close()
        return self.exit_code

