"""One live engine per instance: a refused start touches nothing; a reused pid is not the supervisor.

Issue 16 items 1 and 8, driven through the real commands (`fastmm supervise`, `paper`, `status`,
`stop`) against a supervisor with real (scripted) children.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from fastmm.config import Config, load_config
from fastmm.procs import lifecycle as lc
from fastmm.procs.plan import PROCESSES
from fastmm.procs.restart import RestartPolicy
from fastmm.procs.supervisor import ChildSpec, Supervisor
from fastmm.shm import InstanceRunning, list_segments, unlink_instance
from fastmm.shm import segment as sg
from fastmm.shm.instance_lock import InstanceLock, holder_pid
from fastmm.shm.records import CONTROL
from fastmm.venues.truex.factory import session_store_path

CHILD = str(Path(__file__).with_name("scripted_child.py"))
FASTMM = [sys.executable, "-m", "fastmm.cli"]
_n = iter(range(10**6))


def _env(tmp_path: Path, instance: str) -> dict[str, str]:
    return {"FASTMM_INSTANCE__NAME": instance, "FASTMM_INSTANCE__STATE_DIR": str(tmp_path),
            "FASTMM_INSTANCE__LOG_LEVEL": "WARNING", "FASTMM_PROCESSES__HEARTBEAT_TIMEOUT_MS": "2000"}


@pytest.fixture
def quoting(tmp_path: Path) -> Iterator[Callable[[], tuple[Supervisor, dict[str, str]]]]:
    made: list[Supervisor] = []

    def start() -> tuple[Supervisor, dict[str, str]]:
        env = _env(tmp_path, f"guard{os.getpid()}x{next(_n)}")
        cfg: Config = load_config(None, env)
        sup = Supervisor(cfg, [ChildSpec(n, [sys.executable, CHILD]) for n in PROCESSES],
                         restart=RestartPolicy(first_delay_ns=50_000_000), start_grace_ns=5_000_000_000)
        made.append(sup)
        sup.start()
        deadline = time.monotonic() + 20
        while sup.lifecycle.phase != lc.Phase.QUOTING:
            assert time.monotonic() < deadline, sup.lifecycle.phase.name
            sup.step()
            time.sleep(0.005)
        return sup, {**os.environ, **env}

    yield start
    for sup in made:
        sup.close()
        assert list_segments(sup.cfg.instance.name) == []


def _inodes(instance: str) -> dict[str, int]:
    return {n: os.stat("/dev/shm" + n).st_ino for n in list_segments(instance)}


def _keep_stepping(sup: Supervisor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sup.step()
        time.sleep(0.005)


def _run(args: list[str], env: dict[str, str], sup: Supervisor, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command while the supervisor keeps stepping (it answers `holder_pid` and heartbeats)."""
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"{args} did not finish"
            _keep_stepping(sup, 0.05)
        out, err = proc.communicate(timeout=10)
        return subprocess.CompletedProcess(args, proc.returncode, out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_second_supervise_or_paper_is_refused_in_one_line_and_touches_nothing(quoting, tmp_path: Path) -> None:
    sup, env = quoting()
    name = sup.cfg.instance.name
    oe = sup.cfg.truex.order_entry
    seq = session_store_path(sup.cfg, oe.sender_comp_id, oe.target_comp_id)
    seq.parent.mkdir(parents=True, exist_ok=True)
    seq.write_text("42 17\n")
    before = _inodes(name)
    assert len(before) >= 10

    for args in ([*FASTMM, "supervise"], [*FASTMM, "paper", "--duration", "3", "--quiet"]):
        r = _run(args, env, sup, tmp_path)
        assert r.returncode == 1, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "already running" in lines[0] and str(os.getpid()) in lines[0], r.stderr
        assert "Traceback" not in r.stderr
        assert _inodes(name) == before, f"{args[3]} changed the live engine's segments"
        assert seq.read_text() == "42 17\n", f"{args[3]} touched the live engine's sequence file"

    st = _run([*FASTMM, "status", "--json"], env, sup, tmp_path)
    assert st.returncode == 0 and json.loads(st.stdout)["phase"] == "QUOTING"
    assert sup.lifecycle.phase == lc.Phase.QUOTING
    assert all(c.proc is not None and c.proc.poll() is None for c in sup.children.values())


def test_the_instance_lock_names_its_holder_and_is_released_when_the_holder_dies() -> None:
    name = f"lock{os.getpid()}x{next(_n)}"
    assert holder_pid(name) is None
    code = ("import sys, time\nfrom fastmm.shm.instance_lock import InstanceLock\n"
            f"lock = InstanceLock.acquire({name!r})\nprint('held', flush=True)\n"
            "for _ in range(6000):\n    lock.drain()\n    time.sleep(0.01)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for _ in range(40):         # more than the listen backlog: drained connections never fill it
            assert holder_pid(name) == holder.pid
        with pytest.raises(InstanceRunning, match=f"already running .supervisor pid {holder.pid}"):
            InstanceLock.acquire(name)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert holder_pid(name) is None
        InstanceLock.acquire(name).close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


_SUPERVISOR = """
import sys, time
from fastmm.config import load_config
from fastmm.procs import lifecycle as lc
from fastmm.procs.plan import PROCESSES
from fastmm.procs.supervisor import ChildSpec, Supervisor
import os
sup = Supervisor(load_config(None, os.environ), [ChildSpec(n, [sys.executable, sys.argv[1]]) for n in PROCESSES],
                 start_grace_ns=5_000_000_000)
sup.start()
while sup.lifecycle.phase != lc.Phase.QUOTING:
    sup.step(); time.sleep(0.005)
print(" ".join(str(c.proc.pid) for c in sup.children.values()), flush=True)
for _ in range(60_000):
    sup.step(); time.sleep(0.005)
"""


def _children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_a_reused_pid_is_not_the_supervisor_status_and_stop_leave_it_alone(tmp_path: Path) -> None:
    """A supervisor is killed -9 (its segments stay) and its pid now belongs to an unrelated process:
    status says not running, stop signals nobody, the next start replaces the segments."""
    env = {**os.environ, **_env(tmp_path, f"reuse{os.getpid()}x{next(_n)}")}
    name = env["FASTMM_INSTANCE__NAME"]
    sup = subprocess.Popen([sys.executable, "-c", _SUPERVISOR, CHILD], env=env, stdout=subprocess.PIPE, text=True)
    stranger: subprocess.Popen[bytes] | None = None
    kids: list[int] = []
    try:
        assert sup.stdout is not None
        kids = [int(p) for p in sup.stdout.readline().split()]
        assert len(kids) == len(PROCESSES) and holder_pid(name) == sup.pid
        sup.send_signal(signal.SIGKILL)
        sup.wait(10)
        for k in kids:
            os.kill(k, signal.SIGKILL)
        assert holder_pid(name) is None
        time.sleep(0.05)        # a process started later than the supervisor (clock ticks are 10 ms)
        stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        leftovers = list_segments(name)
        assert len(leftovers) >= 10
        # The dead supervisor's pid is given to another process (pid reuse, written into the header).
        ctl = sg.attach_segment(name, "control", kind=sg.KIND_LATEST, dtype=CONTROL)
        try:
            ctl.words[sg.W_OWNER_PID] = stranger.pid
            assert ctl.owner_alive() is False, "a pid with another start time must not count as the creator"
        finally:
            ctl.close()

        st = subprocess.run([*FASTMM, "status", "--json"], env=env, capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
        assert st.returncode == 1
        data = json.loads(st.stdout)
        assert data["running"] is False and data.get("stale") is True, data
        stop = subprocess.run([*FASTMM, "stop", "--wait", "2"], env=env, capture_output=True, text=True,
                              cwd=tmp_path, timeout=60)
        assert stop.returncode == 1 and "not running" in stop.stderr, stop.stderr
        time.sleep(0.2)
        assert stranger.poll() is None, "fastmm stop signalled an unrelated process"

        # The next start of the instance takes it and replaces the dead run's segments.
        nxt = Supervisor(load_config(None, env), [], start_grace_ns=1_000_000_000)
        try:
            nxt.start()
            assert holder_pid(name) == os.getpid()
            assert len(list_segments(name)) >= 1
        finally:
            nxt.close()
        assert list_segments(name) == []
    finally:
        for p in (sup, stranger):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
        for k in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGKILL)
        unlink_instance(name)


def test_start_time_is_recorded_in_the_header() -> None:
    name = f"hdr{os.getpid()}x{next(_n)}"
    seg = sg.create_segment(name, "probe", kind=sg.KIND_LATEST, dtype=np.dtype([("seq", "<u8")]), capacity=1)
    try:
        assert seg.owner_pid == os.getpid()
        assert seg.owner_start == sg.process_start_ticks(os.getpid()) > 0
        assert seg.owner_alive()
    finally:
        seg.close()
        seg.unlink()
