"""What Linux's /proc says about a process: its start time, its descendants, its memory, its command line.

Read-only and best effort: a process that ends while it is being read is ``None`` (or left out), never an
error, because whoever asks (the latency harness watching the engine's processes, a status view) asks
about processes that may end at any moment. Linux only; the figures are the kernel's own units (kB,
clock ticks).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

PROC = Path("/proc")


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, stat field 22): with the pid, an identity that
    survives pid reuse; None when the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(text.rsplit(")", 1)[1].split()[19])


def children(pid: int) -> list[int]:
    """Direct children of every thread of ``pid`` (empty when it is gone)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in (PROC / str(pid) / "task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(x) for x in (task / "children").read_text().split()]
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents before children."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += children(p)
    return seen


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, Pss) in kB, or None when the process is gone; Pss is VmRSS where the kernel has no
    smaps_rollup (or does not let us read it)."""
    try:
        rss = next(int(line.split()[1]) for line in (PROC / str(pid) / "status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    pss = rss
    with contextlib.suppress(OSError, StopIteration):
        rollup = (PROC / str(pid) / "smaps_rollup").read_text()
        pss = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return rss, pss


def memory_detail_kb(pid: int) -> dict[str, int] | None:
    """VmRSS, Pss and Uss (the pages only this process maps: Private_Clean + Private_Dirty) in kB from
    /proc/<pid>/status and smaps_rollup, or None when the process is gone. Without a readable
    smaps_rollup, Pss and Uss are VmRSS (the upper bound)."""
    m = memory_kb(pid)
    if m is None:
        return None
    rss, pss = m
    uss = rss
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = {}
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[key] = int(rest.split()[0])
        uss = fields["Private_Clean"] + fields["Private_Dirty"]
    return {"rss": rss, "pss": pss, "uss": uss}


def cmdline(pid: int) -> list[bytes] | None:
    """The process's argv as the kernel keeps it (NUL-separated), or None when it is gone."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
