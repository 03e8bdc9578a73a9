"""Every command of the runbooks in ops/, run verbatim against a paper session (see ops/README.md).

The tests run in file order on one set of venue simulators; each starts from a stopped engine and
leaves it stopped. The last test fails if any `# tested` block was never run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from ops_helpers import BIN, OPS, Paper, free_port, paper_secrets, runbook_blocks, write_secrets

from fastmm.config import load_config

RUNBOOKS = {"start.md", "stop.md", "kill-switch.md", "venue-down.md", "crashed-process.md", "host-crash.md",
            "rotate-secrets.md", "host-tuning.md"}


def _start(p: Paper) -> str:
    p.run("start.md", "preflight")
    p.run("start.md", "start-manual")
    return p.run("start.md", "verify")


def _stop(p: Paper) -> None:
    p.run("stop.md", "stop")
    p.run("stop.md", "check")


def test_every_shell_block_is_marked_and_names_real_units() -> None:
    blocks = runbook_blocks()
    assert {b.file for b in blocks} >= RUNBOOKS | {"README.md"}
    unmarked = [(b.file, b.text.splitlines()[:1]) for b in blocks if b.name is None and b.why is None]
    assert unmarked == [], "every ```sh block starts with '# tested: NAME' or '# not run by tests: WHY'"
    names = [(b.file, b.name) for b in blocks if b.name]
    assert len(names) == len(set(names)), "tested block names are unique per runbook"
    for b in blocks:
        for unit in re.findall(r"systemctl (?:start|stop|restart|kill(?: -s \w+)?|enable --now) ([\w\s.-]+)",
                               b.text):
            for name in unit.split():
                if name.startswith(("fastmm", "fastmm-metrics")):
                    assert (OPS / f"{name}.service").exists(), f"{b.file}: no unit ops/{name}.service"
        if b.why == "systemd":
            assert "systemctl" in b.text or "journalctl" in b.text


def test_start_status_metrics_and_planned_stop(stopped: Paper) -> None:
    p = stopped
    screen = _start(p)
    assert f"fastmm {p.instance}  phase QUOTING" in screen
    for part in ("procs ", "feeds ", "ref.coinbase", "ref.kraken", "truex.book", "quotes   bid ",
                 "position ", "pnl ", "latency  order_to_ack p50"):
        assert part in screen, f"status shows {part!r}:\n{screen}"
    p.wait_for(lambda: json.loads(p.fastmm("status", "-c", str(p.config_path), "--json").stdout)
               .get("position", {}).get("live_orders", 0) >= 2, 20, "quotes on the venue")
    st = json.loads(p.fastmm("status", "-c", str(p.config_path), "--json").stdout)
    assert st["running"] and st["phase"] == "QUOTING"
    assert {"feed-coinbase", "feed-kraken", "feed-truex-md", "quoter", "hedger"} <= set(st["processes"])
    assert all(b["usable"] for b in st["books"].values()) and set(st["books"]) == {
        "ref.coinbase", "ref.kraken", "truex.book"}
    pos = st["position"]
    assert pos["quote_bid"] > 0 and pos["quote_ask"] > pos["quote_bid"]
    assert {"btc", "pnl", "realized", "unrealized", "fees", "truex_fills"} <= set(pos)
    assert st["journal_tail"]["round_trips"]["order_to_ack"]["count"] >= 2
    assert all(b["recv_to_pub_us"] is not None for b in st["books"].values())
    p.run("start.md", "metrics")
    port = p.env["FASTMM_METRICS_PORT"]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for name in ("fastmm_up 1.0", 'fastmm_phase{phase="QUOTING"} 1.0', "fastmm_position_btc ",
                 'fastmm_pnl_pyusd{component="pnl"}', "fastmm_fills_total{venue=\"truex\"}",
                 "fastmm_order_messages_per_second ", "fastmm_roundtrip_order_to_ack_seconds_bucket",
                 'fastmm_book_usable{book="ref.coinbase"} 1.0'):
        assert name in text, f"metrics have {name!r}"
    _stop(p)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "fastmm_up 0.0" in text, "the exporter outlives the engine and says it is down"
    out = p.run("stop.md", "report")
    assert "fastmm report:" in out
    for f in ("session.png", "session.html", "summary.json"):
        assert (p.state / "session-report" / f).stat().st_size > 0
    rep = json.loads((p.state / "report.json").read_text())
    assert rep["stop_reason"] == "SIGTERM" and rep["timed_out_steps"] == []
    # The report rebuilt from the journal alone agrees with the engine's own final numbers, exactly.
    summ = json.loads((p.state / "session-report" / "summary.json").read_text())
    pos = rep["position"]
    assert round(summ["rebuilt"]["position_btc"] * 10_000) == pos["position_lots"]
    assert round(summ["rebuilt"]["realized"] * 1e8) == pos["realized_e8"]
    assert round(summ["rebuilt"]["fees"] * 1e8) == pos["fees_e8"]
    assert summ["fills"] == {"truex": pos["truex_fills"], "kraken": pos["hedge_fills"]}
    assert summ["stage_latency_us"]["wake_to_decide"]["count"] > 0
    html = (p.state / "session-report" / "session.html").read_text()
    assert "data:image/png;base64," in html and "Engine's own final report" in html
    # After the stop, status shows the last run's report and the quoter's latency table.
    out = p.fastmm("status", "-c", str(p.config_path))
    assert out.returncode == 1 and "last run stopped: SIGTERM" in out.stdout and "wake_to_decide p50" in out.stdout


def test_crashed_process_drill(stopped: Paper) -> None:
    p = stopped
    _start(p)
    assert "quoter[" in p.run("crashed-process.md", "diagnose")
    out = p.run("crashed-process.md", "drill", timeout=120)
    assert "restarts 1" in out
    _stop(p)


def test_kill_switch_hard_kill_then_cancel_from_the_journal(stopped: Paper) -> None:
    p = stopped
    _start(p)
    p.wait_for(lambda: len(p.sim_live()) >= 2, 30, "quotes resting on the TrueX simulator")
    p.run("kill-switch.md", "kill")
    assert p.our_pids() == [], "every process of the instance is gone"
    left = p.sim_live()
    assert left, "a hard kill leaves the quotes on TrueX (no cancel on disconnect)"
    out = p.run("kill-switch.md", "cancel-orders")
    assert "NOT CONFIRMED 0" in out, out
    assert p.sim_live() == set(), "nothing of ours rests on TrueX after cancel-orders"
    again = p.run("kill-switch.md", "cancel-orders")
    assert "lists no order that may be live" in again, "a second pass finds nothing left to cancel"
    out = p.run("kill-switch.md", "position")
    assert re.search(r"position [+-]\d+\.\d{4} BTC", out)


def test_kill_switch_level_one_stop(stopped: Paper) -> None:
    p = stopped
    _start(p)
    p.run("kill-switch.md", "stop")
    assert p.our_pids() == []
    assert p.sim_live() == set(), "the stop sequence cancelled every quote"


def test_host_crash_recovery(stopped: Paper) -> None:
    p = stopped
    _start(p)
    p.wait_for(lambda: len(p.sim_live()) >= 2, 30, "quotes resting on the TrueX simulator")
    before = p.sim_live()
    # The crash: every process of the instance dies at once; shared memory and the journal stay.
    for pid in p.our_pids():
        os.kill(pid, signal.SIGKILL)
    p.wait_for(lambda: not p.our_pids(), 10, "the crashed processes to go")
    assert p.fastmm("status", "-c", str(p.config_path)).stdout.startswith(
        f"instance {p.instance}: not running: segments of a dead supervisor")
    p.run("host-crash.md", "host")
    out = p.run("host-crash.md", "state")
    assert "fastmm report:" in out
    out = p.run("host-crash.md", "cancel-orders")
    assert "NOT CONFIRMED 0" in out
    assert not (before & p.sim_live())
    out = p.run("host-crash.md", "restart")
    assert "phase QUOTING" in out
    _stop(p)


def test_rotate_secrets(stopped: Paper) -> None:
    p = stopped
    _start(p)
    old = dict(line.split("=", 1) for line in p.secrets_path.read_text().splitlines())
    new = {**old, **{k: v for k, v in paper_secrets().items() if k.startswith("FASTMM_TRUEX_API")}}
    new_path = p.root / "secrets.env.new"
    write_secrets(new_path, new)
    p.env["FASTMM_SECRETS_NEW"] = str(new_path)
    try:
        out = p.run("rotate-secrets.md", "check-new")
        assert "truex.api_secret" in out and "<set>" in out and new["FASTMM_TRUEX_API_SECRET"] not in out
        # The venue now knows the new key only: the engine logs on again only with the new file.
        truex = p.venues.truex
        p.sims.call(lambda: setattr(truex, "settings", dataclasses.replace(
            truex.settings, api_key_id=new["FASTMM_TRUEX_API_KEY_ID"],
            api_secret=new["FASTMM_TRUEX_API_SECRET"])))
        p.run("rotate-secrets.md", "swap")
        assert p.secrets_path.read_text() == new_path.read_text()
        assert oct(p.secrets_path.stat().st_mode & 0o777) == "0o600"
        p.run("rotate-secrets.md", "start-manual")
        p.run("rotate-secrets.md", "cleanup")
        assert not Path(str(p.secrets_path) + ".old").exists()
        for pid in p.our_pids():
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert new["FASTMM_TRUEX_API_SECRET"].encode() not in argv, "a secret never shows in argv"
        _stop(p)
    finally:
        p.env.pop("FASTMM_SECRETS_NEW", None)


def _unit(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_systemd_units_run_against_the_paper_session(stopped: Paper) -> None:
    """What systemd would run: ExecStartPre, then ExecStart with the EnvironmentFile's variables, then
    the stop signal to the main process (KillMode=mixed)."""
    p = stopped
    unit = _unit(OPS / "fastmm.service")
    assert unit["EnvironmentFile"] == ["/etc/fastmm/secrets.env"] and unit["KillMode"] == ["mixed"]
    assert not any("SECRET" in line or "API_KEY" in line for line in unit["ExecStart"] + unit["ExecStartPre"])

    def argv(line: str) -> list[str]:
        words = shlex.split(line.replace("/etc/fastmm/fastmm.toml", str(p.config_path)))
        assert words[0] == "/opt/fastmm/.venv/bin/fastmm"
        return [str(BIN / "fastmm"), *words[1:]]

    env = dict(p.env)
    for line in p.secrets_path.read_text().splitlines():
        k, v = line.split("=", 1)
        env[k] = v
    for line in unit["ExecStartPre"]:
        assert subprocess.run(argv(line), env=env, cwd=p.root, timeout=30).returncode == 0
    log = open(p.root / "unit.log", "ab")  # noqa: SIM115 - the children write to it; closed in finally
    main = subprocess.Popen(argv(unit["ExecStart"][0]), env=env, cwd=p.root, stdout=log, stderr=log)
    metrics_unit = _unit(OPS / "fastmm-metrics.service")
    assert "EnvironmentFile" not in metrics_unit, "the exporter needs no secret"
    port = free_port()
    m_argv = argv(metrics_unit["ExecStart"][0].replace("--port 9464", f"--port {port}"))
    metrics = subprocess.Popen(m_argv, env=p.env, cwd=p.root, stdout=log, stderr=log)
    try:
        assert p.fastmm("ops", "wait", "-c", str(p.config_path), "--phase", "QUOTING", "--timeout", "60",
                        timeout=70).returncode == 0
        deadline = time.monotonic() + 20
        text = ""
        while 'fastmm_phase{phase="QUOTING"} 1.0' not in text and time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                time.sleep(0.2)
        assert 'fastmm_phase{phase="QUOTING"} 1.0' in text
        main.send_signal(getattr(signal, unit["KillSignal"][0]))
        assert main.wait(timeout=float(unit["TimeoutStopSec"][0])) == 0
        rep = json.loads((p.state / "report.json").read_text())
        assert rep["stop_reason"] == "SIGTERM" and rep["timed_out_steps"] == []
    finally:
        for proc in (main, metrics):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        log.close()


def test_venue_down(stopped: Paper) -> None:
    p = stopped
    _start(p)
    coinbase = p.venues.coinbase
    assert coinbase is not None
    asyncio.run_coroutine_threadsafe(coinbase.stop(), p.sims.loop).result(30)
    p.wait_for(lambda: "ref.coinbase" in (o := p.fastmm("status", "-c", str(p.config_path)).stdout)
               and re.search(r"ref\.coinbase \S+ STALE", o) is not None, 15, "coinbase stale in status")
    out = p.run("venue-down.md", "diagnose")
    assert "phase QUOTING" in out, "quoting goes on from Kraken alone"
    assert re.search(r"ref\.coinbase \S+ STALE", out) and re.search(r"ref\.kraken \S+ ok", out)
    assert "coinbase: no top of book within 5 s" in p.run("venue-down.md", "probe-coinbase", timeout=30)
    out = p.run("venue-down.md", "probe-kraken", timeout=30)
    assert "kraken: no top of book" not in out
    _stop(p)


def test_every_tested_block_ran(paper: Paper) -> None:
    host = {(b.file, b.name) for b in runbook_blocks() if b.file == "host-tuning.md" and b.name}
    for key in host:
        out = paper.run(*key)            # read-only: runs on any host
        assert "transparent huge pages" in out
    missing = sorted(set(paper.blocks) - paper.ran)
    assert missing == [], f"tested runbook blocks never run: {missing}"


def test_production_config_passes_config_check() -> None:
    path = OPS / "fastmm.production.toml"
    cfg = load_config(path, {})
    assert cfg.coinbase.ws_url == "wss://advanced-trade-ws.coinbase.com"
    assert cfg.kraken.rest_url == "https://api.kraken.com" and cfg.kraken.ws_url.startswith("wss://ws.kraken.com")
    assert cfg.truex.order_entry.port == 19484 and cfg.truex.market_data.port == 20484
    assert not cfg.truex.order_entry.reset_on_logon and cfg.journal.durability == "fsync"
    p = subprocess.run([str(BIN / "fastmm"), "config", "check", "-c", str(path)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and p.stdout.strip().endswith(": ok"), p.stdout + p.stderr
