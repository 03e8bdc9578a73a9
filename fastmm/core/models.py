"""Where the first quote level sits: distances below and above the fair mid, in (float) ticks.

Three models, chosen by ``QuotingConfig.model``:

* ``ladder``: half of ``base_spread_bps`` of the mid each side, shifted down by the inventory skew
  (positive when long, so a long position quotes lower to sell more and buy less);
* ``avellaneda_stoikov``: reservation price r = s - q g s2 T and spread g s2 T + (2/g) ln(1 + g/k), i.e.
  a half-spread of g s2 T / 2 + (1/g) ln(1 + g/k) around r (Avellaneda and Stoikov 2008), with the
  horizon T = ``horizon_s`` rolling;
* ``glft``: the Gueant-Lehalle-Fernandez-Tapia closed-form approximation (Gueant 2017) with xi = g and
  one base size as the inventory unit: c1 = ln(1 + g/k) / g, c2 = sqrt(g / (2 A k) (1 + g/k)^(k/g + 1)),
  half-spread c1 + s c2 / 2, skew s c2 per unit of inventory.

Both as hftbacktest's GLFT tutorial trades its closed form: half-spread x ``model_spread_adj``, skew x
``model_skew_adj``, prices on a grid of half-spread steps (``model_grid``, :func:`on_grid`); with the
adjustments 1, 1 and no grid they are the published closed forms (the unit tests check those).

Units: everything in ticks and seconds: s (``VolatilityEstimator``) in ticks per sqrt(second), k per
tick and A per second (``IntensityEstimator``, fitted online from the trade flow as
lambda(d) = A exp(-k d), d = a trade's distance from the mid), g (``risk_aversion``) per tick of PnL, and
inventory q in base sizes (position / base size). Signals are floats; prices become ints in the ladder.
"""

from __future__ import annotations

import math
from typing import Protocol

from fastmm.config import QuotingConfig


class VolatilityEstimator:
    """Realized variance of the mid per second, exponentially weighted over ``window_s``.

    Sums of squared mid changes and of elapsed time decay together, so var = sum(dx^2) / sum(dt) is a
    rate that irregular update times do not bias.
    """

    __slots__ = ("_last_ns", "_last_x", "_sum_dt", "_sum_dx2", "_tau_ns", "prior_sigma")

    def __init__(self, window_s: float, prior_sigma: float = 1.0) -> None:
        self._tau_ns = window_s * 1e9
        self.prior_sigma = prior_sigma
        self._last_ns: int | None = None
        self._last_x = 0.0
        self._sum_dx2 = 0.0
        self._sum_dt = 0.0

    def update(self, now_ns: int, mid_ticks: float) -> None:
        last = self._last_ns
        if last is None:
            self._last_ns, self._last_x = now_ns, mid_ticks
            return
        dt = now_ns - last
        if dt <= 0:
            self._last_x = mid_ticks  # same instant: keep the newest value, no time passed
            return
        decay = math.exp(-dt / self._tau_ns)
        dx = mid_ticks - self._last_x
        self._sum_dx2 = self._sum_dx2 * decay + dx * dx
        self._sum_dt = self._sum_dt * decay + dt * 1e-9
        self._last_ns, self._last_x = now_ns, mid_ticks

    @property
    def variance(self) -> float:
        """Ticks squared per second (the prior until a second of data has been seen)."""
        if self._sum_dt < 1.0:
            return self.prior_sigma * self.prior_sigma
        return self._sum_dx2 / self._sum_dt

    @property
    def sigma(self) -> float:
        """The square root of :attr:`variance` (inlined: one frame less on every decision)."""
        if self._sum_dt < 1.0:
            return math.sqrt(self.prior_sigma * self.prior_sigma)
        return math.sqrt(self._sum_dx2 / self._sum_dt)


