"""Parameter sweeps: every combination of a few settings, run on worker processes, ranked.

``spread=20,50,80 levels=3,5`` is six runs. A key is a short alias (:data:`ALIASES`) or any
``section.key`` of the config; each combination becomes ``FASTMM_<SECTION>__<KEY>`` overrides handed to
:func:`fastmm.config.load_config`, so values are type- and range-checked exactly as in a config file,
all of them before the first run starts. The market data is loaded once in the parent; the workers
(``fork``) inherit it instead of re-reading the capture. Progress goes to stderr as runs finish.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from fastmm.backtest.engine import BacktestOptions, run_backtest
from fastmm.backtest.market import MarketData
from fastmm.backtest.report import metrics
from fastmm.config import Config, ConfigError, load_config

ALIASES = {
    "spread": "quoting.base_spread_bps",
    "levels": "quoting.levels",
    "model": "quoting.model",
    "size": "quoting.base_size_btc",
    "spacing": "quoting.level_spacing_ticks",
    "gamma": "quoting.risk_aversion",
    "reprice": "quoting.reprice_threshold_ticks",
    "skew": "inventory.max_skew_ticks",
    "max_position": "inventory.max_position_btc",
}
RANK_KEYS = {"total": True, "sharpe": True, "drawdown": False, "fills": True}   # key -> higher is better


def parse_sweep(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["spread=20,50", "levels=3"]`` -> ``[("quoting.base_spread_bps", ["20", "50"]), ...]``."""
    out: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for spec in specs:
        key, eq, vals = spec.partition("=")
        key = key.strip()
        values = [v.strip() for v in vals.split(",") if v.strip()]
        if not eq or not key or not values:
            raise ConfigError(f"sweep {spec!r}: expected KEY=V1,V2,... (keys: {', '.join(ALIASES)} "
                              f"or section.key)")
        path = ALIASES.get(key, key)
        if path.count(".") < 1:
            raise ConfigError(f"sweep {key!r}: not an alias ({', '.join(ALIASES)}) nor a section.key setting")
        if path in seen:
            raise ConfigError(f"sweep {key!r}: given twice")
        seen.add(path)
        out.append((path, values))
    return out


def _env_name(path: str) -> str:
    return "FASTMM_" + "__".join(p.upper() for p in path.split("."))


def combinations(grid: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    keys = [k for k, _ in grid]
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(v for _, v in grid))]


def configs(config_path: str | os.PathLike[str] | None, combos: list[dict[str, str]],
            environ: dict[str, str] | None = None) -> list[Config]:
    """One validated config per combination (raises ConfigError naming the bad one)."""
    base_env = dict(os.environ if environ is None else environ)
    out = []
    for combo in combos:
        env = dict(base_env)
        env.update({_env_name(k): v for k, v in combo.items()})
        try:
            out.append(load_config(config_path, env))
        except ConfigError as e:
            label = " ".join(f"{k}={v}" for k, v in combo.items())
            raise ConfigError(f"sweep {label}: {e}") from None
    return out


# The data and options the workers inherit through fork (set by run_sweep before the pool starts).
_SHARED: dict[str, Any] = {}


def _one(i: int) -> tuple[int, dict[str, Any]]:
    # configs travel by fork, not by pickle: a Config holds Secrets, which refuse to be pickled
    combo: dict[str, str] = _SHARED["combos"][i]
    cfg: Config = _SHARED["cfgs"][i]
    md: MarketData = _SHARED["md"]
    opts: BacktestOptions = _SHARED["opts"]
    label = " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in combo.items())
    r = run_backtest(cfg, md, opts, name=label)
    row = metrics(r)
    row["params"] = combo
    row["worker_pid"] = os.getpid()
    return i, row


