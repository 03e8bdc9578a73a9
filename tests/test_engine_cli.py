"""The operator commands as real processes: `fastmm sim`, and `fastmm paper` watched with `fastmm status`
and ended with `fastmm stop`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import websockets

from fastmm.shm import list_segments

FASTMM = [sys.executable, "-m", "fastmm.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fastmm_sim_serves_every_venue_and_stops_on_sigterm(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(6)]
    env = {**os.environ, "FASTMM_TRUEX__ORDER_ENTRY__PORT": str(ports[0]),
           "FASTMM_TRUEX__MARKET_DATA__PORT": str(ports[1]),
           "FASTMM_COINBASE__WS_URL": f"ws://127.0.0.1:{ports[2]}",
           "FASTMM_KRAKEN__REST_URL": f"http://127.0.0.1:{ports[3]}",
           "FASTMM_KRAKEN__WS_URL": f"ws://127.0.0.1:{ports[4]}", "FASTMM_INSTANCE__LOG_LEVEL": "WARNING",
           "FASTMM_TRUEX__REST_URL": f"http://127.0.0.1:{ports[5]}"}
    proc = subprocess.Popen([*FASTMM, "sim", "--max-lines", "5000", "--speed", "1", "--seed", "7"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(5)]
        assert any(str(ports[0]) in x and x.startswith("truex order entry") for x in lines), lines
        assert any(f"ws://127.0.0.1:{ports[2]}" in x for x in lines), lines

        async def one_message() -> dict:
            async with websockets.connect(f"ws://127.0.0.1:{ports[2]}") as ws:
                await ws.send(orjson.dumps({"type": "subscribe", "product_ids": ["BTC-USD"],
                                            "channel": "level2"}).decode())
                while True:
                    msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                    if msg.get("channel") == "l2_data":
                        return msg

        msg = asyncio.run(one_message())
        assert msg["events"][0]["type"] == "snapshot"
        with socket.create_connection(("127.0.0.1", ports[0]), timeout=5):
            pass
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def test_paper_status_and_stop(tmp_path: Path) -> None:
    instance = f"cli{os.getpid()}"
    env = {**os.environ, "FASTMM_INSTANCE__NAME": instance, "FASTMM_INSTANCE__LOG_LEVEL": "WARNING",
           "FASTMM_QUOTING__BASE_SPREAD_BPS": "4"}
    log_path = tmp_path / "paper.out"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed in finally; a pipe nobody reads would fill up
    paper = subprocess.Popen([*FASTMM, "paper", "--duration", "120", "--speed", "2", "--quiet"], env=env,
                             stdout=log_file, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        status: dict = {}
        while time.monotonic() < deadline:
            out = subprocess.run([*FASTMM, "status", "--json"], env=env, capture_output=True, text=True,
                                 cwd=tmp_path, timeout=30)
            if out.returncode == 0:
                status = json.loads(out.stdout)
                if status.get("phase") == "QUOTING" and status.get("position", {}).get("live_orders"):
                    break
            assert paper.poll() is None, log_path.read_text()
            time.sleep(0.5)
        assert status.get("phase") == "QUOTING", status
        assert status["processes"]["quoter"]["logged_on"] and status["books"]["ref.coinbase"]["usable"]
        text = subprocess.run([*FASTMM, "status"], env=env, capture_output=True, text=True, cwd=tmp_path,
                              timeout=30).stdout
        assert "phase QUOTING" in text and "quotes" in text
        stop = subprocess.run([*FASTMM, "stop", "--wait", "60"], env=env, capture_output=True, text=True,
                              cwd=tmp_path, timeout=90)
        assert stop.returncode == 0, stop.stderr + log_path.read_text()[-3000:]
        paper.wait(30)
        out = log_path.read_text()
        assert paper.returncode == 0, out
        assert "final report" in out and "stopped: SIGTERM" in out and "markouts" in out
        assert list_segments(instance) == []
        after = subprocess.run([*FASTMM, "status"], env=env, capture_output=True, text=True, cwd=tmp_path,
                               timeout=30)
        assert after.returncode == 1 and "not running" in after.stdout
    finally:
        if paper.poll() is None:
            paper.kill()
            paper.wait(10)
        log_file.close()
