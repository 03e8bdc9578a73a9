"""Every command of the runbooks in ops/, run verbatim against a paper session (see ops/README.md).

The tests run in file order on one set of venue simulators; each starts from a stopped engine and
leaves it stopped. systemctl and journalctl are the stand-ins of systemd_standin.py (first on PATH); the
host-tuning commands run against a fake host tree. The first test fails if a block is not a tested
```sh block, the last one if any tested block was never run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from ops_helpers import (
    BIN,
    OPS,
    Paper,
    host_tree,
    paper_secrets,
    runbook_blocks,
    set_clock_synced,
    write_secrets,
)
from prometheus_client.parser import text_string_to_metric_families

from fastmm.config import load_config
from fastmm.journal import read_journal
from fastmm.ops.cpus import parse_cpu_list

RUNBOOKS = {"start.md", "stop.md", "kill-switch.md", "venue-down.md", "crashed-process.md", "host-crash.md",
            "rotate-secrets.md", "host-tuning.md", "disk-full.md"}
STAGES = ("recv_to_pub", "pub_to_wake", "wake_to_decide", "decide_to_sent")


def _start(p: Paper, how: str = "start-manual") -> str:
    p.run("start.md", "preflight")
    p.run("start.md", how)
    return p.run("start.md", "verify")


def _stop(p: Paper, how: str = "stop") -> None:
    p.run("stop.md", how)
    p.run("stop.md", "check")


def _status(p: Paper) -> dict[str, Any]:
    return json.loads(p.fastmm("status", "-c", str(p.config_path), "--json").stdout)


def _scrape(p: Paper) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    port = p.env["FASTMM_METRICS_PORT"]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _unit_state(p: Paper, unit: str) -> str:
    return p.tool("systemctl", "is-active", unit).stdout.strip()


def test_every_block_is_tested_and_names_real_units() -> None:
    blocks = runbook_blocks()
    assert {b.file for b in blocks} >= RUNBOOKS | {"README.md"}
    shell = [b for b in blocks if b.lang in ("", "sh", "bash", "shell", "console") or b.name]
    untested = [(b.file, b.lang, b.text.splitlines()[:1]) for b in shell if b.name is None or b.lang != "sh"]
    assert untested == [], "every command block is ```sh and starts with '# tested: NAME'"
    names = [(b.file, b.name) for b in shell]
    assert len(names) == len(set(names)), "block names are unique per runbook"
    for b in shell:
        for line in b.text.splitlines():
            m = re.match(r"\s*(systemctl|journalctl)\s+(.*)", line)
            if not m:
                continue
            units = re.findall(r"(?:-u\s+)?\b(fastmm[\w.-]*)", m.group(2))
            assert units, f"{b.file} [{b.name}]: {line!r} names a fastmm unit"
            for name in units:
                name = name.removesuffix(".service")
                assert (OPS / f"{name}.service").exists(), f"{b.file}: no unit ops/{name}.service"


def test_start_status_live_latency_metrics_and_planned_stop(stopped: Paper) -> None:
    p = stopped
    screen = _start(p)
    assert f"fastmm {p.instance}  phase QUOTING" in screen
    for part in ("procs ", "feeds ", "ref.coinbase", "ref.kraken", "truex.book", "quotes   bid ",
                 "position ", "pnl ", "latency  order_to_ack p50"):
        assert part in screen, f"status shows {part!r}:\n{screen}"
    p.wait_for(lambda: _status(p).get("position", {}).get("live_orders", 0) >= 2, 20, "quotes on the venue")
    st = _status(p)
    assert st["running"] and st["phase"] == "QUOTING"
    assert {"feed-coinbase", "feed-kraken", "feed-truex-md", "quoter", "hedger"} <= set(st["processes"])
    assert all(b["usable"] for b in st["books"].values()) and set(st["books"]) == {
        "ref.coinbase", "ref.kraken", "truex.book"}
    pos = st["position"]
    assert pos["quote_bid"] > 0 and pos["quote_ask"] > pos["quote_bid"]
    assert {"btc", "pnl", "realized", "unrealized", "fees", "truex_fills"} <= set(pos)
    assert st["journal_tail"]["round_trips"]["order_to_ack"]["count"] >= 2
    assert all(b["recv_to_pub_us"] is not None for b in st["books"].values())

    # The quoter's own per-stage latency, live from shared memory while it runs.
    p.wait_for(lambda: all(_status(p).get("live_latency", {}).get("run", {}).get(s, {}).get("count", 0) > 0
                           for s in STAGES), 20, "live latency of every quoter stage")
    live = _status(p)["live_latency"]
    assert live["age_ms"] < 5000 and 0 < live["run_s"] < 120 and live["window_s"] > 0
    for s in STAGES:
        run = live["run"][s]
        assert 0 < run["p50_us"] <= run["p99_us"] <= run["p999_us"] <= run["max_us"], (s, run)
    assert live["window"]["wake_to_decide"]["count"] > 0
    before = live["run"]["wake_to_decide"]["count"]
    p.wait_for(lambda: _status(p)["live_latency"]["run"]["wake_to_decide"]["count"] > before, 10,
               "a newer latency snapshot (the quoter refreshes it about once a second)")
    text = p.fastmm("status", "-c", str(p.config_path)).stdout
    assert re.search(r"^stage    wake_to_decide +last \d+s p50 [\d.]+ p99 [\d.]+ p99\.9 [\d.]+ max [\d.]+ us n [1-9]",
                     text, re.M), text

    p.run("start.md", "metrics-manual")
    p.run("start.md", "metrics")
    m = _scrape(p)
    for key in (("fastmm_up", ()), ("fastmm_phase", (("phase", "QUOTING"),)), ("fastmm_stage_latency_live", ())):
        assert m[key] == 1.0, key
    for name in ("fastmm_position_btc", "fastmm_order_messages_per_second", "fastmm_stage_latency_age_seconds"):
        assert (name, ()) in m
    assert m[("fastmm_pnl_pyusd", (("component", "pnl"),))] is not None
    assert ("fastmm_roundtrip_order_to_ack_seconds_count", ()) in m
    assert m[("fastmm_book_usable", (("book", "ref.coinbase"),))] == 1.0
    for s in STAGES:
        assert m[("fastmm_stage_latency_count", (("stage", s), ("window", "run")))] > 0, s
        p99 = m[("fastmm_stage_latency_seconds", (("quantile", "0.99"), ("stage", s), ("window", "run")))]
        assert 0 < p99 < 10, (s, p99)
        assert ("fastmm_stage_latency_seconds", (("quantile", "0.5"), ("stage", s), ("window", "recent"))) in m
    _stop(p)
    m = _scrape(p)
    assert m[("fastmm_up", ())] == 0.0, "the exporter outlives the engine and says it is down"
    assert m[("fastmm_stage_latency_live", ())] == 0.0, "after the stop: the table of the quoter's exit"
    assert m[("fastmm_stage_latency_count", (("stage", "wake_to_decide"), ("window", "run")))] > 0
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
    marks = [r for r in read_journal(p.state / "journal.jsonl") if r["kind"] == "mark"]
    assert marks and all(r["fair_mid_e8"] > 0 for r in marks), "the quoter journals its fair mid"
    html = (p.state / "session-report" / "session.html").read_text()
    assert "data:image/png;base64," in html and "Engine's own final report" in html
    # After the stop, status shows the last run's report and the quoter's latency table.
    out = p.fastmm("status", "-c", str(p.config_path))
    assert out.returncode == 1 and "last run stopped: SIGTERM" in out.stdout and "wake_to_decide p50" in out.stdout


def test_crashed_process_drill_under_systemd(stopped: Paper) -> None:
    """The production path: the units of ops/ started, watched and stopped by systemctl (stand-in)."""
    p = stopped
    out = _start(p, "start-systemd")
    assert "phase QUOTING" in out
    assert _unit_state(p, "fastmm") == "active" and _unit_state(p, "fastmm-metrics") == "active"
    # The environment systemd builds: the unit's Environment= and EnvironmentFile=, not the caller's.
    sup = int(p.fastmm("ops", "pids", "-c", str(p.config_path), "--process", "supervisor").stdout)
    env = dict(kv.split("=", 1) for kv in Path(f"/proc/{sup}/environ").read_text().split("\0") if "=" in kv)
    assert env["PYTHONUNBUFFERED"] == "1" and env["FASTMM_TRUEX_API_KEY_ID"].startswith("ops-key-")
    assert "FASTMM_CONFIG" not in env and "FASTMM_TEST_SYSTEMD_MAP" not in env
    assert b"API_SECRET" not in Path(f"/proc/{sup}/cmdline").read_bytes()
    p.run("start.md", "metrics")                       # the exporter of fastmm-metrics.service
    assert "quoter[" in p.run("crashed-process.md", "diagnose")
    out = p.run("crashed-process.md", "drill", timeout=120)
    assert re.search(r"quoter was (\d+), now (?!\1)\d+", out), out
    assert "restarts 1" in out
    out = p.run("crashed-process.md", "log")
    assert re.search(r"fastmm\[\d+\]: .*quoter died \(exit -9\)", out), out
    _stop(p, "stop-systemd")
    assert _unit_state(p, "fastmm") == "inactive", "the engine exited 0 on the unit's KillSignal"
    rep = json.loads((p.state / "report.json").read_text())
    assert rep["stop_reason"] == "SIGTERM" and rep["timed_out_steps"] == []


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


def test_host_crash_recovery(stopped: Paper, tmp_path: Path) -> None:
    p = stopped
    _start(p, "start-systemd")
    p.wait_for(lambda: len(p.sim_live()) >= 2, 30, "quotes resting on the TrueX simulator")
    before = p.sim_live()
    # The crash: every process of the unit dies at once; shared memory and the journal stay.
    p.run("kill-switch.md", "kill-systemd")
    assert _unit_state(p, "fastmm") == "failed"
    assert p.fastmm("status", "-c", str(p.config_path)).stdout.startswith(
        f"instance {p.instance}: not running: segments of a dead supervisor")
    with p.env_set(FASTMM_HOST_ROOT=str(host_tree(tmp_path / "host", tuned=True))):
        out = p.run("host-crash.md", "host")
    assert "the kernel clock is synchronized" in out and "OK    clock sync" in out
    out = p.run("host-crash.md", "state")
    assert "fastmm report:" in out
    out = p.run("host-crash.md", "cancel-orders")
    assert "NOT CONFIRMED 0" in out
    assert not (before & p.sim_live())
    out = p.run("host-crash.md", "restart")
    assert "phase QUOTING" in out
    p.run("kill-switch.md", "stop")
    p.run("stop.md", "check")


def test_rotate_secrets(stopped: Paper) -> None:
    p = stopped
    _start(p)
    old = dict(line.split("=", 1) for line in p.secrets_path.read_text().splitlines())
    new = {**old, **{k: v for k, v in paper_secrets().items() if k.startswith("FASTMM_TRUEX_API")}}
    typed = p.root / "typed-by-the-operator.env"     # what the operator types into the editor
    write_secrets(typed, new)
    new_path = p.root / "secrets.env.new"
    with p.env_set(FASTMM_SECRETS_NEW=str(new_path), EDITOR=f"cp {typed}"):
        p.run("rotate-secrets.md", "new-file")
        assert new_path.read_text() == typed.read_text() and oct(new_path.stat().st_mode & 0o777) == "0o600"
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
        p.run("start.md", "start-systemd")            # systemd reads the new EnvironmentFile
        p.run("rotate-secrets.md", "verify")
        p.run("rotate-secrets.md", "cleanup")
    assert not Path(str(p.secrets_path) + ".old").exists()
    for pid in p.our_pids():
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert new["FASTMM_TRUEX_API_SECRET"].encode() not in argv, "a secret never shows in argv"
    p.run("kill-switch.md", "stop-systemd")
    assert _unit_state(p, "fastmm") == "inactive"
    assert p.sim_live() == set(), "the stop sequence cancelled every quote"
    p.run("stop.md", "check")


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
    out = p.run("venue-down.md", "reach-truex")
    assert re.search(r"^ok +truex +order entry \(FIX\) +127\.0\.0\.1:\d+", out, re.M), out
    assert re.search(r"^ok +truex +market data \(FIX\)", out, re.M) and "coinbase" not in out
    # Level one of the kill switch: the planned stop, every quote cancelled and confirmed.
    p.run("kill-switch.md", "stop")
    assert p.our_pids() == []
    assert p.sim_live() == set(), "the stop sequence cancelled every quote"
    p.run("stop.md", "check")


def _reboot(root: Path, cmdline_args: str) -> None:
    """What a reboot does to the fake host: the kernel takes the new command line (the CPUs it isolates
    show in sysfs), sysfs and procfs settings start over untuned, /etc stays, the clock syncs a moment
    after the boot."""
    fresh = host_tree(root.parent / (root.name + "-fresh"))
    (root / "proc/cmdline").write_text(f"BOOT_IMAGE=/vmlinuz root=/dev/sda1 {cmdline_args}\n")
    iso = dict(w.partition("=")[::2] for w in cmdline_args.split())["isolcpus"].split(",")[-1]
    (root / "sys/devices/system/cpu/isolated").write_text(iso + "\n")
    for rel in ("sys/kernel/mm/transparent_hugepage/enabled", "sys/kernel/mm/transparent_hugepage/defrag",
                "proc/irq/default_smp_affinity", *(f"proc/irq/{n}/smp_affinity_list" for n in ("0", "24", "25",
                                                                                            "26", "120")),
                *(f"sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor" for c in range(16))):
        (root / rel).write_text((fresh / rel).read_text())
    (root / "clock_synced").write_text("0\n")
    threading.Timer(1.0, set_clock_synced, (root, True)).start()


def test_disk_full(stopped: Paper, tmp_path: Path) -> None:
    """The state folder on a small tmpfs (the test runs as root) that a file fills to the last byte while
    the engine quotes; the operator's blocks; the space freed by removing that file."""
    p = stopped
    state = p.state
    backup = tmp_path / "state"
    shutil.copytree(state, backup, symlinks=True)
    used_kb = sum(f.stat().st_size for f in backup.rglob("*") if f.is_file()) // 1024
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={used_kb + 8192}k", "tmpfs", str(state)], check=True,
                   timeout=10)
    try:
        subprocess.run(["cp", "-a", f"{backup}/.", str(state)], check=True, timeout=60)
        _start(p)
        p.wait_for(lambda: len(p.sim_live()) >= 2, 30, "quotes resting on the TrueX simulator")
        filler = state / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True, timeout=60)

        def alerted() -> bool:
            with contextlib.suppress(ValueError, KeyError):
                return bool(_status(p)["processes"]["quoter"]["journal_failed"])
            return False

        p.wait_for(alerted, 60, "the journal alert")
        out = p.run("disk-full.md", "diagnose")
        # the engine may have stopped itself already (it takes seconds): the log keeps the alert
        assert "ALERT: cannot write journal" in out and "100%" in out, out
        p.run("disk-full.md", "stopped")
        assert p.sim_live() == set(), "quotes left on TrueX after the engine stopped itself"
        filler.unlink()                                 # the operator frees space
        with p.env_set(FASTMM_MIN_FREE_KB="1024"):
            assert "free: " in p.run("disk-full.md", "space")
        p.run("disk-full.md", "restart")
        out = p.run("disk-full.md", "verify")
        assert "position" in out
        _stop(p)
        ex = p.venues.truex.exchange
        venue = p.sims.call(lambda: {f.exec_id for f in ex.fills if f.owner == p.owner()})
        fills = [r["exec_id"] for r in read_journal(state / p.cfg.journal.file) if r["kind"] == "fill"]
        assert len(fills) == len(set(fills)) and set(fills) == venue
    finally:
        p.end_processes()
        subprocess.run(["cp", "-a", f"{state}/.", str(backup)], check=False, timeout=60)
        subprocess.run(["umount", "-l", str(state)], check=False, timeout=10)
        subprocess.run(["cp", "-a", f"{backup}/.", str(state)], check=False, timeout=60)