class IntensityEstimator:
    """Fits lambda(d) = A exp(-k d): how often per second the market trades at least d ticks from the mid.

    As hftbacktest's GLFT tutorial measures it (``measure_trading_intensity``): time is cut into steps
    of ``step_ns`` (100 ms); a step *arrives* at depth d when a trade of the step reached d or beyond,
    so a burst of trades at one instant counts once, as it can fill a resting quote once. Arrival counts
    per depth bin (one tick wide by default) decay over ``window_s``; a least-squares line through
    ln(rate) against depth, over the leading bins that have arrivals, gives -k (slope) and ln A
    (intercept). Until two bins have arrivals, or when the fit is not a decreasing curve, the priors stay.
    """

    __slots__ = ("A", "_bin", "_counts", "_elapsed", "_last_ns", "_min_count", "_step", "_step_depth",
                 "_step_ns", "_tau_s", "k", "trades")

    def __init__(self, window_s: float, *, bin_ticks: float = 1.0, bins: int = 70, prior_a: float = 1.0,
                 prior_k: float = 0.01, min_count: float = 1.0, step_ns: int = 100_000_000) -> None:
        if bin_ticks <= 0 or bins < 2 or step_ns <= 0:
            raise ValueError("intensity bins and step must be positive, and at least two bins")
        self._tau_s = window_s
        self._bin = bin_ticks
        self._counts = [0.0] * bins
        self._last_ns: int | None = None
        self._elapsed = 0.0
        self._min_count = min_count
        self._step_ns = step_ns
        self._step = -1              # the step whose deepest trade is being collected
        self._step_depth = -1.0
        self.A = prior_a
        self.k = prior_k
        self.trades = 0

    def _decay_to(self, now_ns: int) -> None:
        if self._last_ns is None:
            self._last_ns = now_ns
            return
        dt = (now_ns - self._last_ns) * 1e-9
        if dt <= 0:
            return
        f = math.exp(-dt / self._tau_s)
        self._counts = [c * f for c in self._counts]
        self._elapsed += dt
        self._last_ns = now_ns

    def on_trade(self, now_ns: int, depth_ticks: float) -> None:
        """A trade ``depth_ticks`` away from the mid (either side) at ``now_ns``."""
        if not math.isfinite(depth_ticks):
            return
        self.trades += 1
        step = now_ns // self._step_ns
        if step != self._step:
            self._close_step(step * self._step_ns)
            self._step = step
        d = abs(depth_ticks)
        if d > self._step_depth:
            self._step_depth = d

    def _close_step(self, now_ns: int) -> None:
        """Book the finished step's deepest arrival, then refit."""
        self._decay_to(now_ns)
        if self._step_depth < 0:
            return
        counts = self._counts
        reach = min(len(counts), int(self._step_depth / self._bin) + 1)
        for j in range(reach):
            counts[j] += 1.0
        self._step_depth = -1.0
        self._fit()

    def _fit(self) -> None:
        # effective observation time of exponentially decayed counts
        span = self._tau_s * (1.0 - math.exp(-self._elapsed / self._tau_s)) if self._elapsed > 0 else 0.0
        if span <= 0:
            return
        xs, ys = [], []
        for j, c in enumerate(self._counts):
            if c < self._min_count:
                break            # the leading bins with arrivals, as the tutorial's fit
            xs.append(j * self._bin)
            ys.append(math.log(c / span))
        n = len(xs)
        if n < 2:
            return
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
        slope = sxy / sxx
        if slope >= 0 or not math.isfinite(slope):
            return
        self.k = -slope
        self.A = math.exp(my - slope * mx)


def on_grid(mid_ticks: float, bid_off: float, ask_off: float, step_ticks: float) -> tuple[float, float]:
    """Offsets moved out to prices on multiples of ``step_ticks`` (rounded to whole ticks, at least one):
    the bid down, the ask up. Why: hftbacktest's GLFT tutorial quotes such a grid; while the target
    moves inside one step the order keeps its price and so its place in the queue, which on a deep book
    is what gets a resting order filled before the price runs through it."""
    g = max(1.0, float(round(step_ticks)))
    bid = math.floor(round(mid_ticks - bid_off) / g) * g
    ask = math.ceil(round(mid_ticks + ask_off) / g) * g
    return mid_ticks - bid, ask - mid_ticks


