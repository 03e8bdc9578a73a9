"""`fastmm fix connect` as a real process against the QuickFIX acceptor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conftest import KEY_ID, SECRET, QfPeer


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMM_")}
    env.update(FASTMM_INSTANCE__STATE_DIR=str(tmp_path / "state"), **extra)
    return env


def run_until_then_term(proc: subprocess.Popen[str], marker: str, timeout_s: float = 15.0) -> list[str]:
    """Read ``proc``'s stdout until a line has ``marker``, then SIGTERM it: it must exit 0 (a logout).
    Killed if anything fails; returns the lines read."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        end = time.monotonic() + timeout_s
        while not any(marker in ln for ln in lines):
            assert time.monotonic() < end, lines
            assert proc.poll() is None, lines
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
    return lines


def test_connect_prints_messages_and_logs_out_on_sigterm(qf_peer: Callable[..., QfPeer], tmp_path: Path) -> None:
    peer = qf_peer(["oe:TRUEX_SIM_OE:FASTMM_OE"])
    env = _env(tmp_path, FASTMM_TRUEX_API_KEY_ID=KEY_ID, FASTMM_TRUEX_API_SECRET=SECRET)
    cmd = [sys.executable, "-m", "fastmm.cli", "fix", "connect", "--host", "127.0.0.1", "--port", str(peer.port),
           "--sender", "FASTMM_OE", "--target", "TRUEX_SIM_OE", "--heartbeat", "1", "--reset"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = run_until_then_term(proc, "IN  Heartbeat(0)")    # logged on and kept up
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    out = "".join(lines)
    assert "OUT Logon(A)" in out and "Password(554)=***" in out and "HeartBtInt(108)=1" in out
    assert "IN  Logon(A)" in out and "logged on" in out
    assert "OUT Logout(5)" in out and "IN  Logout(5)" in out and "logged out (by us)" in out
    assert SECRET not in out and SECRET not in err
    peer.wait_blocking(lambda e: e["ev"] == "logout", 5)
    assert peer.find(lambda e: e["ev"] == "auth_ok") is not None
    assert (tmp_path / "state" / "default" / "fix" / "FASTMM_OE-TRUEX_SIM_OE.seq").is_file()


def test_connect_without_credentials_is_a_config_error(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "fastmm.cli", "fix", "connect", "--port", "1"]
    r = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "FASTMM_TRUEX_API_KEY_ID" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_connect_over_tls_from_config_and_a_certificate_that_does_not_verify(
        qf_peer: Callable[..., QfPeer], tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tls_certs import make_certs

    certs = make_certs(tmp_path / "tls")
    peer = qf_peer(["oe:TRUEX_SIM_OE:FASTMM_OE"], tls=f"{certs.server_cert},{certs.server_key}")
    cmd = [sys.executable, "-m", "fastmm.cli", "fix", "connect", "--host", "127.0.0.1", "--port", str(peer.port),
           "--sender", "FASTMM_OE", "--target", "TRUEX_SIM_OE", "--heartbeat", "1", "--reset"]
    base = dict(FASTMM_TRUEX_API_KEY_ID=KEY_ID, FASTMM_TRUEX_API_SECRET=SECRET,
                FASTMM_TRUEX__ORDER_ENTRY__TLS__ENABLED="true", FASTMM_TRUEX__ORDER_ENTRY__TLS__SERVER_NAME="localhost")
    bad = subprocess.run(cmd, env=_env(tmp_path, **base, FASTMM_TRUEX__ORDER_ENTRY__TLS__CA_FILE=str(certs.other_ca)),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "TLS certificate of 'localhost' did not verify" in bad.stdout + bad.stderr
    assert "OUT Logon(A)" not in bad.stdout
    assert peer.find(lambda e: e["ev"] == "in") is None
    proc = subprocess.Popen(cmd, env=_env(tmp_path, **base, FASTMM_TRUEX__ORDER_ENTRY__TLS__CA_FILE=str(certs.ca)),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    run_until_then_term(proc, "IN  Logon(A)")
    peer.wait_blocking(lambda e: e["ev"] == "auth_ok", 5)
