"""The supervisor: creates the segments, starts and pins the processes, watches them, and carries out
the start and stop sequences that :mod:`fastmm.procs.lifecycle` decides.

It only starts, watches and stops (NautilusTrader's kernel, the Disruptor's rule of one writer per
thing): it never trades. Each step it reaps dead children (restarting them with backoff), kills a child
whose heartbeat stopped, turns the children's health records into lifecycle events, and publishes the
phase and commands in ``control``. Children acknowledge a command by its id in their health record; the
acknowledgements are the confirmations the stop sequence waits for.

This is the shell. What it decides with lives in pure modules: the phase in :mod:`~fastmm.procs.lifecycle`,
restarts in :mod:`~fastmm.procs.restart`, what a health record means in :mod:`~fastmm.procs.health`,
when a stop step is confirmed in :mod:`~fastmm.procs.stop_acks`, and how each process is started in
:mod:`~fastmm.procs.plan`; the OS processes themselves are handled by :mod:`~fastmm.procs.children`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable

from fastmm.config import SECRET_ENV, Config
from fastmm.journal import Journal
from fastmm.journal.records import make
from fastmm.procs import lifecycle as lc
from fastmm.procs.children import Child, end_all
from fastmm.procs.health import Health, HealthObserver, silent
from fastmm.procs.plan import (
    CANCEL_LEFT,
    CANCEL_LEFT_TIMEOUT_S,
    HEDGER,
    QUOTER,
    REFERENCE_FEEDS,
    SUPERVISOR,
    ChannelSpec,
    ChildSpec,
    channel_specs,
    child_env,
    create_channels,
    health_channel,
)
from fastmm.procs.restart import RestartPolicy
from fastmm.procs.stop_acks import StopAcks
from fastmm.procs.zygote import Zygote, ZygoteError, forkable, preload_modules
from fastmm.shm import EventRing, LatestValue, remove_stale_segments, unlink_instance
from fastmm.shm.instance_lock import InstanceLock
from fastmm.shm.records import COMMAND_CODES

log = logging.getLogger("fastmm.supervisor")


class Supervisor:
    """One instance's supervisor: ``run()`` it, or ``start()``, ``step()`` and ``close()`` it in a test."""

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
        self.acks = StopAcks()
        self.observer = HealthObserver(names, self.heartbeat_timeout_ns)
        self._stop_reason = ""
        self.history: list[tuple[int, str]] = []
        self.report_path = cfg.state_path / "report.json"
        self.exit_code = 0
        self.instance_lock: InstanceLock | None = None
        self.zygote: Zygote | None = None

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
        self._start_zygote()
        for child in self.children.values():
            self._spawn(child)

    def _start_zygote(self) -> None:
        """With ``processes.start = "fork"``, the fork server the children start from (preloaded with
        every child's entry module); exec start when it cannot run, with the reason logged."""
        argvs = [c.spec.argv for c in self.children.values()]
        if self.cfg.processes.start != "fork" or not any(forkable(a) for a in argvs):
            return
        from fastmm.procs.run import ENTRY_POINTS

        modules = preload_modules(ENTRY_POINTS[n][0] for n in self.children if n in ENTRY_POINTS)
        try:
            self.zygote = Zygote.start(modules, os.environ, SECRET_ENV)
        except ZygoteError as e:
            log.error("fork start unavailable (%s): starting children with exec", e)
            return
        log.info("zygote started (pid %d, %d thread(s)): children fork from it", self.zygote.proc.pid,
                 self.zygote.threads)

    def _inheritable_fds(self) -> tuple[int, ...]:
        fds: list[int] = []
        for ch in self.channels.values():
            fds.extend(ch.inheritable_fds())
        return tuple(fds)

    def _env(self, name: str) -> dict[str, str]:
        env = child_env(name, os.environ, os.getpid())
        env["FASTMM_INSTANCE__NAME"] = self.cfg.instance.name
        return env

    def _spawn(self, child: Child) -> None:
        now = self.clock()
        env, fds = self._env(child.spec.name), self._inheritable_fds()
        zygote = self.zygote if self.zygote is not None and forkable(child.spec.argv) else None
        try:
            pid = child.start(env, fds, now, zygote)
        except ZygoteError as e:     # the zygote died: every later start (and this one) is an exec
            log.error("zygote failed (%s): starting %s and every later child with exec", e, child.spec.name)
            self._close_zygote()
            pid = child.start(env, fds, now)
        self.restart.started(child.spec.name, now)
        log.info("started %s (pid %d)%s", child.spec.name, pid,
                 f" on CPUs {child.spec.cpus}" if child.spec.cpus else "")
        self._record("note", detail=f"started {child.spec.name}", pid=pid)

    # -- one step of the watch loop ---------------------------------------------------------------
    def step(self) -> None:
        now = self.clock()
        if self.instance_lock is not None:
            self.instance_lock.drain()
        stopping = self.lifecycle.phase >= lc.Phase.STOPPING
        for child in self.children.values():
            if child.proc is None:
                continue
            code = child.exited()
            if code is not None:
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
                          self.cfg.processes.heartbeat_timeout_ms, child.proc.pid)
                child.killed_for_silence += 1
                child.kill()
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
        pid = child.start_clean_up(self._env(CANCEL_LEFT), CANCEL_LEFT_TIMEOUT_S + 10.0)
        if pid is None:
            return
        log.warning("%s died: canceling the orders its journal says may be live (pid %d) before it restarts",
                    child.spec.name, pid)
        self._record("note", detail=f"{child.spec.name} died: cancel-left started", pid=pid)

    def _reap_after_death(self, wait_s: float = 0.0) -> None:
        """Reap finished ``on_death`` commands; kill one that overran its deadline. ``wait_s`` > 0 waits
        (the stop does, so a clean-up is never cut short by the supervisor's own exit)."""
        for child in self.children.values():
            code = child.reap_clean_up(wait_s)
            if code is None:
                continue
            if code == 0:
                log.info("%s: cancel-left done", child.spec.name)
                if self.acks.cleaned_up(child.spec.name):
                    # the quoter died during the stop's cancel step: its clean-up confirmed every cancel
                    self._check_step_acks(self.clock())
            else:
                log.error("%s: cancel-left ended with status %d: orders may still be live on TrueX",
                          child.spec.name, code)
            self._record("note" if code == 0 else "risk",
                         detail=f"{child.spec.name}: cancel-left exit {code}")

    def _health(self, name: str) -> Health | None:
        """The health record of a live child, or None."""
        ch = self.channels.get(health_channel(name))
        child = self.children.get(name)
        if ch is None or child is None or child.proc is None:
            return None
        if ch.read() <= 0 or int(ch.rx["pid"][0]) != child.proc.pid:  # type: ignore[union-attr]
            return None
        rx = ch.rx
        return Health(int(rx["t_pub"][0]), int(rx["state"][0]), int(rx["acked"][0]))

    def _silent(self, child: Child, now: int) -> bool:
        return silent(self._health(child.spec.name), child.started_ns, now, self.heartbeat_timeout_ns,
                      self.start_grace_ns)

    def _observe(self, now: int) -> None:
        health = {name: self._health(name) for name in self.children}
        if self.lifecycle.phase < lc.Phase.STOPPING and self.observer.risk_tripped(health, now):
            self.request_stop("kill switch tripped in the quoter")
            return
        for ev in self.observer.events(health, now):
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
        self.acks.sent(name, self.command_id, self.children)
        self._check_step_acks(now)

    def _check_step_acks(self, now: int) -> None:
        if self.lifecycle.phase != lc.Phase.STOPPING or self.command_name != self.acks.command:
            return
        acked = {p: h.acked if (h := self._health(p)) is not None else None for p in self.acks.awaiting}
        dead = {n for n, c in self.children.items() if c.proc is None}
        step = self.acks.update(acked, dead, self._hedge_ring_booked())
        if step is not None:
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
        if isinstance(position, LatestValue) and position.read() > 0:   # the "latest" kind (plan.py)
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

        def ended(c: Child) -> None:
            # It could not wind down, or the venue never confirmed the stop's cancels: clean up after it.
            if c.exits[-1] != 0 or lc.StopStep.CANCEL_QUOTES in self.lifecycle.timed_out:
                self._after_death(c)

        end_all(self.children.values(), grace_s, ended)
        self._reap_after_death(wait_s=CANCEL_LEFT_TIMEOUT_S + 5.0)

    def _close_zygote(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None

    def close(self) -> None:
        """Release everything, whatever state the run ended in (also after an exception). A supervisor
        that never took the instance (another engine holds it) touches nothing of it."""
        self._end_children()
        self._close_zygote()
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