class SpreadModel(Protocol):
    def offsets(self, mid_ticks: float, position_lots: int, skew_ticks: float) -> tuple[float, float]:
        """(bid distance below the mid, ask distance above it) in ticks for the first level."""
        ...


class LadderSpread:
    """A fixed spread in bps of the mid, shifted by the inventory skew."""

    __slots__ = ("_half_frac",)

    def __init__(self, cfg: QuotingConfig) -> None:
        self._half_frac = float(cfg.base_spread_bps) / 20_000.0

    def offsets(self, mid_ticks: float, position_lots: int, skew_ticks: float) -> tuple[float, float]:
        half = mid_ticks * self._half_frac
        return half + skew_ticks, half - skew_ticks


class _ClosedForm:
    """What A-S and GLFT share: gamma, the inventory unit, the estimators, and the tutorial's
    adjustments and grid applied to the closed form's half-spread and inventory shift."""

    __slots__ = ("adj_skew", "adj_spread", "base_lots", "gamma", "grid", "intensity", "vol")

    def __init__(self, cfg: QuotingConfig, base_lots: int, vol: VolatilityEstimator,
                 intensity: IntensityEstimator) -> None:
        self.gamma = cfg.risk_aversion
        self.adj_spread = cfg.model_spread_adj
        self.adj_skew = cfg.model_skew_adj
        self.grid = cfg.model_grid
        self.base_lots = max(1, base_lots)
        self.vol = vol
        self.intensity = intensity

    def _quote(self, mid_ticks: float, half: float, shift_per_unit: float,
               position_lots: int) -> tuple[float, float]:
        """(bid, ask) offsets around the reservation price mid - shift x position (in base sizes)."""
        half *= self.adj_spread
        shift = shift_per_unit * self.adj_skew * position_lots / self.base_lots
        if not self.grid:
            return half + shift, half - shift
        return on_grid(mid_ticks, half + shift, half - shift, half)


class AvellanedaStoikov(_ClosedForm):
    """Avellaneda-Stoikov with a rolling horizon; the inventory skew comes from the model itself."""

    __slots__ = ("horizon_s",)

    def __init__(self, cfg: QuotingConfig, base_lots: int, vol: VolatilityEstimator,
                 intensity: IntensityEstimator) -> None:
        super().__init__(cfg, base_lots, vol, intensity)
        self.horizon_s = cfg.horizon_s

    def offsets(self, mid_ticks: float, position_lots: int, skew_ticks: float) -> tuple[float, float]:
        g = self.gamma
        gvt = g * self.vol.variance * self.horizon_s          # r = s - q g s2 T
        return self._quote(mid_ticks, 0.5 * gvt + math.log1p(g / self.intensity.k) / g, gvt, position_lots)


class GLFT(_ClosedForm):
    """Gueant-Lehalle-Fernandez-Tapia closed form (xi = gamma, delta = one base size)."""

    __slots__ = ()

    def coefficients(self) -> tuple[float, float]:
        g, a, k = self.gamma, self.intensity.A, self.intensity.k
        c1 = math.log1p(g / k) / g
        c2 = math.sqrt(g / (2.0 * a * k) * (1.0 + g / k) ** (k / g + 1.0))
        return c1, c2

    def offsets(self, mid_ticks: float, position_lots: int, skew_ticks: float) -> tuple[float, float]:
        c1, c2 = self.coefficients()
        sigma = self.vol.sigma
        return self._quote(mid_ticks, c1 + 0.5 * sigma * c2, sigma * c2, position_lots)


def make_model(cfg: QuotingConfig, base_lots: int, vol: VolatilityEstimator,
               intensity: IntensityEstimator) -> SpreadModel:
    if cfg.model == "avellaneda_stoikov":
        return AvellanedaStoikov(cfg, base_lots, vol, intensity)
    if cfg.model == "glft":
        return GLFT(cfg, base_lots, vol, intensity)
    return LadderSpread(cfg)
