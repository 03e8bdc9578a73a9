"""Helpers of the operations tests: the runbooks' shell blocks as runnable steps, and a paper session.

The venue simulators run in a background thread of the test process (the pattern of tests/e2e), on
ephemeral loopback ports written into a real config file; the engine itself is started, stopped and
killed only by the runbooks' own commands, run verbatim by bash. Every process the runbooks start is
found by the test's unique config path in its command line and ended by pid at teardown, and the
instance's shared-memory segments are unlinked, also when a test fails.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastmm.config import Config
from fastmm.sim import venues as sim_venues
from fastmm.sim.background import SimThread

OPS = Path(__file__).resolve().parents[2] / "ops"
BIN = Path(sys.executable).parent
MARKER = re.compile(r"^# (tested: (?P<name>[a-z0-9-]+)|not run by tests: (?P<why>systemd|changes the host))$")
_BLOCK = re.compile(r"^```sh\n(?P<body>.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    file: str
    name: str | None        # tested blocks have a name
    why: str | None         # blocks not run say why
    text: str


def runbook_blocks() -> list[Block]:
    out = []
    for md in sorted(OPS.glob("*.md")):
        for m in _BLOCK.finditer(md.read_text()):
            body = m.group("body")
            first = body.splitlines()[0] if body else ""
            mk = MARKER.match(first)
            out.append(Block(md.name, mk.group("name") if mk else None, mk.group("why") if mk else None,
                             body))
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def paper_secrets() -> dict[str, str]:
    return {
        "FASTMM_TRUEX_API_KEY_ID": "ops-key-" + secrets.token_hex(4),
        "FASTMM_TRUEX_API_SECRET": secrets.token_urlsafe(24),
        "FASTMM_TRUEX_CLIENT_ID": sim_venues.PAPER_TRUEX_CLIENT_ID,
        "FASTMM_KRAKEN_API_KEY": sim_venues.PAPER_KRAKEN_KEY,
        "FASTMM_KRAKEN_API_SECRET": base64.b64encode(secrets.token_bytes(64)).decode(),
    }


def write_secrets(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)


@dataclass
class Paper:
    """The venues, the config and secrets files, and a runner for runbook blocks."""

    root: Path
    config_path: Path
    secrets_path: Path
    cfg: Config
    sims: SimThread
    venues: sim_venues.VenueSet
    env: dict[str, str]
    blocks: dict[tuple[str, str], Block]
    ran: set[tuple[str, str]] = field(default_factory=set)

    @property
    def instance(self) -> str:
        return self.cfg.instance.name

    @property
    def state(self) -> Path:
        return self.cfg.state_path

    def run(self, file: str, name: str, timeout: float = 90.0, check: bool = True) -> str:
        """Run one tested block verbatim after the conventions' env block; returns stdout + stderr."""
        block = self.blocks[(file, name)]
        script = "set -euo pipefail\n" + self.blocks[("README.md", "env")].text + "\n" + block.text
        t0 = time.monotonic()
        p = subprocess.run(["bash", "-c", script], cwd=self.root, env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        self.ran.add((file, name))
        print(f"BLOCK {file} {name} {time.monotonic() - t0:.1f}s")
        self.ran.add(("README.md", "env"))
        out = p.stdout + p.stderr
        if check and p.returncode != 0:
            log = Path(self.env["FASTMM_LOG"])
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise AssertionError(f"{file} [{name}] exited {p.returncode}:\n{out}\n--- engine log tail ---\n{tail}")
        return out

    def fastmm(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "fastmm"), *args], cwd=self.root, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def owner(self) -> str:
        return self.cfg.truex.order_entry.sender_comp_id

    def sim_live(self) -> set[str]:
        """ClOrdIDs of our orders resting on the TrueX simulator (read in its own thread)."""
        ex = self.venues.truex.exchange
        return self.sims.call(lambda: {o.last_cl_ord_id for o in ex.engine.live_orders(self.owner())})

    def our_pids(self) -> list[int]:
        """Every live process started with this test's config path (the engine, its children, metrics)."""
        needle = str(self.config_path).encode()
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if needle in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
        return pids

    def end_processes(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.our_pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 15
            while self.our_pids() and time.monotonic() < deadline:
                time.sleep(0.05)

    def wait_for(self, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.05)


