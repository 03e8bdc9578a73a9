"""What the host is, as the tuning of ops/host-tuning.md sees it: facts read once from /proc, /sys and /etc
(or a tree shaped like them, for tests) into :class:`HostFacts`, which the check and the tuning plan
judge without touching the host again."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from fastmm.ops.cpus import parse_cpu_list, parse_cpu_mask

IRQBALANCE_CONF = ("etc/default/irqbalance", "etc/sysconfig/irqbalance")    # Debian/Ubuntu, RHEL/Fedora
UDEV_RULE_PATH = "etc/udev/rules.d/99-fastmm-cpu-dma-latency.rules"
IRQBALANCE_BANNED = "IRQBALANCE_BANNED_CPULIST"


@dataclass
class HostFacts:
    """What the tuning checks need, read once from the host (or a fake tree in tests)."""

    cpus: int = 0
    cmdline: str = ""
    isolated: set[int] = field(default_factory=set)
    nohz_full: set[int] = field(default_factory=set)
    governors: dict[int, str] = field(default_factory=dict)
    thp_enabled: str = ""
    thp_defrag: str = ""
    irq_affinity: dict[str, set[int]] = field(default_factory=dict)   # IRQ number -> CPUs
    irqbalance_running: bool = False
    clock_synced: bool | None = None      # None: not known (no adjtimex here)
    dma_latency_writable: bool = False
    dma_latency_exists: bool = False
    present: set[int] = field(default_factory=set)
    irq_default_affinity: set[int] | None = None                     # /proc/irq/default_smp_affinity
    irqbalance_conf: dict[str, str] = field(default_factory=dict)     # path under the root -> text
    udev_rule: str | None = None          # the installed cpu_dma_latency rule, None when absent


def _bracketed(text: str) -> str:
    """``always madvise [never]`` -> ``never``."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.strip()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def clock_synced(root: Path = Path("/")) -> bool | None:
    """The kernel's own view (adjtimex) on this host; under another root, that tree's ``clock_synced``
    file (``1`` or ``0``), since a clock cannot be faked in a folder."""
    if root == Path("/"):
        return _clock_synced()
    text = _read(root / "clock_synced").strip()
    return None if not text else text == "1"


def _clock_synced() -> bool | None:
    """adjtimex(2) with modes = 0 only reads: TIME_ERROR (5) means the kernel clock is not synchronized."""
    import ctypes

    class Timex(ctypes.Structure):
        _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 204)]

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        state = libc.adjtimex(ctypes.byref(Timex()))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != 5


def read_facts(root: Path = Path("/")) -> HostFacts:
    sysc = root / "sys/devices/system/cpu"
    f = HostFacts()
    present = parse_cpu_list(_read(sysc / "present")) or parse_cpu_list(_read(sysc / "online"))
    f.present = present or set(range(os.cpu_count() or 0))
    f.cpus = len(f.present)
    f.cmdline = _read(root / "proc/cmdline").strip()
    f.isolated = parse_cpu_list(_read(sysc / "isolated"))
    f.nohz_full = parse_cpu_list(_read(sysc / "nohz_full"))
    for gov in sorted(sysc.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        with contextlib.suppress(ValueError):
            f.governors[int(gov.parent.parent.name[3:])] = _read(gov).strip()
    f.thp_enabled = _bracketed(_read(root / "sys/kernel/mm/transparent_hugepage/enabled"))
    f.thp_defrag = _bracketed(_read(root / "sys/kernel/mm/transparent_hugepage/defrag"))
    for aff in (root / "proc/irq").glob("[0-9]*/smp_affinity_list"):
        f.irq_affinity[aff.parent.name] = parse_cpu_list(_read(aff))
    default = _read(root / "proc/irq/default_smp_affinity")
    f.irq_default_affinity = parse_cpu_mask(default) if default.strip() else None
    for rel in IRQBALANCE_CONF:
        if (root / rel).is_file():
            f.irqbalance_conf[rel] = _read(root / rel)
    rule = root / UDEV_RULE_PATH
    f.udev_rule = _read(rule) if rule.is_file() else None
    for comm in (root / "proc").glob("[0-9]*/comm"):
        if _read(comm).strip() == "irqbalance":
            f.irqbalance_running = True
            break
    dma = root / "dev/cpu_dma_latency"
    f.dma_latency_exists = dma.exists()
    f.dma_latency_writable = f.dma_latency_exists and os.access(dma, os.W_OK)
    f.clock_synced = clock_synced(root)
    return f


def banned_cpus(f: HostFacts) -> set[int]:
    """The CPUs irqbalance is told to leave alone, from its config files (the union of them)."""
    out: set[int] = set()
    for text in f.irqbalance_conf.values():
        for line in text.splitlines():
            key, _, value = line.strip().partition("=")
            if key == IRQBALANCE_BANNED:
                out |= parse_cpu_list(value.strip().strip("\"'"))
    return out