def run_sweep(cfgs: list[Config], combos: list[dict[str, str]], md: MarketData, opts: BacktestOptions, *,
              workers: int = 2, progress: TextIO | None = None,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Every config on ``workers`` processes (1 = in this process); rows in the combinations' order."""
    if len(cfgs) != len(combos):
        raise ValueError("one config per combination")
    jobs = list(range(len(cfgs)))
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    bar = Progress(len(jobs), progress or sys.stderr)
    _SHARED.update(md=md, opts=opts, cfgs=cfgs, combos=combos)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                i, row = _one(job)
                rows[i] = row
                bar.done(row)
        else:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(workers, len(jobs))) as pool:
                for i, row in pool.imap_unordered(_one, jobs):
                    rows[i] = row
                    bar.done(row)
                pool.close()
                pool.join()
    finally:
        _SHARED.clear()
        bar.finish()
    out = [r for r in rows if r is not None]
    if on_row is not None:
        for r in out:
            on_row(r)
    return out


def rank(rows: list[dict[str, Any]], by: str = "total") -> list[dict[str, Any]]:
    """Best first; a run without a value for ``by`` (no Sharpe: no fills) ranks last."""
    if by not in RANK_KEYS:
        raise ConfigError(f"rank by {by!r}: one of {', '.join(RANK_KEYS)}")
    field = {"total": "total", "sharpe": "sharpe_per_sample", "drawdown": "max_drawdown",
             "fills": "fills"}[by]
    higher = RANK_KEYS[by]

    def key(r: dict[str, Any]) -> tuple[int, float]:
        v = r.get(field)
        if v is None:
            return (1, 0.0)
        return (0, -float(v) if higher else float(v))

    return sorted(rows, key=key)


def ranked_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no runs)"
    keys = list(rows[0]["params"])
    short = [k.rsplit(".", 1)[-1] for k in keys]
    widths = [max(len(s), *(len(str(r["params"][k])) for r in rows)) + 2
              for s, k in zip(short, keys, strict=True)]
    head = f"{'#':>3} " + "".join(f"{s:<{w}}" for s, w in zip(short, widths, strict=True))
    head += (f"{'total':>10}{'sharpe1s':>9}{'maxDD':>9}{'fills':>7}{'fill%':>7}{'capt':>7}{'posBTC':>8}"
             f"{'s':>7}")
    out = [head, "-" * len(head)]
    for n, r in enumerate(rows, 1):
        line = f"{n:>3} " + "".join(f"{r['params'][k]!s:<{w}}" for k, w in zip(keys, widths, strict=True))
        sh = r.get("sharpe_per_sample")
        fr = r.get("fill_ratio")
        cap = r.get("spread_capture_bps")
        line += (f"{r['total']:>10.2f}{'-' if sh is None else format(sh, '.3f'):>9}{r['max_drawdown']:>9.2f}"
                 f"{r['fills']:>7}{'-' if fr is None else format(100 * fr, '.0f'):>7}"
                 f"{'-' if cap is None else format(cap, '.2f'):>7}{r['position_btc']:>8.4f}"
                 f"{r['replay_s']:>7.2f}")
        out.append(line)
    return "\n".join(out)


class Progress:
    """A one-line progress bar on a terminal, one line per finished run otherwise."""

    def __init__(self, total: int, stream: TextIO, width: int = 24) -> None:
        self.total = total
        self.n = 0
        self.stream = stream
        self.width = width
        self.t0 = time.perf_counter()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def done(self, row: dict[str, Any]) -> None:
        self.n += 1
        filled = self.width * self.n // max(1, self.total)
        bar = "#" * filled + "." * (self.width - filled)
        label = row.get("strategy", "")
        text = (f"[{bar}] {self.n}/{self.total} {label}: total {row['total']:+.2f} PYUSD, "
                f"{row['fills']} fills ({time.perf_counter() - self.t0:.1f} s)")
        if self.tty:
            self.stream.write("\r" + text[:150].ljust(150))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.n:
            self.stream.write("\n")
            self.stream.flush()
