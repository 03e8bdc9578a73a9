"""The engine's processes as the harness watches them: identity, memory peaks, leftovers killed by pid
(the /proc readers are :mod:`fastmm.procinfo`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path

from fastmm import procinfo
from fastmm.procinfo import process_tree


class ProcessWatch:
    """The engine's processes by (pid, start time); memory peaks; kills leftovers by pid at the end."""

    def __init__(self, root: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.known: dict[int, tuple[int | None, str]] = {}
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.per_process_rss_kb: dict[str, int] = {}
        # Each process's VmRSS, Pss and Uss (kB) in the sample whose summed Pss was the highest.
        self.at_peak_pss: dict[str, dict[str, int]] = {}

    def sample(self) -> None:
        rss_sum = pss_sum = 0
        now: dict[str, dict[str, int]] = {}
        for pid in process_tree(self.root.pid):
            if pid not in self.known:
                argv = procinfo.cmdline(pid)
                if argv is not None:
                    self.known[pid] = (procinfo.start_time(pid), _label(argv))
            m = procinfo.memory_detail_kb(pid)
            if m is None:
                continue
            rss_sum += m["rss"]
            pss_sum += m["pss"]
            label = self.known.get(pid, (None, "?"))[1]
            self.per_process_rss_kb[label] = max(self.per_process_rss_kb.get(label, 0), m["rss"])
            mine = now.setdefault(label, {"rss": 0, "pss": 0, "uss": 0})
            for k in mine:
                mine[k] += m[k]
        self.peak_rss_kb = max(self.peak_rss_kb, rss_sum)
        if pss_sum > self.peak_pss_kb:
            self.at_peak_pss = now
        self.peak_pss_kb = max(self.peak_pss_kb, pss_sum)

    def memory_table_mb(self) -> dict[str, dict[str, float]]:
        """Per process (by label) RSS, PSS and USS in MB at the peak of the summed PSS, and their sum."""
        table = {k: {f"{f}_mb": round(v[f] / 1024, 1) for f in ("rss", "pss", "uss")}
                 for k, v in sorted(self.at_peak_pss.items())}
        table["sum"] = {f"{f}_mb": round(sum(v[f] for v in self.at_peak_pss.values()) / 1024, 1)
                        for f in ("rss", "pss", "uss")}
        return table

    def kill_leftovers(self) -> list[int]:
        killed = []
        if self.root.poll() is None:
            self.root.kill()
            self.root.wait(10)
        for pid, (start, _label) in self.known.items():
            if start is not None and procinfo.start_time(pid) == start and pid != self.root.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        return killed


def _label(argv: list[bytes]) -> str:
    args = [a.decode("utf-8", "replace") for a in argv if a]
    if "fastmm.procs.zygote" in args:
        return "zygote"
    if "fastmm.procs.run" in args:
        i = args.index("fastmm.procs.run")
        return args[i + 1] if i + 1 < len(args) else "?"
    for a in args:
        if a.startswith("_"):
            return {"_supervise": "supervisor", "_quoter": "quoter", "_single": "single",
                    "_feed": "feed-coinbase"}.get(a, a)
    return Path(args[0]).name if args else "?"


class MemorySampler:
    """Samples the engine's memory every ``period_s`` on a thread (reading /proc/<pid>/smaps_rollup takes
    milliseconds, which must not stall the simulators' loop)."""

    def __init__(self, watch: ProcessWatch, period_s: float = 1.0) -> None:
        self.watch = watch
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.watch.sample()
            self._stop.wait(self.period_s)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
