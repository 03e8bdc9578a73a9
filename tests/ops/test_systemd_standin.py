"""The systemd stand-ins themselves, on small units of real processes: a test that trusts them to carry out
ops/*.service must know they start, stop, kill, escalate and refuse the way systemd does."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ops_helpers import install_standins


class Units:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.units = root / "units"
        self.units.mkdir()
        install_standins(root / "bin")
        self.env = {**os.environ, "PATH": f"{root / 'bin'}:{os.environ['PATH']}",
                    "FASTMM_TEST_SYSTEMD_UNITS": str(self.units), "FASTMM_TEST_SYSTEMD_STATE": str(root / "state"),
                    "FASTMM_TEST_SYSTEMD_MAP": json.dumps([["/srv/prod", str(root)]]),
                    "CALLER_ONLY": "from the caller"}

    def write(self, name: str, service: str) -> None:
        (self.units / f"{name}.service").write_text(f"[Unit]\nDescription={name}\n\n[Service]\n{service}\n")

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root)

    def pids(self) -> list[int]:
        """Live processes of these units (the managers carry the state folder, the services the root)."""
        needle = str(self.root).encode()
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and int(d.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if needle in (d / "cmdline").read_bytes():
                        out.append(int(d.name))
        return out


@pytest.fixture
def units(tmp_path: Path) -> Iterator[Units]:
    u = Units(tmp_path)
    yield u
    for pid in u.pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _script(u: Units, name: str, body: str) -> str:
    path = u.root / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return f"/srv/prod/{name}"


def test_start_environment_journal_and_stop(units: Units) -> None:
    u = units
    (u.root / "secrets.env").write_text("# comment\nSECRET_ONE=s3cret\nQUOTED=\"a b\"\n")
    run = _script(u, "svc.sh", 'echo "env: $SECRET_ONE|$QUOTED|$PLAIN|${CALLER_ONLY:-unset}|$(pwd)"\n'
                                'trap \'echo "got TERM"; exit 0\' TERM\nwhile :; do sleep 0.05; done\n')
    pre = _script(u, "pre.sh", 'echo "pre ran"\n')
    u.write("svc", f"Type=simple\nEnvironmentFile=/srv/prod/secrets.env\nEnvironment=PLAIN=1\n"
                   f"WorkingDirectory=/srv/prod\nExecStartPre={pre}\nExecStart={run} --flag\n"
                   "KillMode=mixed\nKillSignal=SIGTERM\nTimeoutStopSec=10\n")
    assert u.run("systemctl", "is-active", "svc").stdout.strip() == "inactive"
    assert u.run("systemctl", "start", "svc").returncode == 0
    assert u.run("systemctl", "is-active", "svc.service").stdout.strip() == "active"
    deadline = time.monotonic() + 10
    while "env:" not in (log := u.run("journalctl", "-u", "svc", "--since", "-1h").stdout):
        assert time.monotonic() < deadline, log
        time.sleep(0.05)
    assert f"env: s3cret|a b|1|unset|{u.root}" in log, "the unit's environment, not the caller's"
    assert log.index("pre ran") < log.index("env:"), "ExecStartPre first"
    assert u.run("systemctl", "stop", "svc").returncode == 0
    assert u.run("systemctl", "is-active", "svc").stdout.strip() == "inactive"
    log = u.run("journalctl", "-u", "svc", "-n", "2", "--no-pager").stdout
    assert "got TERM" in log and "Main process exited, code=exited, status=0" in log
    assert u.run("journalctl", "-u", "svc", "--since", "2001-01-01 00:00:00").stdout.count("\n") >= 4
    assert u.pids() == []


def test_stop_escalates_to_sigkill_and_kill_reaches_the_group(units: Units) -> None:
    u = units
    stubborn = _script(u, "stubborn.sh", "trap '' TERM\nsleep 300 &\nwhile :; do sleep 0.05; done\n")
    u.write("stubborn", f"ExecStart={stubborn}\nKillMode=mixed\nTimeoutStopSec=1\n")
    assert u.run("systemctl", "start", "stubborn").returncode == 0
    time.sleep(0.3)
    t0 = time.monotonic()
    assert u.run("systemctl", "stop", "stubborn").returncode == 0
    assert 0.9 <= time.monotonic() - t0 < 10, "TERM ignored: SIGKILL after TimeoutStopSec"
    assert u.run("systemctl", "is-active", "stubborn").stdout.strip() == "failed"
    assert u.pids() == [], "the background sleep went with the group"
    assert "code=killed, signal=SIGKILL" in u.run("journalctl", "-u", "stubborn").stdout
    assert u.run("systemctl", "start", "stubborn").returncode == 0
    time.sleep(0.3)
    assert u.run("systemctl", "kill", "-s", "KILL", "stubborn").returncode == 0
    deadline = time.monotonic() + 10
    while u.run("systemctl", "is-active", "--quiet", "stubborn").returncode == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert u.pids() == []


def test_what_the_standin_refuses(units: Units) -> None:
    u = units
    ok = _script(u, "ok.sh", "exec sleep 300\n")
    cases = {
        "forking": f"Type=forking\nExecStart={ok}",
        "withstop": f"ExecStart={ok}\nExecStop=/bin/true",
        "unmapped": "ExecStart=/opt/nowhere/bin/fastmm supervise",
        "envfile": f"ExecStart={ok}\nEnvironmentFile=/etc/fastmm/secrets.env",
        "failpre": f"ExecStartPre=/srv/prod/ok.sh-missing\nExecStart={ok}",
    }
    for name, body in cases.items():
        u.write(name, body)
        p = u.run("systemctl", "start", name)
        assert p.returncode == 1, (name, p.stdout, p.stderr)
    assert "Type=forking is not implemented" in u.run("systemctl", "start", "forking").stderr
    assert "not mapped into the test's tree" in u.run("journalctl", "-u", "envfile").stdout
    assert u.run("systemctl", "start", "nosuch").stderr.strip().endswith("Unit nosuch.service not found.")
    for argv in (("journalctl", "-u", "forking", "-f"), ("systemctl", "restart", "forking"),
                 ("systemctl", "kill", "--kill-whom=control", "forking"), ("journalctl", "--since", "-1h")):
        p = u.run(*argv)
        assert p.returncode == 1 and "stand-in" in p.stderr, argv
    assert u.pids() == []
