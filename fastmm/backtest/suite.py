"""``fastmm backtest --suite``: every strategy on every recording and every cross-venue pair, one table.

A *case* is one recording quoted on itself, or a cross-venue pair (quote and fill on one recording, the
fair price from another of the same instrument: USD-M futures priced from spot and the reverse). Every
case runs the configured strategy and each baseline (naive ladder, Avellaneda-Stoikov, GLFT, and
hftbacktest's GLFT on single recordings: it has no separate reference), optionally with the TrueX maker
fee raised (``fee_bps``), optionally walk-forward (calibrate on the first half, trade the second).

Per row: net PnL, the TrueX fees, hedges and hedge cost in it (Kraken fees and what the hedges paid beyond
the fair mid), PnL per traded notional (bps), Sharpe of 1 s PnL increments, fills, spread capture,
markouts at 1/5/30 s, maximum |inventory|, kill-switch trips and a 95 % bootstrap interval of the PnL
(moving blocks of ``BLOCK_S`` seconds of 1 s increments, so a minute of trending inventory is resampled
as a whole). A pooled row per strategy sums PnL over the cases (its interval resamples every case
independently and sums), and weights capture and markouts by fills.

Runs go to at most ``workers`` forked processes; the recordings are read once in the parent.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from fastmm.backtest.baselines import baselines
from fastmm.backtest.engine import BacktestOptions, BacktestResult, run_backtest
from fastmm.backtest.instruments import asset_of, for_recording, scale_from_data
from fastmm.backtest.market import MarketData, after
from fastmm.backtest.report import grid_values, pnl_split, sharpe
from fastmm.config import Config
from fastmm.core.models import IntensityEstimator, VolatilityEstimator
from fastmm.units import E8, DataError

BLOCK_S = 30
N_BOOT = 2000
HFTBT = "hftbacktest_glft"

Calibrator = Callable[[MarketData, Config], Config]


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    venue: MarketData
    references: tuple[MarketData, ...] = ()


def market_of(md: MarketData) -> str:
    return md.fmt.rsplit("/", 1)[-1]


def recordings(root: str | Path) -> list[Path]:
    """Every recording folder (or file) directly under ``root``, in name order."""
    p = Path(root)
    if not p.is_dir():
        raise DataError(f"{p}: not a folder of recordings")
    out = sorted(x for x in p.iterdir() if not x.name.startswith(".") and x.suffix != ".md"
                 and (x.is_dir() or x.suffix in (".gz", ".jsonl", ".txt")))
    if not out:
        raise DataError(f"{p}: no recordings")
    return out


def cases(mds: Sequence[tuple[str, MarketData]]) -> list[Case]:
    """Each recording alone, and each ordered pair of recordings of one symbol on different markets."""
    out = [Case(name, md) for name, md in mds]
    for vn, v in mds:
        for rn, r in mds:
            if v is not r and v.symbol == r.symbol and market_of(v) != market_of(r):
                out.append(Case(f"{vn} <- {rn}", v, (r,)))
    return out


def short_name(path: Path) -> str:
    """``binance-usdm-btcusdt-20240808`` -> ``usdm-btcusdt``."""
    parts = path.name.split("-")
    return "-".join(parts[1:3]) if len(parts) >= 4 else path.stem


def strategies(cfg: Config) -> list[tuple[str, Config]]:
    return baselines(cfg)


# -- calibration -------------------------------------------------------------------------------------
def fit_ladder_spread(md: MarketData, cfg: Config) -> Config:
    """Fit volatility and the fill intensity (A, k) on ``md`` with the core's own estimators, and set the
    ladder's full spread to twice the GLFT half-spread they imply (gamma from the config), at least one
    tick."""
    from fastmm.backtest.market import TOP, TRADE

    tick = float(cfg.instrument.tick_size)
    window = max(1.0, md.duration_s)
    vol = VolatilityEstimator(window)
    ins = IntensityEstimator(window)
    tops = np.flatnonzero(md.kind == TOP)
    mids = (md.a[tops] + md.b[tops]) / (2 * E8) / tick
    ts = md.t[tops]
    j = 0
    mid = 0.0
    tr = np.flatnonzero(md.kind == TRADE)
    for i in tr.tolist():
        t = int(md.t[i])
        while j < len(ts) and ts[j] <= t:
            mid = float(mids[j])
            vol.update(int(ts[j]), mid)
            j += 1
        if mid > 0:
            ins.on_trade(t, md.b[i] / E8 / tick - mid)
    g = cfg.quoting.risk_aversion
    a, k, sigma = ins.A, ins.k, vol.sigma
    c1 = math.log1p(g / k) / g
    c2 = math.sqrt(g / (2.0 * a * k) * (1.0 + g / k) ** (k / g + 1.0))
    half_ticks = max(1.0, c1 + 0.5 * sigma * c2)
    ref = float(mids[-1]) if len(mids) else 0.0
    if ref <= 0:
        return cfg
    bps = Decimal(str(round(2 * half_ticks / ref * 1e4, 2)))
    return replace(cfg, quoting=replace(cfg.quoting, base_spread_bps=min(bps, Decimal(5000))))


def fit_edge(md: MarketData, cfg: Config, *, z: float = 1.0) -> Config:
    """``fastmm calibrate`` on ``md``: the edge model's volatility prior, and its adverse-selection term
    when a depth's fills paid their fee at the markout horizon by ``z`` standard errors (otherwise the
    configured term stays); the config unchanged when the data is too short to fit at all."""
    from fastmm.backtest.market import TOP, TRADE
    from fastmm.core.calibrate import calibrate

    top, tr = md.kind == TOP, md.kind == TRADE
    e = cfg.edge
    try:
        c = calibrate(md.t[top], md.a[top], md.b[top], md.t[tr], md.a[tr], md.b[tr],
                      maker_fee_bps=float(cfg.fees.truex_maker_bps), vol_mult=e.vol_mult,
                      vol_horizon_s=e.horizon_s, z=z)
    except ValueError:
        return cfg
    adverse = e.adverse_bps if c.adverse_bps is None else c.adverse_bps      # no fit: keep the configured
    return replace(cfg, edge=replace(e, adverse_bps=adverse, sigma_prior_bps=max(0.0, c.sigma_bps)))


def fit_all(md: MarketData, cfg: Config) -> Config:
    """The walk-forward calibration: each strategy's parameters fitted on ``md`` (the ladder's spread,
    the edge model's adverse term); the model-based baselines fit themselves online."""
    return fit_edge(md, fit_ladder_spread(md, cfg))


