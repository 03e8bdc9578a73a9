"""What the supervisor's process tests share: stepping a real supervisor until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastmm.procs.supervisor import Supervisor


def run_until(sup: Supervisor, cond: Callable[[], bool], timeout: float = 20.0) -> None:
    """Step ``sup`` until ``cond()``; fail with the phase it is stuck in after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out in phase {sup.lifecycle.phase.name}"
        sup.step()
        time.sleep(0.005)
