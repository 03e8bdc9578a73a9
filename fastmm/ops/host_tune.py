"""``ops host-tune``: the tuning of ops/host-tuning.md as a plan of steps for the host's facts and the
config's pinning (:func:`plan_host`, pure), and the writes that carry it out (:func:`apply_plan`) under
a root that is / on a real host and a temporary tree in tests. The kernel command line is advice only: a
boot loader is not something to edit behind a human's back."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from fastmm.config import Config
from fastmm.ops.cpus import format_cpu_list, format_cpu_mask
from fastmm.ops.host import IRQBALANCE_BANNED, UDEV_RULE_PATH, HostFacts, banned_cpus

# The same text as ops/99-fastmm-cpu-dma-latency.rules (a test keeps them equal).
UDEV_RULE = """\
# /etc/udev/rules.d/99-fastmm-cpu-dma-latency.rules
# Let the fastmm group hold /dev/cpu_dma_latency (fastmm.shm.wait.hold_cpu_dma_latency), so the engine
# can keep CPUs out of deep idle states without running as root. See host-tuning.md, step 6.
KERNEL=="cpu_dma_latency", GROUP="fastmm", MODE="0660"
"""


@dataclass(frozen=True, slots=True)
class TuneStep:
    """One item of the tuning: ``ok`` (nothing to do), ``change`` (``writes`` do it), ``advice`` (a human
    does it, as ``then`` says) or ``skip`` (does not apply here)."""

    name: str
    action: str
    detail: str
    writes: tuple[tuple[str, str], ...] = ()     # (path under the root, text to write)
    then: str = ""                               # what makes a written change take effect, if anything


def hot_cpus(f: HostFacts, cfg: Config) -> set[int]:
    """The CPUs of the latency-critical processes (quoter and feeds) and any CPU already isolated."""
    pins = (cfg.processes.quoter, cfg.processes.feed_coinbase, cfg.processes.feed_kraken,
            cfg.processes.feed_truex_md)
    return set().union(*map(set, pins)) | f.isolated


def _with_banned(text: str, cpus: str) -> str:
    """The config text with ``IRQBALANCE_BANNED_CPULIST`` set (replaced, or added at the end)."""
    lines = text.splitlines()
    new = f"{IRQBALANCE_BANNED}={cpus}"
    for i, line in enumerate(lines):
        if line.strip().partition("=")[0] == IRQBALANCE_BANNED:
            lines[i] = new
            break
    else:
        lines.append(new)
    return "\n".join(lines) + "\n"


def kernel_args(hot: set[int], housekeeping: set[int]) -> dict[str, str]:
    hl = format_cpu_list(hot)
    return {"isolcpus": f"managed_irq,domain,{hl}", "nohz_full": hl, "rcu_nocbs": hl,
            "irqaffinity": format_cpu_list(housekeeping), "transparent_hugepage": "never"}


def plan_host(f: HostFacts, cfg: Config) -> list[TuneStep]:
    """The tuning of ops/host-tuning.md for these facts and the config's pinning (pure)."""
    out: list[TuneStep] = []
    hot = hot_cpus(f, cfg)
    housekeeping = f.present - hot
    # 1. CPU frequency governor: every CPU, as cpupower frequency-set does.
    slow = {c: g for c, g in f.governors.items() if g != "performance"}
    if not f.governors:
        out.append(TuneStep("CPU governor", "skip", "no cpufreq here (a VM, or the firmware owns it)"))
    elif slow:
        was = ",".join(sorted({g or "unreadable" for g in slow.values()}))
        out.append(TuneStep("CPU governor", "change",
                            f"CPUs {format_cpu_list(set(slow))}: {was} -> performance",
                            tuple((f"sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor", "performance")
                                  for c in sorted(slow))))
    else:
        out.append(TuneStep("CPU governor", "ok", "performance on every CPU"))
    # 2. Transparent huge pages.
    if not f.thp_enabled:
        out.append(TuneStep("transparent huge pages", "skip", "no /sys/kernel/mm/transparent_hugepage"))
    elif f.thp_enabled != "never" or f.thp_defrag != "never":
        out.append(TuneStep("transparent huge pages", "change",
                            f"enabled={f.thp_enabled} defrag={f.thp_defrag} -> never",
                            (("sys/kernel/mm/transparent_hugepage/enabled", "never"),
                             ("sys/kernel/mm/transparent_hugepage/defrag", "never"))))
    else:
        out.append(TuneStep("transparent huge pages", "ok", "enabled=never defrag=never"))
    if not hot:
        why = "no hot CPU: pin the quoter and the feeds (processes.*) first"
        out += [TuneStep(n, "skip", why) for n in ("IRQ affinity", "irqbalance", "kernel command line")]
    elif not housekeeping:
        why = f"every CPU ({format_cpu_list(f.present)}) is hot: leave some to the OS and the IRQs"
        out += [TuneStep(n, "advice", why) for n in ("IRQ affinity", "irqbalance", "kernel command line")]
    else:
        out += _irq_steps(f, hot, housekeeping)
    # 5. cpu_dma_latency udev rule.
    if f.udev_rule == UDEV_RULE:
        out.append(TuneStep("cpu_dma_latency rule", "ok", f"/{UDEV_RULE_PATH} installed"))
    else:
        out.append(TuneStep("cpu_dma_latency rule", "change",
                            f"{'update' if f.udev_rule is not None else 'install'} /{UDEV_RULE_PATH}",
                            ((UDEV_RULE_PATH, UDEV_RULE),),
                            "udevadm control --reload && udevadm trigger --name-match=cpu_dma_latency "
                            "(or at the next boot)"))
    return out


