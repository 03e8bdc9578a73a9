"""The strategies a backtest compares: the configured one and the baselines (a naive symmetric ladder
without skew, Avellaneda-Stoikov, GLFT), each as a whole configuration."""

from __future__ import annotations

from dataclasses import replace

from fastmm.config import Config


def baselines(cfg: Config) -> list[tuple[str, Config]]:
    """The configured strategy and the comparison strategies, skipping exact duplicates."""
    q, inv = cfg.quoting, cfg.inventory
    runs = [("configured", cfg),
            ("naive_ladder", replace(cfg, quoting=replace(q, model="ladder"),
                                     inventory=replace(inv, max_skew_ticks=0))),
            ("avellaneda_stoikov", replace(cfg, quoting=replace(q, model="avellaneda_stoikov"))),
            ("glft", replace(cfg, quoting=replace(q, model="glft")))]
    out: list[tuple[str, Config]] = []
    for name, c in runs:
        if any(c == other for _, other in out):
            continue
        out.append((name, c))
    return out