def split(case: Case) -> tuple[Case, Case]:
    """First and second half of a case's common time span."""
    v = case.venue
    end = min([v.end_ns, *(r.end_ns for r in case.references)])
    mid_ns = v.start_ns + (end - v.start_ns) // 2
    secs = (mid_ns - v.start_ns) / 1e9
    first = Case(case.name, v.head(secs), tuple(r.head((mid_ns - r.start_ns) / 1e9) for r in case.references))
    second = Case(case.name, after(v, mid_ns), tuple(after(r, mid_ns) for r in case.references))
    return first, second


# -- metrics ----------------------------------------------------------------------------------------
def block_bootstrap_totals(inc: np.ndarray, block: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` resampled sums of the increments ``inc`` (moving blocks of ``block`` samples)."""
    m = len(inc)
    if m == 0:
        return np.zeros(n)
    b = max(1, min(block, m))
    nb = -(-m // b)
    starts = rng.integers(0, m - b + 1, size=(n, nb))
    idx = (starts[:, :, None] + np.arange(b)[None, None, :]).reshape(n, -1)[:, :m]
    return inc[idx].sum(axis=1)


def _interval(sums: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(sums, [2.5, 97.5])
    return float(lo), float(hi)


def fastmm_row(case: str, label: str, r: BacktestResult) -> dict[str, Any]:
    s = r.summary
    lot = float(r.cfg.instrument.lot_size)
    tick = float(r.cfg.instrument.tick_size)
    step = r.opts.sample_ns
    pnl = r.series["pnl_units"].astype(np.float64) / E8
    grid = grid_values(r.series["t"], pnl, r.start_ns, r.end_ns, step)
    notional = sum(px * tick * lots * lot for _, _, px, lots, _ in r.fills)
    total = float(s.total)
    mk = {f"{m.horizon_s:g}s": m.avg_bps for m in s.markouts}
    pos = r.series["position"]
    split = pnl_split(r)
    return {
        "case": case, "strategy": label, "engine": "fastmm", "total": total,
        "truex_fees": split["truex_fees"], "hedge_cost": split["hedge_cost"], "hedges": len(r.hedges),
        "notional": notional, "pnl_bps": total / notional * 1e4 if notional else None,
        "sharpe": sharpe(grid, step / 1e9)[0], "fills": r.venue.fills,
        "taker_fills": r.venue.taker_fills, "capture_bps": s.avg_spread_capture_bps,
        "mk1": mk.get("1s"), "mk5": mk.get("5s"), "mk30": mk.get("30s"),
        "max_inv": float(np.abs(pos).max()) * lot if len(pos) else 0.0,
        "trips": sum(1 for e in r.risk_events if "RiskTrip" in e),
        "inc": np.diff(np.concatenate([[0.0], grid, [total]])),
        "basis_bps": r.counts.get("basis_bps_x100", 0) / 100 if r.counts.get("references") else None,
    }


def hbt_row(case: str, label: str, h: Any, start_ns: int, end_ns: int, sample_ns: int) -> dict[str, Any]:
    t, eq = h.series["t"], h.series["equity"]
    ok = np.isfinite(eq)
    grid = grid_values(t[ok], eq[ok], start_ns, end_ns, sample_ns) if ok.any() else np.zeros(1)
    f = h.final
    total = float(grid[-1])
    value = f["value"]
    pos = h.series["position"]
    return {
        "case": case, "strategy": label, "engine": "hftbacktest", "total": total, "notional": value,
        "truex_fees": float(f["fee"]), "hedge_cost": None, "hedges": None,
        "pnl_bps": total / value * 1e4 if value else None, "sharpe": sharpe(grid, sample_ns / 1e9)[0],
        "fills": f["trades"], "taker_fills": None, "capture_bps": None, "mk1": None, "mk5": None,
        "mk30": None, "max_inv": float(np.abs(pos).max()) if len(pos) else 0.0, "trips": None,
        "inc": np.diff(np.concatenate([[0.0], grid])), "basis_bps": None,
    }


def add_intervals(rows: list[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Each row's 95 % interval, and a pooled row per strategy (cases resampled independently)."""
    rng = np.random.default_rng(seed)
    boots: dict[str, list[np.ndarray]] = {}
    for r in rows:
        sums = block_bootstrap_totals(r["inc"], BLOCK_S, N_BOOT, rng)
        r["ci"] = _interval(sums)
        boots.setdefault(r["strategy"], []).append(sums)
    pooled = []
    for strat, case_sums in boots.items():
        rs = [r for r in rows if r["strategy"] == strat]
        fills = sum(r["fills"] or 0 for r in rs)

        def wavg(key: str, rs: list[dict[str, Any]] = rs, fills: int = fills) -> float | None:
            xs = [(r[key], r["fills"]) for r in rs if r[key] is not None and r["fills"]]
            return sum(x * w for x, w in xs) / sum(w for _, w in xs) if xs else None

        notional = sum(r["notional"] or 0 for r in rs)
        total = sum(r["total"] for r in rs)
        inc = np.concatenate([r["inc"] for r in rs])
        trips = [r["trips"] for r in rs if r["trips"] is not None]
        pooled.append({
            "case": "POOLED", "strategy": strat, "engine": rs[0]["engine"], "total": total,
            "truex_fees": sum(r["truex_fees"] or 0.0 for r in rs),
            "hedge_cost": None if rs[0]["hedge_cost"] is None else sum(r["hedge_cost"] for r in rs),
            "hedges": None if rs[0]["hedges"] is None else sum(r["hedges"] for r in rs),
            "notional": notional, "pnl_bps": total / notional * 1e4 if notional else None,
            "sharpe": sharpe(np.cumsum(inc), 1.0)[0], "fills": fills,
            "taker_fills": sum(r["taker_fills"] or 0 for r in rs), "capture_bps": wavg("capture_bps"),
            "mk1": wavg("mk1"), "mk5": wavg("mk5"), "mk30": wavg("mk30"),
            "max_inv": max(r["max_inv"] for r in rs), "trips": sum(trips) if trips else None,
            "ci": _interval(np.sum(case_sums, axis=0)), "cases": len(rs),
            "positive_cases": sum(r["total"] > 0 for r in rs),
            "basis_bps": None,
        })
    return rows + pooled


# -- running ----------------------------------------------------------------------------------------
_SHARED: dict[str, Any] = {}


def _job(i: int) -> tuple[int, dict[str, Any]]:
    # configs travel by fork, not by pickle: a Config holds Secrets, which refuse to be pickled
    kind, case, label, cfg = _SHARED["jobs"][i]
    opts: BacktestOptions = _SHARED["opts"]
    if kind == "hbt":
        from fastmm.backtest import hftbt

        h = hftbt.run_hftbacktest(cfg, case.venue, feed_latency_ns=opts.feed_latency_ns,
                                  order_latency_ns=opts.order_latency_ns, cancels=opts.cancels)
        row = hbt_row(case.name, label, h, case.venue.start_ns, case.venue.end_ns + opts.feed_latency_ns,
                      opts.sample_ns)
    else:
        r = run_backtest(cfg, case.venue, opts, name=label, references=case.references)
        row = fastmm_row(case.name, label, r)
    row["worker_pid"] = os.getpid()
    return i, row


def run_suite(cfg: Config, all_cases: list[Case], opts: BacktestOptions, *, fee_bps: Sequence[Decimal] = (),
              walk_forward: bool = False, calibrate: Calibrator = fit_all, hftbacktest: bool = True,
              workers: int = 2, progress: TextIO | None = None) -> list[dict[str, Any]]:
    """Every strategy on every case (see the module docstring); rows without intervals."""
    err = progress or sys.stderr
    jobs: list[tuple[str, Case, str, Config]] = []
    for case in all_cases:
        c_cfg = for_recording(cfg, case.venue.symbol, data=case.venue)
        run_case = case
        if walk_forward:
            first, run_case = split(case)
            c_cfg = calibrate(first.venue, c_cfg)
        for label, s_cfg in strategies(c_cfg):
            jobs.append(("fastmm", run_case, label, s_cfg))
            for x in fee_bps:           # every strategy under the same fee stress, so the ranking is fair
                fees = replace(s_cfg.fees, truex_maker_bps=s_cfg.fees.truex_maker_bps + x)
                jobs.append(("fastmm", run_case, stressed_label(label, x), replace(s_cfg, fees=fees)))
        if hftbacktest and not case.references:
            jobs.append(("hbt", run_case, HFTBT, c_cfg))
            for x in fee_bps:           # hftbacktest charges the same TrueX maker fee
                fees = replace(c_cfg.fees, truex_maker_bps=c_cfg.fees.truex_maker_bps + x)
                jobs.append(("hbt", run_case, stressed_label(HFTBT, x), replace(c_cfg, fees=fees)))
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    _SHARED.update(jobs=jobs, opts=opts)
    print(f"suite: {len(all_cases)} cases, {len(jobs)} runs on {min(workers, len(jobs))} worker(s)", file=err)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for j in range(len(jobs)):
                i, row = _job(j)
                rows[i] = row
                print(f"  {row['case']}: {row['strategy']}: {row['total']:.2f}", file=err)
        else:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(workers, len(jobs))) as pool:
                for i, row in pool.imap_unordered(_job, range(len(jobs))):
                    rows[i] = row
                    print(f"  {row['case']}: {row['strategy']}: {row['total']:.2f}", file=err)
    finally:
        _SHARED.clear()
    return [r for r in rows if r is not None]


def stressed_label(label: str, extra_bps: Decimal) -> str:
    return f"{label} maker+{extra_bps}bps"


def ranking(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Strategies best first by a robust rule, not by the best single number: first whether the pooled
    PnL is positive at the configured fee and under every fee stress, then how many cases are positive,
    then the worst case, then the pooled PnL. Stress rows rank with their strategy, not on their own."""
    per_case = [r for r in rows if r["case"] != "POOLED"]
    pooled = {r["strategy"]: r for r in rows if r["case"] == "POOLED"}
    out = []
    for name in pooled:
        if " maker+" in name:
            continue
        own = [r for r in per_case if r["strategy"] == name]
        stress = {k: p["total"] for k, p in pooled.items() if k.startswith(name + " maker+")}
        out.append({"strategy": name, "cases": len(own), "positive_cases": sum(r["total"] > 0 for r in own),
                    "worst_case": min((r["total"] for r in own), default=0.0),
                    "pooled": pooled[name]["total"], "stress": stress,
                    "robust": pooled[name]["total"] > 0 and all(v > 0 for v in stress.values()),
                    "fills": pooled[name]["fills"]})
    out.sort(key=lambda r: (not r["robust"], -r["positive_cases"] / max(1, r["cases"]), -r["worst_case"],
                            -r["pooled"]))
    return out


def ranking_table(ranked: Sequence[dict[str, Any]]) -> str:
    out = ["| rank | strategy | pooled > 0, also fee-stressed | positive cases | worst case | pooled | "
           "pooled, fee-stressed | fills |", "| ---: | --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for i, r in enumerate(ranked, 1):
        stress = ", ".join(f"{k.rsplit(' ', 1)[-1]} {v:.2f}" for k, v in r["stress"].items()) or "-"
        out.append(f"| {i} | {r['strategy']} | {'yes' if r['robust'] else 'no'} | {r['positive_cases']}/"
                   f"{r['cases']} | {r['worst_case']:.2f} | {r['pooled']:.2f} | {stress} | {r['fills']} |")
    return "\n".join(out)


def _f(x: Any, fmt: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, fmt)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table, one row per case and strategy, pooled rows last."""
    head = ("| case | strategy | net PnL | TrueX fees | hedges | hedge cost | bps/notional | Sharpe 1s "
            "| fills | capture bps | mk1s | mk5s | mk30s | max inv | trips | PnL 95% CI |")
    out = [head, "| " + " | ".join(["---"] * 2 + ["---:"] * 14) + " |"]
    for r in rows:
        lo, hi = r.get("ci", (None, None))
        out.append(
            f"| {r['case']} | {r['strategy']} | {_f(r['total'], '.2f')} | {_f(r['truex_fees'], '.2f')} "
            f"| {_f(r['hedges'], 'd')} | {_f(r['hedge_cost'], '.2f')} | {_f(r['pnl_bps'], '.2f')} "
            f"| {_f(r['sharpe'], '.3f')} | {r['fills']} | {_f(r['capture_bps'], '.2f')} "
            f"| {_f(r['mk1'], '.2f')} | {_f(r['mk5'], '.2f')} | {_f(r['mk30'], '.2f')} "
            f"| {_f(r['max_inv'], '.4f')} "
            f"| {_f(r['trips'], 'd')} | [{_f(lo, '.2f')}, {_f(hi, '.2f')}] |")
    return "\n".join(out)


def json_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "inc"} for r in rows]


def load_cases(root: str | Path, *, max_lines: int | None = None, seconds: float | None = None,
               progress: TextIO | None = None) -> list[Case]:
    """Read every recording under ``root`` once; cases of each alone and of every cross-venue pair."""
    from fastmm.backtest.readers import load_market_data

    mds = []
    for p in recordings(root):
        md = load_market_data(p, max_lines=max_lines)
        if seconds is not None:
            md = md.head(seconds)
        if not asset_of(md.symbol):
            a = scale_from_data(md)
            print(f"suite: {p.name}: {md.symbol!r} is not in the asset table: quoted with the tick {a.tick} "
                  f"and lot {a.lot} its recording prints, sizes x {a.per_btc:.4g} (one BTC's notional)",
                  file=progress or sys.stderr)
        mds.append((short_name(p), md))
    return cases(mds)
