"""Helpers of the operations tests: the runbooks' shell blocks as runnable steps, a paper session, the
systemd stand-ins on PATH, and a fake host tree for the host-tuning commands.

The venue simulators run in a background thread of the test process (the pattern of tests/e2e), on
ephemeral loopback ports written into a real config file; the engine itself is started, stopped and
killed only by the runbooks' own commands, run verbatim by bash. Every process the runbooks start is
found by the test's unique config path in its command line and ended by pid at teardown, and the
instance's shared-memory segments are unlinked, also when a test fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastmm.config import Config
from fastmm.sim import venues as sim_venues
from fastmm.sim.background import SimThread

OPS = Path(__file__).resolve().parents[2] / "ops"
BIN = Path(sys.executable).parent
STANDIN = Path(__file__).resolve().parent / "systemd_standin.py"
MARKER = re.compile(r"^# tested: (?P<name>[a-z0-9-]+)$")
_BLOCK = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    file: str
    name: str | None        # every block must have one: `# tested: NAME` on its first line
    text: str
    lang: str = "sh"


def runbook_blocks() -> list[Block]:
    """Every fenced block of ops/*.md with its language, so the test can refuse a command block (no
    language, sh, bash, shell, console) that is not a tested ```sh block; a TOML sample may stay."""
    out = []
    for md in sorted(OPS.glob("*.md")):
        for m in _BLOCK.finditer(md.read_text()):
            body = m.group("body")
            first = body.splitlines()[0] if body else ""
            mk = MARKER.match(first)
            out.append(Block(md.name, mk.group("name") if mk else None, body, m.group("lang")))
    return out


def install_standins(bin_dir: Path) -> None:
    """``systemctl`` and ``journalctl`` on PATH, run by the test's Python (see systemd_standin.py)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("systemctl", "journalctl"):
        path = bin_dir / tool
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" {tool} "$@"\n')
        path.chmod(0o755)


def standin_env(root: Path, config: Path, secrets_path: Path, metrics_port: int) -> dict[str, str]:
    """Where the stand-ins find the units (ops/ as shipped), keep their state, and how the units'
    production paths map onto the test's files."""
    mapping = [["/opt/fastmm/.venv/bin/fastmm", str(BIN / "fastmm")],
               ["/etc/fastmm/fastmm.toml", str(config)],
               ["/etc/fastmm/secrets.env", str(secrets_path)],
               ["/var/lib/fastmm", str(root)],
               ["/var/log/fastmm", str(root / "log")],
               ["--port 9464", f"--port {metrics_port}"]]
    return {"FASTMM_TEST_SYSTEMD_UNITS": str(OPS), "FASTMM_TEST_SYSTEMD_STATE": str(root / "systemd"),
            "FASTMM_TEST_SYSTEMD_MAP": json.dumps(mapping)}


def host_tree(root: Path, *, cpus: int = 16, tuned: bool = False, isolated: str = "2-5") -> Path:
    """A tree shaped like a host's /sys, /proc and /etc for ``fastmm ops host-check`` and ``host-tune``
    (``FASTMM_HOST_ROOT``): untuned as a fresh install (powersave, THP always, every IRQ on every CPU,
    irqbalance running without a ban list, no udev rule, the clock not synchronized yet), or tuned."""
    all_cpus = f"0-{cpus - 1}"
    cpu = root / "sys/devices/system/cpu"
    cpu.mkdir(parents=True)
    (cpu / "present").write_text(all_cpus + "\n")
    (cpu / "isolated").write_text(isolated + "\n" if tuned else "\n")
    for c in range(cpus):
        d = cpu / f"cpu{c}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text("performance\n" if tuned else "powersave\n")
    thp = root / "sys/kernel/mm/transparent_hugepage"
    thp.mkdir(parents=True)
    (thp / "enabled").write_text("always madvise [never]\n" if tuned else "[always] madvise never\n")
    (thp / "defrag").write_text("always defer defer+madvise madvise [never]\n" if tuned else
                                "always defer defer+madvise [madvise] never\n")
    (root / "proc").mkdir()
    (root / "proc/cmdline").write_text(f"BOOT_IMAGE=/vmlinuz isolcpus={isolated}\n" if tuned else
                                       "BOOT_IMAGE=/vmlinuz root=/dev/sda1\n")
    (root / "proc/irq").mkdir()
    (root / "proc/irq/default_smp_affinity").write_text(f"{(1 << cpus) - 1:x}\n")
    for irq, where in (("0", "0"), ("24", "0-1"), ("25", all_cpus), ("26", "3"), ("120", all_cpus)):
        (root / "proc/irq" / irq).mkdir()
        (root / "proc/irq" / irq / "smp_affinity_list").write_text(("0-1" if tuned else where) + "\n")
    (root / "proc/4242").mkdir()
    (root / "proc/4242/comm").write_text("sshd\n" if tuned else "irqbalance\n")
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/irqbalance").write_text('#IRQBALANCE_ONESHOT=\nIRQBALANCE_ARGS=""\n')
    (root / "clock_synced").write_text("1\n" if tuned else "0\n")
    return root


def set_clock_synced(root: Path, synced: bool) -> None:
    """Flip the fake host's clock state atomically: a reader polling the file must never find it empty
    (write_text truncates first), which ``fastmm ops wait --clock-synced`` rightly reads as 'cannot tell'."""
    tmp = root / ".clock_synced.tmp"
    tmp.write_text("1\n" if synced else "0\n")
    os.replace(tmp, root / "clock_synced")


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
    systemd_state: Path | None = None       # the stand-ins' managers carry it in their command line

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

    @contextlib.contextmanager
    def env_set(self, **values: str) -> Iterator[None]:
        """Extra variables for the blocks run inside the ``with`` (as an operator's shell would have)."""
        old = {k: self.env.get(k) for k in values}
        self.env.update(values)
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    self.env.pop(k, None)
                else:
                    self.env[k] = v

    def tool(self, *argv: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """A command as the runbooks' shell finds it on PATH (the systemd stand-ins first)."""
        return subprocess.run(list(argv), cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

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
        """Every live process started with this test's config path (the engine, its children, metrics) or
        by the systemd stand-ins (their unit managers)."""
        needles = [str(self.config_path).encode()]
        if self.systemd_state is not None:
            needles.append(str(self.systemd_state).encode())
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                cmdline = (d / "cmdline").read_bytes()
                if any(n in cmdline for n in needles):
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


