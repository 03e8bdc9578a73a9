"""How a consumer waits for the next record: ``spin`` or ``block``.

``spin`` busy-polls the channel's cursor: the lowest latency, and a whole core burnt; only for isolated
cores on bare metal. ``block`` sleeps in the kernel on an eventfd that the producer bumps after every
publish. The eventfd is created with the channel (by the supervisor) and inherited by the processes it
spawns (``subprocess.Popen(pass_fds=...)``); its number is stored in the segment header so an attaching
process finds it. A consumer can register it in an asyncio loop with ``loop.add_reader(fd, ...)``.

The producer signals on every publish rather than only when the consumer says it sleeps: the "am I
sleeping" flag would need a store-load fence between two processes, which Python cannot issue, and a
lost wake-up is a stuck quoter. The eventfd counter is kernel state, so no wake-up is ever lost; a
stale count costs the consumer at most one empty pass.
"""

from __future__ import annotations

import os
import select
import sys
from typing import Literal

WaitKind = Literal["spin", "block"]
WAIT_KINDS = ("spin", "block")


def new_eventfd() -> int:
    """A blocking, close-on-exec eventfd (only ``pass_fds`` hands it to a child)."""
    return os.eventfd(0, os.EFD_CLOEXEC)


def check_inherited_fd(fd: int, segment: str) -> None:
    """Make sure ``fd`` is an eventfd this process holds; otherwise say how to spawn it properly."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = ""
    if "eventfd" not in target:
        raise OSError(
            f"{segment}: the blocking wait needs the eventfd {fd} of the process that created the channel; "
            "this process does not hold it (spawn it with "
            "subprocess.Popen(pass_fds=channel.inheritable_fds()) or use wait='spin')")


class BlockWaiter:
    """Consumer side of an eventfd."""

    __slots__ = ("_fd", "_poll")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def fileno(self) -> int:
        return self._fd

    def sleep(self, timeout_s: float | None) -> bool:
        """Sleep until the producer signals (True) or the timeout passes (False)."""
        if timeout_s is None:
            os.eventfd_read(self._fd)
            return True
        ms = max(0, int(timeout_s * 1000.0 + 0.999))
        if not self._poll.poll(ms):
            return False
        os.eventfd_read(self._fd)
        return True

    def clear(self) -> None:
        """Reset a pending count without blocking (from an asyncio reader callback)."""
        if self._poll.poll(0):
            os.eventfd_read(self._fd)


def signal(fd: int) -> None:
    os.eventfd_write(fd, 1)


CPU_DMA_LATENCY = "/dev/cpu_dma_latency"


def hold_cpu_dma_latency(max_us: int = 0) -> int | None:
    """Ask the kernel to keep every CPU out of idle states slower to leave than ``max_us``, for as long
    as the returned descriptor stays open (the PM QoS interface tuned's latency-performance profile
    uses). This is what makes a ``block`` wait wake in microseconds instead of tens of them: a sleeping
    consumer's CPU otherwise drops into a deep idle state. Needs root (or the device's permissions);
    returns None, changing nothing, when not allowed."""
    try:
        fd = os.open(CPU_DMA_LATENCY, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        os.write(fd, int(max_us).to_bytes(4, "little"))
    except OSError:
        os.close(fd)
        return None
    return fd


def hold_cpu_dma_latency_or_say(who: str, max_us: int = 0) -> int | None:
    """:func:`hold_cpu_dma_latency` for a command that was asked to hold it: one line on stderr when it
    cannot, so that figures measured on an untuned host are not taken for tuned ones."""
    fd = hold_cpu_dma_latency(max_us)
    if fd is None:
        print(f"{who}: {CPU_DMA_LATENCY} not writable; running with the host's idle states", file=sys.stderr)
    return fd
