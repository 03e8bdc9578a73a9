"""The supervisor's two ways to start a child (``processes.start``), with real processes: fork from the
preloaded zygote (the default) and exec, and the fall back from the first to the second."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from supervised_helpers import run_until

from fastmm import procinfo
from fastmm.config import load_config
from fastmm.procs import lifecycle as lc
from fastmm.procs.plan import PROCESSES
from fastmm.procs.restart import RestartPolicy
from fastmm.procs.supervisor import ChildSpec, Supervisor
from fastmm.procs.zygote import ForkedProcess
from fastmm.shm import list_segments

CHILD = str(Path(__file__).with_name("scripted_child.py"))
_n = iter(range(10**6))


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def build(start: str, names: tuple[str, ...] = PROCESSES) -> Supervisor:
        cfg = load_config(None, {
            "FASTMM_INSTANCE__NAME": f"zyg{os.getpid()}-{next(_n)}",
            "FASTMM_INSTANCE__STATE_DIR": str(tmp_path),
            "FASTMM_PROCESSES__HEARTBEAT_TIMEOUT_MS": "300",
            "FASTMM_PROCESSES__START": start,
        })
        sup = Supervisor(cfg, [ChildSpec(n, [sys.executable, CHILD]) for n in names],
                         restart=RestartPolicy(first_delay_ns=50_000_000), start_grace_ns=5_000_000_000)
        made.append(sup)
        return sup

    yield build
    for sup in made:
        sup.close()
        assert sup.zygote is None
        assert list_segments(sup.cfg.instance.name) == []


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def pids(sup: Supervisor) -> dict[str, int]:
    return {n: c.proc.pid for n, c in sup.children.items() if c.proc is not None}


def test_forked_children_are_the_supervisors_own_and_say_who_they_are(supervisor) -> None:
    sup = supervisor("fork")
    sup.start()
    assert sup.zygote is not None and sup.zygote.threads == 1
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    zygote = sup.zygote.proc.pid
    for name, child in sup.children.items():
        assert isinstance(child.proc, ForkedProcess)
        pid = child.proc.pid
        assert parent_of(pid) == os.getpid(), "adopted by the supervisor (subreaper), not the zygote's"
        assert parent_of(pid) != zygote
        argv = [a for a in procinfo.cmdline(pid) or [] if a]
        assert argv == [sys.executable.encode(), CHILD.encode()], "cmdline as exec would show it"
        assert Path(f"/proc/{pid}/comm").read_text().strip() == name
        env = dict(x.split(b"=", 1) for x in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in x)
        assert env[b"FASTMM_PROCESS"] == name.encode() and b"_FASTMM_ZYGOTE_ROOM" not in env
        assert len(os.listdir(f"/proc/{pid}/task")) == 1


def test_a_sigkilled_forked_child_is_restarted_with_a_new_pid(supervisor) -> None:
    sup = supervisor("fork", ("feed-coinbase", "quoter"))
    sup.start()
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    feed = sup.children["feed-coinbase"]
    assert feed.proc is not None
    old = feed.proc.pid
    os.kill(old, signal.SIGKILL)
    run_until(sup, lambda: feed.proc is not None and feed.proc.pid != old and sup.lifecycle.phase == lc.Phase.QUOTING)
    assert feed.exits == [-signal.SIGKILL] and sup.restart.restarts == {"feed-coinbase": 1}
    assert isinstance(feed.proc, ForkedProcess) and parent_of(feed.proc.pid) == os.getpid()
    sup.request_stop("test")
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.STOPPED)
    assert sup.exit_code == 0 and feed.exits == [-signal.SIGKILL, 0]


def test_exec_start_still_runs_and_restarts_the_children(supervisor) -> None:
    sup = supervisor("exec", ("feed-coinbase", "quoter"))
    sup.start()
    assert sup.zygote is None
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    feed = sup.children["feed-coinbase"]
    assert feed.proc is not None and not isinstance(feed.proc, ForkedProcess)
    old = feed.proc.pid
    os.kill(old, signal.SIGKILL)
    run_until(sup, lambda: feed.proc is not None and feed.proc.pid != old)
    assert feed.exits == [-signal.SIGKILL]


def test_a_dead_zygote_leaves_the_children_running_and_restarts_go_to_exec(supervisor) -> None:
    sup = supervisor("fork", ("feed-coinbase", "quoter"))
    sup.start()
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    assert sup.zygote is not None
    os.kill(sup.zygote.proc.pid, signal.SIGKILL)
    sup.zygote.proc.wait(10)
    time.sleep(0.3)
    assert all(c.proc is not None and c.proc.poll() is None for c in sup.children.values())
    feed = sup.children["feed-coinbase"]
    assert feed.proc is not None
    os.kill(feed.proc.pid, signal.SIGKILL)
    run_until(sup, lambda: sup.restart.restarts.get("feed-coinbase") == 1 and feed.proc is not None)
    assert sup.zygote is None and not isinstance(feed.proc, ForkedProcess)
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)


def _summed_pss_kb(sup: Supervisor) -> int:
    tree = list(pids(sup).values()) + ([sup.zygote.proc.pid] if sup.zygote is not None else [])
    return sum(m[1] for p in tree if (m := procinfo.memory_kb(p)) is not None)


def test_forked_children_share_their_pages(supervisor) -> None:
    """The point of the zygote: the children (and the zygote) together weigh less than exec'd children,
    although the zygote has preloaded every engine process's modules the scripted children never use."""
    summed = {}
    for start in ("exec", "fork"):
        sup = supervisor(start)
        sup.start()
        run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)   # noqa: B023
        time.sleep(0.5)
        summed[start] = _summed_pss_kb(sup)
        sup.close()
    assert summed["fork"] < 0.9 * summed["exec"], summed