def test_host_tuning_on_a_fake_host(paper: Paper, tmp_path: Path) -> None:
    """host-tuning.md on a fresh 16-CPU host (a tree under FASTMM_HOST_ROOT) with the production config's
    pinning: check, plan, apply, reboot with the advised kernel command line, apply again, strict check."""
    p = paper
    root = host_tree(tmp_path / "host")
    prod = str(OPS / "fastmm.production.toml")
    with p.env_set(FASTMM_HOST_ROOT=str(root), FASTMM_CONFIG=prod):
        out = p.run("host-tuning.md", "check")
        assert "WARN  CPU governor" in out and "WARN  transparent huge pages" in out
        plan = p.run("host-tuning.md", "plan")
        for name in ("CPU governor", "transparent huge pages", "IRQ affinity", "irqbalance",
                     "cpu_dma_latency rule"):
            assert re.search(rf"^CHANGE +{name} ", plan, re.M), (name, plan)
        advice = re.search(r"^ADVICE +kernel command line +add (.+)$", plan, re.M)
        assert advice, plan
        args = advice.group(1)
        assert "isolcpus=managed_irq,domain,2-5" in args and "irqaffinity=0-1,6-15" in args
        assert (root / "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor").read_text() == "powersave\n", \
            "the plan writes nothing"
        out = p.run("host-tuning.md", "apply")
        assert "FAILED" not in out and re.search(r"^DONE +IRQ affinity", out, re.M), out
        assert {(root / f"sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor").read_text()
                for c in range(16)} == {"performance"}
        assert (root / "sys/kernel/mm/transparent_hugepage/enabled").read_text() == "never"
        for irq in ("0", "24", "25", "26", "120"):
            cpus = parse_cpu_list((root / f"proc/irq/{irq}/smp_affinity_list").read_text())
            assert cpus and not cpus & {2, 3, 4, 5}, (irq, cpus)
        assert parse_cpu_list((root / "proc/irq/26/smp_affinity_list").read_text()) == {0, 1, *range(6, 16)}
        assert (root / "proc/irq/default_smp_affinity").read_text() == "ffc3"
        assert "IRQBALANCE_BANNED_CPULIST=2-5\n" in (root / "etc/default/irqbalance").read_text()
        assert (root / "etc/udev/rules.d/99-fastmm-cpu-dma-latency.rules").read_text() == \
            (OPS / "99-fastmm-cpu-dma-latency.rules").read_text()
        assert "OK    irqbalance" in out and "OK    transparent huge pages" in out
        _reboot(root, args)
        t0 = time.monotonic()
        out = p.run("host-tuning.md", "after-boot")
        assert time.monotonic() - t0 >= 0.9, "it waited for the clock"
        assert "WARN" not in out and "OK    isolated CPUs" in out and "OK    IRQ affinity" in out, out
        again = p.run("host-tuning.md", "plan")
        assert not re.search(r"^(CHANGE|ADVICE)", again, re.M), again


def test_every_tested_block_ran(paper: Paper) -> None:
    # add-instrument.md needs a PostgreSQL: tests/db/test_runbook_add_instrument.py runs its blocks
    elsewhere = {k for k in paper.blocks if k[0] == "add-instrument.md"}
    missing = sorted(set(paper.blocks) - paper.ran - elsewhere)
    assert missing == [], f"tested runbook blocks never run: {missing}"
    assert set(paper.blocks) == {(b.file, b.name) for b in runbook_blocks() if b.name}


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