def _irq_steps(f: HostFacts, hot: set[int], housekeeping: set[int]) -> list[TuneStep]:
    out: list[TuneStep] = []
    hk, hl = format_cpu_list(housekeeping), format_cpu_list(hot)
    # 3. IRQ affinity: every IRQ that may run on a hot CPU moves to the housekeeping CPUs.
    moving = sorted((irq for irq, cpus in f.irq_affinity.items() if cpus & hot),
                    key=lambda s: int(s) if s.isdigit() else 0)
    writes = [(f"proc/irq/{irq}/smp_affinity_list", hk) for irq in moving]
    if f.irq_default_affinity is not None and f.irq_default_affinity != housekeeping:
        writes.append(("proc/irq/default_smp_affinity", format_cpu_mask(housekeeping)))
    if writes:
        out.append(TuneStep("IRQ affinity", "change",
                            f"{len(moving)} IRQ(s) may run on hot CPUs {hl}: move to {hk}"
                            + ("; new IRQs too (default_smp_affinity)" if len(writes) > len(moving) else ""),
                            tuple(writes)))
    else:
        out.append(TuneStep("IRQ affinity", "ok", f"no IRQ on hot CPUs {hl}"))
    # 4. irqbalance: told to leave the hot CPUs alone, in each config file it has.
    if not f.irqbalance_conf:
        out.append(TuneStep("irqbalance", "advice" if f.irqbalance_running else "ok",
                            "running without a config file: stop and disable it" if f.irqbalance_running
                            else "not installed"))
    elif hot <= banned_cpus(f):
        out.append(TuneStep("irqbalance", "ok", f"{IRQBALANCE_BANNED} covers {hl}"))
    else:
        out.append(TuneStep("irqbalance", "change", f"{IRQBALANCE_BANNED}={hl} in "
                            + ", ".join(f"/{p}" for p in f.irqbalance_conf),
                            tuple((p, _with_banned(t, hl)) for p, t in f.irqbalance_conf.items()),
                            "systemctl restart irqbalance" if f.irqbalance_running else ""))
    # 6. Kernel command line: advice, applied by a human with the boot loader's tool, then a reboot.
    now = dict(w.partition("=")[::2] for w in f.cmdline.split())
    want = kernel_args(hot, housekeeping)
    missing = [f"{k}={v}" for k, v in want.items() if now.get(k) != v]
    if missing:
        args = " ".join(missing)
        out.append(TuneStep("kernel command line", "advice", f"add {args}",
                            then=f'grubby --update-kernel=ALL --args="{args}" (Debian, Ubuntu: add them to '
                                 "GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub), then reboot"))
    else:
        out.append(TuneStep("kernel command line", "ok", " ".join(f"{k}={v}" for k, v in want.items())))
    return out


def _write(root: Path, rel: str, text: str) -> None:
    """sysfs and procfs files take one write() to a file that must exist; config files are replaced
    whole (written next to it, then renamed)."""
    path = root / rel
    if rel.startswith(("sys/", "proc/")):
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".fastmm-new")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(path)


def apply_plan(root: Path, steps: list[TuneStep]) -> list[tuple[TuneStep, list[str], int]]:
    """Write every ``change`` step; per step the errors and the IRQs that refused (managed or per-CPU
    interrupts answer EIO: ``isolcpus=managed_irq`` keeps those off the isolated CPUs)."""
    done = []
    for step in steps:
        if step.action != "change":
            continue
        errors: list[str] = []
        refused = 0
        for rel, text in step.writes:
            try:
                _write(root, rel, text)
            except OSError as e:
                if e.errno == errno.EIO and rel.startswith("proc/irq/"):
                    refused += 1
                else:
                    errors.append(f"/{rel}: {e.strerror or e}")
        done.append((step, errors, refused))
    return done
