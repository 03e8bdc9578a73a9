"""The session's plots (matplotlib, Agg backend): quotes against the mid with fills, PnL, inventory, and
order round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastmm.report.session import Session


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_session(s: Session, phases: list[tuple[int, str]], path: Path) -> Path:
    plt = _pyplot()
    span_s = max(1e-9, (s.end_ns - s.start_ns) / 1e9)
    unit, div = ("minutes", 60e9) if span_s > 300 else ("seconds", 1e9)

    def x(t: int) -> float:
        return (t - s.start_ns) / div

    fig, axes = plt.subplots(4, 1, figsize=(11, 13), gridspec_kw={"height_ratios": [3, 2, 1.5, 1.8]})
    axes[1].sharex(axes[0])
    axes[2].sharex(axes[0])
    ax = axes[0]
    if s.mids:
        ax.step([x(t) for t, _, _ in s.mids], [m for _, m, _ in s.mids], where="post", color="k", lw=0.8,
                label=f"mid ({s.mids[-1][2]})")
    if s.quotes:
        qt = [x(t) for t, _, _ in s.quotes]
        ax.step(qt, [b or float("nan") for _, b, _ in s.quotes], where="post", color="tab:green", lw=0.8,
                label="our best bid")
        ax.step(qt, [a or float("nan") for _, _, a in s.quotes], where="post", color="tab:red", lw=0.8,
                label="our best ask")
    for side, marker, color in (("buy", "^", "tab:green"), ("sell", "v", "tab:red")):
        fs = [f for f in s.fills if f.side == side and f.venue == "truex"]
        if fs:
            ax.scatter([x(f.t_ns) for f in fs], [f.price for f in fs], marker=marker, color=color, s=22,
                       zorder=3, label=f"TrueX {side} fill")
    _phase_lines(ax, phases, x)
    ax.set_ylabel("PYUSD")
    ax.set_title("Quotes against the mid, and fills")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    ax = axes[1]
    if s.pnl:
        t = [x(r[0]) for r in s.pnl]
        ax.step(t, [r[1] for r in s.pnl], where="post", label="total", lw=1.2)
        ax.step(t, [r[2] for r in s.pnl], where="post", label="realized", lw=0.8)
        ax.step(t, [-r[4] for r in s.pnl], where="post", label="-fees", lw=0.8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("PYUSD")
    ax.set_title("PnL (marked to the mid)")
    if s.pnl:
        ax.legend(fontsize=8, loc="best")
    ax = axes[2]
    if s.position:
        ax.step([x(t) for t, _ in s.position], [p for _, p in s.position], where="post", color="tab:purple")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("BTC")
    ax.set_title("Inventory")
    for a in axes[:3]:
        a.set_xlabel(unit)
        a.grid(alpha=0.3)
    ax = axes[3]
    samples = s.stats.samples or []
    stages = sorted({st for st, _, _ in samples})
    for st in stages:
        vals = [ns / 1e6 for stg, _, ns in samples if stg == st]
        ax.hist(vals, bins=40, alpha=0.55, label=f"{st} (n {len(vals)})")
    ax.set_xlabel("milliseconds")
    ax.set_ylabel("count")
    ax.set_title("Order round trips (journal: request written -> answer read)")
    if stages:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _phase_lines(ax: Any, phases: list[tuple[int, str]], x: Any) -> None:
    if not phases:
        return
    span = max(1e-9, x(phases[-1][0]) - x(phases[0][0]))
    last = None
    for t, name in phases:
        ax.axvline(x(t), color="grey", lw=0.6, ls=":")
        if last is None or x(t) - last > span / 40:     # phases a moment apart: label the first only
            ax.annotate(name, (x(t), 1), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                        va="top", ha="right", color="grey")
            last = x(t)
