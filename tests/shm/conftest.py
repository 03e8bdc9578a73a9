from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastmm.shm import unlink_instance

PEER = Path(__file__).with_name("peer.py")
_counter = itertools.count()


class Peers:
    """Peer processes of one test; every one is killed (by pid) and reaped at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str, fds: tuple[int, ...] = (), env: dict[str, str] | None = None
              ) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, str(PEER), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, pass_fds=fds,
                                env={**os.environ, **(env or {})})
        self.procs.append(proc)
        return proc

    @staticmethod
    def wait_ready(proc: subprocess.Popen[str]) -> None:
        line = proc.stdout.readline() if proc.stdout else ""
        assert json.loads(line) == {"ready": True}, (line, proc.stderr.read() if proc.stderr else "")

    @staticmethod
    def result(proc: subprocess.Popen[str], timeout: float = 60.0) -> dict:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def instance() -> Iterator[str]:
    name = f"t{os.getpid()}-{next(_counter)}"
    yield name
    unlink_instance(name)


@pytest.fixture
def peers() -> Iterator[Peers]:
    p = Peers()
    yield p
    p.cleanup()
