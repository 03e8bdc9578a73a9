"""A supervised process's side of the supervisor contract.

A child attaches to the ``control`` channel (phase and commands, written by the supervisor) and writes
its own ``health.<name>`` record: a heartbeat, its state bits (``fastmm.shm.records.STATE_*``), the id
of the last command it carried out, and counters. It asks the kernel to send it SIGTERM when the
supervisor dies, so no orphan keeps quoting without a supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable

from fastmm.config import Config
from fastmm.procs.plan import health_channel
from fastmm.shm import LatestValue
from fastmm.shm.records import COMMANDS, CONTROL, HEALTH

PR_SET_PDEATHSIG = 1
log = logging.getLogger("fastmm.child")


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM sets (the supervisor's escalation, its death through PR_SET_PDEATHSIG), and
    SIGINT unless the process ignores it (supervised children do, see ``fastmm.procs.run``; a process run
    on its own stops on Ctrl-C): every process's way out of its loop, so its own wind-down runs instead
    of the process dying mid-write."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            loop.add_signal_handler(sig, stop.set)
    return stop


class SupervisorLink:
    """Heartbeat out, commands in. ``now_ns`` is CLOCK_MONOTONIC (``time.monotonic_ns``)."""

    def __init__(self, cfg: Config, name: str) -> None:
        self.name = name
        instance = cfg.instance.name
        self.control = LatestValue.attach(instance, "control", CONTROL)
        self.health = LatestValue.attach(instance, health_channel(name), HEALTH, wait="spin")
        self.health.claim_writer()
        self.state = 0
        self.acked = 0
        self.messages = 0
        self.errors = 0
        # The supervisor's pid from the environment it passed: a supervisor that died before this line
        # is then seen gone at the first check (getppid() would already name the reaper).
        expected = os.environ.get("FASTMM_SUPERVISOR_PID", "")
        self._parent = int(expected) if expected.isdigit() else os.getppid()
        # Carry on from what an earlier incarnation of this process acknowledged.
        if self.health.read() > 0:
            self.acked = int(self.health.rx["acked"][0])
            self.restarts = int(self.health.rx["restarts"][0]) + 1
        else:
            self.restarts = 0

    def set_state(self, bits: int, on: bool = True) -> None:
        self.state = (self.state | bits) if on else (self.state & ~bits)

    def heartbeat(self, now_ns: int | None = None) -> None:
        tx = self.health.tx
        tx["t_pub"] = time.monotonic_ns() if now_ns is None else now_ns
        tx["pid"] = os.getpid()
        tx["state"] = self.state
        tx["restarts"] = self.restarts
        tx["acked"] = self.acked
        tx["messages"] = self.messages
        tx["errors"] = self.errors
        self.health.publish()

    def phase(self) -> int:
        return int(self.control.rx["phase"][0]) if self.control.read() > 0 else 0

    def pending_command(self) -> tuple[int, str] | None:
        """The supervisor's current command if this process has not acknowledged it yet."""
        if self.control.read() <= 0:
            return None
        cid = int(self.control.rx["command_id"][0])
        if cid <= self.acked:
            return None
        code = int(self.control.rx["command"][0])
        return cid, COMMANDS[code] if code < len(COMMANDS) else "none"

    def ack(self, command_id: int, now_ns: int | None = None) -> None:
        self.acked = max(self.acked, command_id)
        self.heartbeat(now_ns)

    def supervisor_gone(self) -> bool:
        return os.getppid() != self._parent

    def close(self) -> None:
        self.control.close()
        self.health.close()


async def serve_supervisor(link: SupervisorLink, stop: asyncio.Event, *, period_s: float = 0.05,
                           on_command: Callable[[int, str], bool] | None = None,
                           poke: asyncio.Event | None = None) -> None:
    """Heartbeat every ``period_s`` and carry out supervisor commands until ``stop`` is set.

    ``on_command(id, name)`` returns True when the command is done (it is then acknowledged); ``exit``
    always stops the process. A supervisor that disappeared stops it too. Setting ``poke`` (from a
    reader on the control channel's eventfd) checks for a command at once instead of at the next beat.
    """
    while not stop.is_set():
        cmd = link.pending_command()
        if cmd is not None:
            cid, name = cmd
            if name == "exit":
                link.ack(cid)
                stop.set()
                break
            if on_command is None or on_command(cid, name):
                link.ack(cid)
        if link.supervisor_gone():
            log.error("%s: supervisor gone; stopping", link.name)
            stop.set()
            break
        link.heartbeat()
        if poke is not None:
            poke.clear()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(poke.wait())]
            _done, pending = await asyncio.wait(waits, timeout=period_s, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period_s)
    link.heartbeat()
