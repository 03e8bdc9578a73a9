"""The supervisor's children as operating-system processes: start one pinned and deaf to Ctrl-C, notice
its exit, run its clean-up command after it died, and end them all (ask, then SIGTERM, then SIGKILL).

Only I/O: when to start, restart, kill or clean up is decided by the supervisor and the pure modules it
consults (:mod:`fastmm.procs.restart`, :mod:`fastmm.procs.health`, :mod:`fastmm.procs.lifecycle`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from fastmm.procs.plan import ChildSpec

if TYPE_CHECKING:
    from fastmm.procs.zygote import Zygote

log = logging.getLogger("fastmm.supervisor")


def spawn_without_sigint(argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
    """Start a child with SIGINT blocked from its first instruction (the mask is inherited through fork
    and exec; the child then ignores SIGINT for good, see ``fastmm.procs.run``): a Ctrl-C to the process
    group reaches only the supervisor, which runs the stop sequence the children follow. A SIGINT that
    arrives here while it is blocked is delivered when it is unblocked, not lost."""
    main_thread = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return subprocess.Popen(argv, **kw)  # type: ignore[call-overload]
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, main_thread)


class Process(Protocol):
    """A started child as the supervisor handles it: a :class:`subprocess.Popen` (exec start) or a
    :class:`fastmm.procs.zygote.ForkedProcess` (fork start)."""

    pid: int

    @property
    def returncode(self) -> int | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


@dataclass
class Child:
    """One process of the instance, its exits, and its clean-up command while that runs."""

    spec: ChildSpec
    proc: Process | None = None
    started_ns: int = 0
    exits: list[int] = field(default_factory=list)
    killed_for_silence: int = 0
    after_death: subprocess.Popen[bytes] | None = None   # its ``on_death`` command, while it runs
    after_death_deadline: float = 0.0

    def start(self, env: Mapping[str, str], pass_fds: tuple[int, ...], now_ns: int,
              zygote: Zygote | None = None) -> int:
        """Start the process (pinned to its CPUs when it has any); its pid. Forked by ``zygote`` when
        given (it raises ZygoteError when it cannot), exec'd otherwise."""
        if zygote is not None:
            self.proc = zygote.spawn(self.spec.argv, env, pass_fds)
        else:
            self.proc = spawn_without_sigint(self.spec.argv, pass_fds=pass_fds, env=dict(env))
        self.started_ns = now_ns
        if self.spec.cpus:
            try:
                os.sched_setaffinity(self.proc.pid, set(self.spec.cpus))
            except OSError as e:
                log.error("%s: cannot pin to CPUs %s: %s", self.spec.name, self.spec.cpus, e)
        return self.proc.pid

    def exited(self) -> int | None:
        """The exit status if the process has ended since the last look (it is then forgotten)."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is not None:
            self.exits.append(code)
            self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def start_clean_up(self, env: Mapping[str, str], budget_s: float) -> int | None:
        """Start the ``on_death`` command, given ``budget_s`` to finish; its pid, or None when there is
        none, one already runs, or it cannot start."""
        argv = self.spec.on_death
        if not argv or self.after_death is not None:
            return None
        try:
            self.after_death = spawn_without_sigint(argv, env=dict(env))
        except OSError as e:
            log.error("%s: cannot start %s: %s", self.spec.name, " ".join(argv[2:4]), e)
            return None
        self.after_death_deadline = time.monotonic() + budget_s
        return self.after_death.pid

    def reap_clean_up(self, wait_s: float = 0.0) -> int | None:
        """The clean-up's exit status once it has ended (waiting up to ``wait_s``), killing one that
        overran its budget; None while it runs or when there is none."""
        p = self.after_death
        if p is None:
            return None
        try:
            code = p.wait(timeout=wait_s) if wait_s > 0 else p.poll()
        except subprocess.TimeoutExpired:
            code = None
        if code is None and time.monotonic() > self.after_death_deadline:
            log.error("%s: cancel-left (pid %d) overran; killing it", self.spec.name, p.pid)
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            code = p.wait(timeout=10)
        if code is not None:
            self.after_death = None
        return code


def end_all(children: Iterable[Child], grace_s: float, on_ended: Callable[[Child], None]) -> None:
    """Wait half of ``grace_s`` for the children to exit (they were asked to), then SIGTERM, then
    SIGKILL, half the grace each; reap every one and call ``on_ended`` for each that was still running."""
    children = list(children)
    deadline = time.monotonic() + grace_s / 2
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        live = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
        if not live:
            break
        if sig is not None:
            for p in live:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(sig)
            deadline = time.monotonic() + grace_s / 2
        while time.monotonic() < deadline and any(p.poll() is None for p in live):
            time.sleep(0.01)
    for c in children:
        if c.proc is not None:
            c.exits.append(c.proc.wait(timeout=10))
            c.proc = None
            on_ended(c)
