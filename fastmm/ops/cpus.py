"""The kernel's CPU set formats: lists (``0-3,8``, as in /sys and isolcpus=) and hex masks (``ff,ffffffff``,
as in /proc/irq). One parser and one writer of each, for the host tools and the latency harness."""

from __future__ import annotations


def parse_cpu_list(text: str) -> set[int]:
    """The kernel's CPU list format: ``0-3,8,10-11`` (empty = none)."""
    out: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            return set()
    return out


def format_cpu_list(cpus: set[int]) -> str:
    """The kernel's CPU list format, ranges folded: {0, 1, 2, 5} -> ``0-2,5``."""
    runs: list[list[int]] = []
    for c in sorted(cpus):
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def parse_cpu_mask(text: str) -> set[int]:
    """A hex CPU mask in the kernel's format (32-bit groups separated by commas) -> CPUs."""
    try:
        value = int(text.strip().replace(",", ""), 16)
    except ValueError:
        return set()
    return {i for i in range(value.bit_length()) if value >> i & 1}


def format_cpu_mask(cpus: set[int]) -> str:
    """CPUs -> a hex mask in 32-bit groups (``ff,ffffffff``), what /proc/irq/default_smp_affinity takes."""
    value = sum(1 << c for c in cpus)
    words = []
    while True:
        words.append(value & 0xFFFFFFFF)
        value >>= 32
        if not value:
            break
    return ",".join([f"{words[-1]:x}", *(f"{w:08x}" for w in reversed(words[:-1]))])
