"""Fits of the edge model's parameters from a recording: volatility, fill intensity, markout curves.

Why: the spread must charge each quote what a fill there is expected to cost, and that is a property of
the market, not a number to guess. Pure functions on arrays (no files, no clocks); the CLI
(:mod:`fastmm.cli.calibrate`) reads the recording and writes the TOML fragment.

Method (every price in bps of the mid, every time in seconds):

* **volatility**: the mid (best bid + best ask) / 2 sampled on a 1 s grid; sigma = standard deviation
  of the 1 s log returns, bps per sqrt(second);
* **fill intensity**: in each window of ``window_s`` starting at mid m0, how far the trades reached:
  up = max over buy-taker trades of (price - m0), down = max over sell-taker trades of (m0 - price). A
  quote d bps from the mid would have been reached in that window when the reach is >= d.
  lambda(d) = (windows reached at d) / (windows x window_s), and ln lambda = ln A - k d is fitted by
  least squares over the depths with at least ``min_hits`` windows (hftbacktest's GLFT tutorial measures
  A and k the same way, from how deep trades reach);
* **markout curves**: for a maker quote at d filled in a window (reach >= d), its markout at horizon h is
  d + (side x (mid(window end + h) - m0)) bps, a buy quote filled by a fall and a sell
  quote by a rise; averaged over both sides and all windows that reached d. ``adverse(d, h)`` = d -
  markout: what the takers who reach a quote know;
* **the rule**: d* is the tightest depth whose fills' markout at ``horizon_s`` pays the maker fee with
  evidence: mean markout - fee >= ``z`` standard errors of that mean (one-sided; every tighter depth is
  picked off or not shown to pay), among depths reached in at least ``min_hits`` windows; the fragment
  sets the edge model's ``adverse_bps`` to d* minus the fee and the volatility term the model adds itself
  (vol_mult x sigma x sqrt(horizon)), so that the model quotes d* at the volatility of the fit and wider
  or tighter as the volatility moves. When no depth qualifies there is no fit (``adverse_bps`` None): a
  few minutes of data then keep the configured value instead of moving it on noise (a mean without the
  ``z`` test moved it to the tightest lucky depth, and walk-forward runs lost on the half they had not
  seen).

Assumptions: the recorded trades are the takers who would reach a quote on our venue (scaled, not
thinned); one window's fill is at the window's start mid (the queue is ignored, so lambda is an upper
bound at the touch); the recording is stationary over its length. It is a fit, not a guarantee: judge
it on data it was not fitted on (``--fit-fraction``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]   # times (int64 ns), prices and sides: numeric columns

HORIZONS_S = (1.0, 5.0, 30.0)


@dataclass(frozen=True, slots=True)
class Calibration:
    sigma_bps: float                      # bps per sqrt(second)
    intensity_a: float                    # fills per second at the mid
    intensity_k: float                    # per bps
    depths_bps: list[float]
    rate: list[float]                     # lambda(d), per second
    markout_bps: dict[str, list[float | None]]    # horizon -> markout at each depth
    best_depth_bps: float | None          # d*, None when no depth pays its fee with evidence
    adverse_bps: float | None             # the edge model's setting: d* - fee - its volatility term
    adverse_at_best_bps: float | None     # d* - markout(d*): what the takers who reach d* know
    horizon_s: float
    windows: int
    notes: list[str] = field(default_factory=list)


def mid_series(t: Array, bid: Array, ask: Array) -> tuple[Array, Array]:
    """(times, mids) of the tops with both sides, in the recording's price units."""
    ok = (bid > 0) & (ask > bid)
    return t[ok], (bid[ok].astype(np.float64) + ask[ok].astype(np.float64)) / 2.0


def mid_at(tm: Array, mid: Array, when: Array) -> Array:
    """The last mid at or before each time (the first mid before the first one)."""
    idx = np.searchsorted(tm, when, side="right") - 1
    return mid[np.clip(idx, 0, len(mid) - 1)]


def volatility_bps(tm: Array, mid: Array, step_s: float = 1.0) -> float:
    """Standard deviation of the ``step_s`` log returns, scaled to bps per sqrt(second)."""
    if len(tm) < 2:
        return 0.0
    step = int(step_s * 1e9)
    grid = np.arange(tm[0], tm[-1] + 1, step, dtype=np.int64)
    if len(grid) < 3:
        return 0.0
    r = np.diff(np.log(mid_at(tm, mid, grid)))
    return float(np.std(r, ddof=1)) * 1e4 / math.sqrt(step_s)


def fit_exponential(depths: Array, rate: Array) -> tuple[float, float]:
    """(A, k) of rate = A exp(-k d) by least squares on ln(rate); (nan, nan) with under two points."""
    ok = rate > 0
    if np.count_nonzero(ok) < 2:
        return math.nan, math.nan
    slope, icept = np.polyfit(depths[ok], np.log(rate[ok]), 1)
    return float(math.exp(icept)), float(-slope)


