"""``fastmm ops host-tune``, ``ops wait --clock-synced`` and ``ops reach`` without an engine: the plan's
rules on fake host trees, writes and their failures, CPU list and mask formats, and real sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

from ops_helpers import BIN, OPS, host_tree, set_clock_synced

from fastmm.config import Config, ProcessesConfig, load_config
from fastmm.ops.cpus import format_cpu_list, format_cpu_mask, parse_cpu_list, parse_cpu_mask
from fastmm.ops.endpoints import endpoints
from fastmm.ops.host import read_facts
from fastmm.ops.host_check import check_host
from fastmm.ops.host_tune import UDEV_RULE, apply_plan, plan_host

PROD = OPS / "fastmm.production.toml"


def _fastmm(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("FASTMM_")}
    e.update(env)
    return subprocess.run([str(BIN / "fastmm"), *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=60)


def test_cpu_list_and_mask_formats() -> None:
    assert format_cpu_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8" and format_cpu_list(set()) == ""
    assert parse_cpu_list(format_cpu_list({0, 1, 6, 7, 8, 15})) == {0, 1, 6, 7, 8, 15}
    assert format_cpu_mask({0, 1}) == "3" and format_cpu_mask({0, 33}) == "2,00000001"
    assert parse_cpu_mask("2,00000001") == {0, 33} and parse_cpu_mask("ffc3\n") == {0, 1, *range(6, 16)}
    assert parse_cpu_mask("zz") == set()


def test_the_shipped_udev_rule_is_the_one_host_tune_installs() -> None:
    assert (OPS / "99-fastmm-cpu-dma-latency.rules").read_text() == UDEV_RULE


def test_plan_on_a_fresh_host_then_nothing_left_after_apply(tmp_path: Path) -> None:
    root = host_tree(tmp_path / "h")
    cfg = load_config(PROD, {})
    steps = {s.name: s for s in plan_host(read_facts(root), cfg)}
    assert {n: s.action for n, s in steps.items()} == {
        "CPU governor": "change", "transparent huge pages": "change", "IRQ affinity": "change",
        "irqbalance": "change", "kernel command line": "advice", "cpu_dma_latency rule": "change"}
    irq = dict(steps["IRQ affinity"].writes)
    assert set(irq) == {"proc/irq/25/smp_affinity_list", "proc/irq/26/smp_affinity_list",
                        "proc/irq/120/smp_affinity_list", "proc/irq/default_smp_affinity"}, \
        "IRQs 0 and 24 already stay off the hot CPUs 2-5"
    assert irq["proc/irq/26/smp_affinity_list"] == "0-1,6-15" and irq["proc/irq/default_smp_affinity"] == "ffc3"
    assert steps["irqbalance"].then == "systemctl restart irqbalance"
    assert "nohz_full=2-5" in steps["kernel command line"].detail and "grubby" in steps["kernel command line"].then
    done = apply_plan(root, list(steps.values()))
    assert [(s.name, errors, refused) for s, errors, refused in done if errors or refused] == []
    left = {s.name: s.action for s in plan_host(read_facts(root), cfg)}
    assert left == {"CPU governor": "ok", "transparent huge pages": "ok", "IRQ affinity": "ok", "irqbalance": "ok",
                    "kernel command line": "advice", "cpu_dma_latency rule": "ok"}
    conf = (root / "etc/default/irqbalance").read_text()
    assert conf.startswith('#IRQBALANCE_ONESHOT=\nIRQBALANCE_ARGS=""\n') and conf.endswith(
        "IRQBALANCE_BANNED_CPULIST=2-5\n"), "the rest of the file is kept"
    (root / "etc/default/irqbalance").write_text("IRQBALANCE_BANNED_CPULIST=0\nOTHER=1\n")
    step = next(s for s in plan_host(read_facts(root), cfg) if s.name == "irqbalance")
    assert dict(step.writes)["etc/default/irqbalance"] == "IRQBALANCE_BANNED_CPULIST=2-5\nOTHER=1\n"


def test_plan_without_pinning_or_without_housekeeping(tmp_path: Path) -> None:
    root = host_tree(tmp_path / "h", cpus=4)
    steps = {s.name: s for s in plan_host(read_facts(root), Config())}
    assert {steps[n].action for n in ("IRQ affinity", "irqbalance", "kernel command line")} == {"skip"}
    assert steps["CPU governor"].action == "change", "the governor and THP do not depend on pinning"
    every = Config(processes=ProcessesConfig(quoter=[0, 1], feed_coinbase=[2, 3]))
    steps = {s.name: s for s in plan_host(read_facts(root), every)}
    assert steps["IRQ affinity"].action == "advice" and "every CPU (0-3) is hot" in steps["IRQ affinity"].detail


def test_host_tune_cli_plan_apply_and_a_failed_write(tmp_path: Path) -> None:
    root = host_tree(tmp_path / "h")
    gov = root / "sys/devices/system/cpu/cpu7/cpufreq/scaling_governor"
    p = _fastmm("ops", "host-tune", "-c", str(PROD), cwd=tmp_path, FASTMM_HOST_ROOT=str(root))
    assert p.returncode == 0 and "nothing written" in p.stdout and "CHANGE  CPU governor" in p.stdout, p.stdout
    assert gov.read_text() == "powersave\n"
    gov.unlink()
    gov.mkdir()                                    # a write that fails (root may write any file)
    p = _fastmm("ops", "host-tune", "-c", str(PROD), "--apply", "--root", str(root), cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAILED  CPU governor" in p.stdout and "cpu7/cpufreq/scaling_governor: Is a directory" in p.stdout
    assert "DONE    transparent huge pages" in p.stdout and "run it as root" in p.stderr
    assert "Traceback" not in p.stderr
    assert (root / "sys/devices/system/cpu/cpu6/cpufreq/scaling_governor").read_text() == "performance"
    # host-check reads the same root, from the environment too
    p = _fastmm("ops", "host-check", "-c", str(PROD), cwd=tmp_path, FASTMM_HOST_ROOT=str(root))
    assert p.returncode == 0 and "OK    transparent huge pages" in p.stdout


def test_host_check_irqbalance_with_and_without_a_ban_list(tmp_path: Path) -> None:
    root = host_tree(tmp_path / "h", cpus=8, tuned=True)
    (root / "proc/4242/comm").write_text("irqbalance\n")
    cfg = Config()
    assert {c.name: c for c in check_host(read_facts(root), cfg)}["irqbalance"].level == "warn"
    (root / "etc/sysconfig").mkdir(parents=True)
    (root / "etc/sysconfig/irqbalance").write_text('IRQBALANCE_BANNED_CPULIST="2-5"\n')
    check = {c.name: c for c in check_host(read_facts(root), cfg)}["irqbalance"]
    assert check.level == "ok" and "banned from 2-5" in check.detail


def test_wait_for_the_clock(tmp_path: Path) -> None:
    root = host_tree(tmp_path / "h")
    p = _fastmm("ops", "wait", "--clock-synced", "--timeout", "0.3", "--root", str(root), cwd=tmp_path)
    assert p.returncode == 1 and "NOT synchronized" in p.stderr
    timer = threading.Timer(0.5, set_clock_synced, (root, True))
    timer.start()
    t0 = time.monotonic()
    try:
        p = _fastmm("ops", "wait", "--clock-synced", "--timeout", "20", cwd=tmp_path, FASTMM_HOST_ROOT=str(root))
    finally:
        timer.cancel()
    assert p.returncode == 0 and "synchronized" in p.stdout and time.monotonic() - t0 >= 0.45
    (root / "clock_synced").unlink()
    p = _fastmm("ops", "wait", "--clock-synced", "--timeout", "5", "--root", str(root), cwd=tmp_path)
    assert p.returncode == 1 and "cannot tell" in p.stderr


def test_reach_over_real_sockets(tmp_path: Path) -> None:
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))             # bound, not listening: connection refused
        up, down = listening.getsockname()[1], closed.getsockname()[1]
        env = {"FASTMM_TRUEX__ORDER_ENTRY__PORT": str(up), "FASTMM_TRUEX__MARKET_DATA__PORT": str(down),
               "FASTMM_COINBASE__WS_URL": f"ws://127.0.0.1:{up}/ws"}
        p = _fastmm("ops", "reach", "--venue", "truex", "--timeout", "2", cwd=tmp_path, **env)
        assert p.returncode == 1, p.stdout
        assert f"ok    truex    order entry (FIX)  127.0.0.1:{up}  connect" in p.stdout
        assert f"FAIL  truex    market data (FIX)  127.0.0.1:{down}  Connection refused" in p.stdout
        assert "coinbase" not in p.stdout
        p = _fastmm("ops", "reach", "--venue", "coinbase", cwd=tmp_path, **env)
        assert p.returncode == 0 and f"ok    coinbase websocket          127.0.0.1:{up}" in p.stdout, p.stdout
    prod = {(v, w): (h, port) for v, w, h, port in endpoints(load_config(PROD, {}))}
    assert prod[("coinbase", "websocket")] == ("advanced-trade-ws.coinbase.com", 443)
    assert prod[("kraken", "REST")] == ("api.kraken.com", 443)
