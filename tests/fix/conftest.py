"""Shared helpers for the FIX tests: a QuickFIX acceptor process and a free loopback port."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
DICTS = HERE.parents[2] / "shared" / "venues" / "truex"
KEY_ID = "00000000-0000-0000-0000-000000000000"
SECRET = "test-secret"
CLIENT_ID = "CLIENT1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class QfPeer:
    """The QuickFIX acceptor of ``qf_peer.py`` in its own process; events are JSON lines."""

    def __init__(self, tmp: Path, sessions: list[str], key_id: str = KEY_ID, secret: str = SECRET,
                 tls: str = "") -> None:
        assert (DICTS / "TrueX_FIX50SP2.xml").is_file(), f"TrueX dictionaries not found in {DICTS}"
        self.port = free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        self._stderr = open(tmp / "qf_peer.stderr", "w")  # noqa: SIM115 - closed in close()
        cmd = [sys.executable, str(HERE / "qf_peer.py"), "--port", str(self.port), "--dir", str(tmp),
               "--dicts", str(DICTS), "--key-id", key_id, "--secret", secret]
        for s in sessions:
            cmd += ["--session", s]
        if tls:
            cmd += ["--tls", tls]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     text=True, bufsize=1)
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_blocking(lambda e: e["ev"] == "ready", 20)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(ev)

    def find(self, pred: Callable[[dict[str, Any]], bool], start: int = 0) -> dict[str, Any] | None:
        with self._lock:
            for e in self.events[start:]:
                if pred(e):
                    return e
        return None

    def all(self, pred: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if pred(e)]

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def wait_blocking(self, pred: Callable[[dict[str, Any]], bool], timeout: float,
                      start: int = 0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            e = self.find(pred, start)
            if e is not None:
                return e
            if self.proc.poll() is not None:
                raise AssertionError(f"qf_peer exited with {self.proc.returncode}")
            time.sleep(0.01)
        raise AssertionError(f"qf_peer: no matching event within {timeout} s; last: {self.events[-5:]}")

    async def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float,
                   start: int = 0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            e = self.find(pred, start)
            if e is not None:
                return e
            await asyncio.sleep(0.01)
        raise AssertionError(f"qf_peer: no matching event within {timeout} s; last: {self.events[-5:]}")

    async def wait_count(self, pred: Callable[[dict[str, Any]], bool], n: int, timeout: float) -> None:
        """Wait until ``n`` events match (the reader thread may lag the peer's actions a little)."""
        end = time.monotonic() + timeout
        while len(self.all(pred)) < n:
            if time.monotonic() > end:
                raise AssertionError(f"qf_peer: {len(self.all(pred))} matching events, wanted {n}")
            await asyncio.sleep(0.01)

    def cmd(self, **kw: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.cmd(cmd="quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(2)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        self._stderr.close()


def msg_type(e: dict[str, Any]) -> str:
    """MsgType of a peer event's raw message ('' when none)."""
    raw = e.get("raw", "")
    for f in raw.split("|"):
        if f.startswith("35="):
            return f[3:]
    return ""


def field(e: dict[str, Any], tag: int) -> str | None:
    for f in e.get("raw", "").split("|"):
        t, _, v = f.partition("=")
        if t == str(tag):
            return v
    return None


@pytest.fixture
def qf_peer(tmp_path: Path) -> Iterator[Callable[..., QfPeer]]:
    peers: list[QfPeer] = []

    def start(sessions: list[str], **kw: Any) -> QfPeer:
        p = QfPeer(tmp_path / f"qf{len(peers)}", sessions, **kw)
        peers.append(p)
        return p

    yield start
    for p in peers:
        p.close()
