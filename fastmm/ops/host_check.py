"""``ops host-check``'s judgement: the host's facts against ops/host-tuning.md and the config's pinning,
as one :class:`Check` per item (pure: the facts come from :func:`fastmm.ops.host.read_facts`)."""

from __future__ import annotations

from dataclasses import dataclass

from fastmm.config import Config
from fastmm.ops.cpus import format_cpu_list
from fastmm.ops.host import IRQBALANCE_BANNED, HostFacts, banned_cpus
from fastmm.procs.plan import PROCESSES


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: str          # ok | warn | info
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "level": self.level, "detail": self.detail}


def check_host(f: HostFacts, cfg: Config) -> list[Check]:
    """Judge the facts against ops/host-tuning.md and the config's pinning (pure)."""
    out: list[Check] = []
    pins = {name: set(getattr(cfg.processes, name.replace("-", "_"))) for name in ("supervisor", *PROCESSES)}
    pinned = set().union(*pins.values())
    hot = pins["quoter"] | pins["feed-coinbase"] | pins["feed-kraken"] | pins["feed-truex-md"]
    n_procs = len(PROCESSES) + 1
    if f.isolated:
        how = "isolcpus= on the kernel command line" if "isolcpus=" in f.cmdline else "cpusets"
        out.append(Check("isolated CPUs", "ok", f"isolated {_cpus(f.isolated)} ({how})"))
    else:
        out.append(Check("isolated CPUs", "warn", "no isolated CPU: add isolcpus=/nohz_full= for the hot "
                                                  "processes (host-tuning.md, step 1)"))
    if hot and f.isolated and not hot <= f.isolated:
        out.append(Check("pinning", "warn", f"hot processes pinned to {_cpus(hot - f.isolated)}, which are "
                                            "not isolated"))
    elif hot:
        out.append(Check("pinning", "ok", "hot processes: " + ", ".join(
            f"{n} {_cpus(c)}" for n, c in pins.items() if c)))
    else:
        out.append(Check("pinning", "info", "no process is pinned (processes.* empty): fine on a small "
                                            "machine, set them on bare metal"))
    if pins["quoter"] and any(pins["quoter"] & c for n, c in pins.items() if n != "quoter"):
        out.append(Check("quoter CPU", "warn", "the quoter shares a CPU with another fastmm process"))
    if cfg.shm.wait == "spin" and (f.cpus < n_procs or not f.isolated):
        out.append(Check("wait strategy", "warn", f"shm.wait = spin with {f.cpus} CPUs and "
                                                  f"{len(f.isolated)} isolated: use block"))
    else:
        out.append(Check("wait strategy", "ok", f"shm.wait = {cfg.shm.wait} with {f.cpus} CPUs"))
    targets = pinned or f.isolated
    if f.governors:
        slow = {c for c, g in f.governors.items() if g != "performance" and (not targets or c in targets)}
        out.append(Check("CPU governor", "warn" if slow else "ok",
                         f"not 'performance' on CPUs {_cpus(slow)}" if slow else "performance"))
    else:
        out.append(Check("CPU governor", "info", "no cpufreq here (a VM, or the firmware owns it)"))
    thp = f.thp_enabled or "unknown"
    out.append(Check("transparent huge pages", "ok" if thp in ("never", "madvise") else "warn",
                     f"enabled={thp} defrag={f.thp_defrag or 'unknown'} (want never or madvise)"))
    if f.isolated:
        busy = sorted((irq for irq, cpus in f.irq_affinity.items() if cpus & f.isolated and
                       not cpus <= f.isolated), key=lambda s: int(s) if s.isdigit() else 0)
        only = sorted(irq for irq, cpus in f.irq_affinity.items() if cpus and cpus <= f.isolated)
        bad = busy + only
        out.append(Check("IRQ affinity", "warn" if bad else "ok",
                         f"IRQs {', '.join(bad[:12])}{' ...' if len(bad) > 12 else ''} may run on isolated "
                         "CPUs" if bad else "no IRQ targets an isolated CPU"))
    banned = banned_cpus(f)
    if not f.irqbalance_running:
        out.append(Check("irqbalance", "ok", "not running"))
    elif f.isolated and not f.isolated <= banned:
        out.append(Check("irqbalance", "warn", "running: it moves IRQs back onto isolated CPUs "
                         f"{format_cpu_list(f.isolated - banned)} ({IRQBALANCE_BANNED})"))
    else:
        out.append(Check("irqbalance", "ok", f"running, banned from {format_cpu_list(banned) or 'no CPU'}"))
    if f.clock_synced is None:
        out.append(Check("clock sync", "info", "unknown here; check chronyc tracking"))
    else:
        out.append(Check("clock sync", "ok" if f.clock_synced else "warn",
                         "kernel clock synchronized" if f.clock_synced else
                         "kernel clock NOT synchronized: TrueX rejects SendingTime > 2 min off"))
    if f.dma_latency_writable:
        out.append(Check("cpu_dma_latency", "ok", "/dev/cpu_dma_latency writable: CPUs can be held out of "
                                                  "deep idle (hold_cpu_dma_latency, tuned)"))
    else:
        out.append(Check("cpu_dma_latency", "warn" if f.dma_latency_exists else "info",
                         "/dev/cpu_dma_latency " + ("not writable by this user" if f.dma_latency_exists
                                                    else "absent (container or VM)")))
    return out


def _cpus(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus)) or "-"


def render_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{c.level.upper():<5} {c.name:<{width}}  {c.detail}" for c in checks)
