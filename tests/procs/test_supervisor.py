"""The supervisor with real child processes and real shared memory."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from supervised_helpers import run_until

from fastmm.config import Config, load_config
from fastmm.procs import lifecycle as lc
from fastmm.procs.plan import PROCESSES
from fastmm.procs.restart import RestartPolicy
from fastmm.procs.supervisor import ChildSpec, Supervisor
from fastmm.shm import LatestValue, list_segments
from fastmm.shm.records import CONTROL

CHILD = str(Path(__file__).with_name("scripted_child.py"))
_n = iter(range(10**6))


def make_config(tmp_path: Path) -> Config:
    return load_config(None, {
        "FASTMM_INSTANCE__NAME": f"sup{os.getpid()}-{next(_n)}",
        "FASTMM_INSTANCE__STATE_DIR": str(tmp_path),
        "FASTMM_PROCESSES__HEARTBEAT_TIMEOUT_MS": "300",
    })


@pytest.fixture
def supervisor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def build(names: tuple[str, ...] = PROCESSES, **env: str) -> Supervisor:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        cfg = make_config(tmp_path)
        children = [ChildSpec(n, [sys.executable, CHILD]) for n in names]
        sup = Supervisor(cfg, children, restart=RestartPolicy(first_delay_ns=50_000_000),
                         timeouts=lc.StepTimeouts(cancel_quotes_ns=1_000_000_000, hedge_ns=1_000_000_000,
                                                  logout_ns=1_000_000_000),
                         start_grace_ns=5_000_000_000)
        made.append(sup)
        return sup

    yield build
    for sup in made:
        sup.close()
        assert list_segments(sup.cfg.instance.name) == []


def test_start_sequence_reaches_quoting_and_phase_is_in_shared_memory(supervisor) -> None:
    sup = supervisor()
    sup.start()
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    assert [p for _, p in sup.history] == ["FEEDS_UP", "OE_LOGGED_ON", "MD_SUBSCRIBED", "QUOTING"]
    ctl = LatestValue.attach(sup.cfg.instance.name, "control", CONTROL)
    try:
        assert ctl.read() > 0 and int(ctl.rx["phase"][0]) == lc.Phase.QUOTING
    finally:
        ctl.close()
    pids = {c.proc.pid for c in sup.children.values() if c.proc}
    assert len(pids) == len(PROCESSES)


def test_dead_only_feed_pulls_quotes_then_restarts_and_quotes_again(supervisor) -> None:
    sup = supervisor(("feed-coinbase", "quoter"))
    sup.start()
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    feed = sup.children["feed-coinbase"]
    assert feed.proc is not None
    old_pid = feed.proc.pid
    os.kill(old_pid, signal.SIGKILL)
    run_until(sup, lambda: sup.lifecycle.phase < lc.Phase.MD_SUBSCRIBED)
    assert sup.command_name == "pull_quotes"
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    assert feed.proc is not None and feed.proc.pid != old_pid
    assert sup.restart.restarts == {"feed-coinbase": 1}
    assert feed.exits == [-signal.SIGKILL]


def test_silent_child_is_killed_and_restarted(supervisor) -> None:
    sup = supervisor(("feed-coinbase", "quoter"), SCRIPTED_HANG="quoter")
    sup.start()
    run_until(sup, lambda: sup.children["quoter"].killed_for_silence >= 1)
    run_until(sup, lambda: sup.restart.restarts.get("quoter", 0) >= 1)
    assert sup.children["quoter"].exits[0] == -signal.SIGKILL


def test_stop_sequence_confirms_each_step_and_unlinks(supervisor) -> None:
    sup = supervisor()
    sup.start()
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    sup.request_stop("test")
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.STOPPED)
    assert sup.lifecycle.timed_out == []
    assert sup.exit_code == 0
    assert all(c.proc is None for c in sup.children.values()), "every child reaped"
    report = json.loads(sup.report_path.read_text())
    assert report["stop_reason"] == "test" and report["timed_out_steps"] == []
    journal = (sup.cfg.state_path / "supervisor.jsonl").read_text().splitlines()
    commands = [json.loads(x).get("command") for x in journal]
    assert [c for c in commands if c] == [
        "start_quoting", "pull_quotes", "cancel_all", "hedge_flat", "logout"]


def test_unconfirmed_cancel_times_out_and_the_stop_still_ends(supervisor) -> None:
    sup = supervisor(SCRIPTED_NO_ACK="cancel_all")
    sup.start()
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    sup.request_stop("test")
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.STOPPED)
    assert sup.lifecycle.timed_out == [lc.StopStep.CANCEL_QUOTES]
    assert sup.exit_code == 1
    assert json.loads(sup.report_path.read_text())["timed_out_steps"] == ["CANCEL_QUOTES"]


def test_kill_switch_trip_runs_the_stop_sequence(supervisor) -> None:
    sup = supervisor(SCRIPTED_RISK_TRIP="1")
    sup.start()
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.STOPPED)
    assert sup.lifecycle.stop_reason == "kill switch tripped in the quoter"
    assert sup.lifecycle.timed_out == []


def test_children_are_pinned_to_the_configured_cpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastmm.procs.plan import default_children

    cpu = min(os.sched_getaffinity(0))
    monkeypatch.setenv("FASTMM_PROCESSES__QUOTER", f"[{cpu}]")
    cfg = make_config(tmp_path)
    cfg = load_config(None, {**os.environ, "FASTMM_INSTANCE__NAME": cfg.instance.name,
                             "FASTMM_INSTANCE__STATE_DIR": str(tmp_path)})
    specs = {s.name: s for s in default_children(cfg, None, PROCESSES)}
    assert specs["quoter"].cpus == [cpu] and specs["hedger"].cpus == []
    children = [ChildSpec(n, [sys.executable, str(CHILD)], specs[n].cpus) for n in ("feed-coinbase", "quoter")]
    sup = Supervisor(cfg, children)
    try:
        sup.start()
        quoter = sup.children["quoter"].proc
        assert quoter is not None and os.sched_getaffinity(quoter.pid) == {cpu}
        feed = sup.children["feed-coinbase"].proc
        assert feed is not None and os.sched_getaffinity(feed.pid) == os.sched_getaffinity(0)
    finally:
        sup.close()
    assert list_segments(cfg.instance.name) == []


def test_a_dead_hedger_does_not_hold_the_logout_step(supervisor) -> None:
    """The logout step waits for the hedger to finish its in-flight order; a hedger that is dead has none
    it could finish (its journal lists it for the next start), so the step does not wait for it."""
    sup = supervisor()
    sup.restart.first_delay_ns = 60_000_000_000
    sup.start()
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    hedger = sup.children["hedger"]
    assert hedger.proc is not None
    os.kill(hedger.proc.pid, signal.SIGKILL)
    run_until(sup, lambda: hedger.proc is None)
    sup.lifecycle.hedge_on_stop = False     # the step under test is the logout
    sup.request_stop("test")
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.STOPPED)
    assert sup.lifecycle.timed_out == [] and sup.exit_code == 0


def test_a_quoter_dead_during_the_stop_is_cleaned_up_and_the_cancel_step_confirmed(supervisor) -> None:
    """The quoter dies during the stop's cancel step: its ``on_death`` command (cancel-left in the engine;
    here a stand-in that records that it ran and succeeds) confirms the step instead of a timeout."""
    sup = supervisor(SCRIPTED_NO_ACK="cancel_all")
    marker = sup.cfg.state_path / "on_death.ran"
    sup.cfg.state_path.mkdir(parents=True, exist_ok=True)
    quoter = sup.children["quoter"]
    quoter.spec.on_death = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ran')"]
    sup.start()
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.QUOTING)
    sup.request_stop("test")
    run_until(sup, lambda: sup.lifecycle.step == lc.StopStep.CANCEL_QUOTES)
    assert quoter.proc is not None
    os.kill(quoter.proc.pid, signal.SIGKILL)
    run_until(sup, lambda: sup.lifecycle.phase == lc.Phase.STOPPED)
    assert marker.read_text() == "ran"
    assert lc.StopStep.CANCEL_QUOTES not in sup.lifecycle.timed_out