def calibrate(t: Array, bid: Array, ask: Array, tr_t: Array, tr_side: Array,
              tr_px: Array, *, window_s: float = 5.0, depths_bps: tuple[float, ...] | None = None,
              horizon_s: float = 5.0, maker_fee_bps: float = 0.0, vol_mult: float = 1.0,
              vol_horizon_s: float = 5.0, min_hits: int = 10, z: float = 1.0) -> Calibration:
    """Fit everything from tops (``t``, ``bid``, ``ask``) and trades (time, taker side 1 buy / 2 sell,
    price); times in ns, prices in any one unit."""
    tm, mid = mid_series(t, bid, ask)
    if len(tm) < 2:
        raise ValueError("calibration needs at least two tops with both sides")
    sigma = volatility_bps(tm, mid)
    depths = np.array(depths_bps if depths_bps is not None else np.arange(0.0, 20.01, 0.5), dtype=np.float64)
    w = int(window_s * 1e9)
    starts = np.arange(tm[0], tm[-1] - w, w, dtype=np.int64)
    n = len(starts)
    if n < 2:
        raise ValueError("the recording is shorter than two calibration windows")
    m0 = mid_at(tm, mid, starts)
    win = np.searchsorted(starts, tr_t, side="right") - 1
    okt = (win >= 0) & (win < n)
    win, side, px = win[okt], tr_side[okt], tr_px[okt].astype(np.float64)
    rel = (px - m0[win]) / m0[win] * 1e4           # trade price vs the window's start mid, bps
    up = np.full(n, -np.inf)
    down = np.full(n, -np.inf)
    b = side == 1
    np.maximum.at(up, win[b], rel[b])
    np.maximum.at(down, win[~b], -rel[~b])
    rate = np.array([(np.count_nonzero(up >= d) + np.count_nonzero(down >= d)) / (2 * n * window_s)
                     for d in depths])
    hits = rate * 2 * n * window_s
    fit_ok = hits >= min_hits
    a, k = fit_exponential(depths[fit_ok], rate[fit_ok])
    curves: dict[str, list[float | None]] = {}
    stderr: dict[str, list[float | None]] = {}
    for h in sorted({*HORIZONS_S, horizon_s}):
        later = mid_at(tm, mid, starts + w + int(h * 1e9))
        move = (later - m0) / m0 * 1e4              # bps, positive = up
        row: list[float | None] = []
        errs: list[float | None] = []
        for d in depths:
            sell_hit = up >= d       # our ask at +d was lifted: a sell, it wins when the mid falls
            buy_hit = down >= d
            cnt = np.count_nonzero(sell_hit) + np.count_nonzero(buy_hit)
            if cnt < min_hits:
                row.append(None)
                errs.append(None)
                continue
            marks = np.concatenate([d - move[sell_hit], d + move[buy_hit]])
            row.append(float(marks.mean()))
            errs.append(float(marks.std(ddof=1)) / math.sqrt(cnt))
        curves[f"{h:g}s"] = row
        stderr[f"{h:g}s"] = errs
    key = f"{horizon_s:g}s"
    row, errs = curves[key], stderr[key]
    measured = [(i, m, e) for i, (m, e) in enumerate(zip(row, errs, strict=True))
                if m is not None and e is not None]
    if not measured:
        raise ValueError("no depth was reached often enough to measure a markout")
    # the tightest depth whose fills are worth their fee at the horizon, with evidence (z standard errors)
    best = next(((i, m) for i, m, e in measured if m - maker_fee_bps >= z * e), None)
    notes = []
    d_best = adverse = adverse_rest = None
    if best is None:
        notes.append(f"no depth measured has a {key} markout net of the fee >= {z:g} standard errors: no fit "
                     f"(keep the configured adverse_bps; quote wider, or not at all)")
    else:
        d_best = float(depths[best[0]])
        adverse = d_best - best[1]
        # the edge model adds the fee and vol_mult x sigma x sqrt(vol_horizon) itself: the rest is its term
        adverse_rest = d_best - maker_fee_bps - vol_mult * sigma * math.sqrt(vol_horizon_s)
    return Calibration(sigma_bps=sigma, intensity_a=a, intensity_k=k, depths_bps=depths.tolist(),
                       rate=rate.tolist(), markout_bps=curves, best_depth_bps=d_best,
                       adverse_bps=adverse_rest, adverse_at_best_bps=adverse, horizon_s=horizon_s,
                       windows=n, notes=notes)


def toml_fragment(c: Calibration, source: str) -> str:
    """The ``[edge]`` settings the calibration fits, with what it measured as comments."""
    def f(x: float | None) -> str:
        return f"{x:.4g}" if x is not None and math.isfinite(x) else "none"

    lines = [f"# fastmm calibrate: {source}",
             f"# {c.windows} windows; sigma {f(c.sigma_bps)} bps/sqrt(s); intensity lambda(d) = "
             f"{f(c.intensity_a)} x exp(-{f(c.intensity_k)} d) per s, d in bps",
             f"# best depth {f(c.best_depth_bps)} bps at the {c.horizon_s:g} s markout (takers reaching it "
             f"know {f(c.adverse_at_best_bps)} bps)"]
    for h, row in c.markout_bps.items():
        pts = ", ".join(f"{d:g}:{'-' if m is None else f'{m:.2f}'}" for d, m in
                        zip(c.depths_bps, row, strict=True) if d in (0.0, 1.0, 2.0, 5.0, 10.0, 20.0))
        lines.append(f"# markout {h} by depth bps -> bps: {pts}")
    lines += [f"# {n}" for n in c.notes]
    lines += ["[edge]", f"sigma_prior_bps = {f(max(c.sigma_bps, 0.0))}"]
    if c.adverse_bps is not None:
        lines.append(f"adverse_bps = {f(c.adverse_bps)}")
    return "\n".join(lines) + "\n"
