"""The ``edge`` spread model: quotes centred on a short-horizon fair value, each side charged its costs.

Why: a fixed spread around the mid is filled most by the takers who know the mid is about to move
(negative markouts), and the inventory it collects is hedged at 26 bps. So each side's distance from
the mid is built from what a fill there is expected to cost (all in bps of the mid):

    half = max(min_half_spread, TrueX maker fee + adverse_bps + vol_mult x sigma x sqrt(horizon_s))
    centre = signal (microprice + trade flow) - skew_bps x position / max_position
    bid distance = half - centre + hedge charge(buy) + fade(buy)
    ask distance = half + centre + hedge charge(sell) + fade(sell)

* the hedge charge of a side that grows |position|: ``hedge_charge`` x Kraken taker fee x the share of
  the hedge threshold the position would use after one base-size fill (a fill that may need hedging
  pays for it in advance; one that shrinks the position pays nothing);
* the fade: when the fused mid ran more than ``fade_bps`` from its fast average, the side it runs into
  (the ask on a rise) steps back ``fade_extra_bps``, or is pulled (``fade_pull``): the takers who saw the
  deep venues move first are the ones who would fill it.

:meth:`EdgeModel.offsets` returns ``math.inf`` for a pulled side; the quote engine then quotes nothing
on that side. Signals come from :class:`~fastmm.core.fair_value.FairValue`, fed by the trading core.
"""

from __future__ import annotations

import math

from fastmm.config import EdgeConfig, FeesConfig
from fastmm.core.fair_value import FairValue


class EdgeModel:
    """A :class:`~fastmm.core.models.SpreadModel` over a :class:`FairValue`; floats, no I/O."""

    __slots__ = ("_adverse", "_base", "_fade", "_fade_extra", "_fade_pull", "_fee", "_hedge_bps", "_horizon",
                 "_max", "_min_half", "_skew", "_threshold", "_vol_mult", "fair", "last")

    def __init__(self, cfg: EdgeConfig, fees: FeesConfig, fair: FairValue, *, base_lots: int, max_lots: int,
                 hedge_threshold_lots: int) -> None:
        self.fair = fair
        self._fee = float(fees.truex_maker_bps)
        self._hedge_bps = cfg.hedge_charge * float(fees.kraken_taker_bps)
        self._adverse = cfg.adverse_bps
        self._vol_mult = cfg.vol_mult
        self._horizon = math.sqrt(cfg.horizon_s)
        self._min_half = cfg.min_half_spread_bps
        self._fade = cfg.fade_bps
        self._fade_extra = cfg.fade_extra_bps
        self._fade_pull = cfg.fade_pull
        self._skew = cfg.skew_bps
        self._base = max(1, base_lots)
        self._max = max(1, max_lots)
        self._threshold = max(1, hedge_threshold_lots)
        self.last = (0.0, 0.0, 0.0)   # (half, centre, move) of the last call, bps: for logs and tests

    def half_spread_bps(self) -> float:
        """Fee + expected adverse selection + volatility over the horizon, floored."""
        h = self._fee + self._adverse + self._vol_mult * self.fair.sigma_bps * self._horizon
        return h if h > self._min_half else self._min_half

    def hedge_charge_bps(self, position_lots: int, sign: int) -> float:
        """Expected hedge cost of one more base-size fill on the side of ``sign`` (+1 buy, -1 sell)."""
        after = position_lots + sign * self._base
        if abs(after) <= abs(position_lots):
            return 0.0
        use = abs(after) / self._threshold
        return self._hedge_bps * (use if use < 1.0 else 1.0)

    def offsets(self, mid_ticks: float, position_lots: int, skew_ticks: float) -> tuple[float, float]:
        """(bid distance below the mid, ask distance above it) in ticks; inf = pull that side. The
        inventory skew of :class:`~fastmm.core.inventory.InventoryManager` is replaced by ``skew_bps``."""
        # the fair value's three reads in one call, and half_spread_bps / hedge_charge_bps inlined (same
        # floats): after a sleep every Python frame is a cold one (issue 21 item 3)
        sigma, signal, move = self.fair.signals()
        half = self._fee + self._adverse + self._vol_mult * sigma * self._horizon
        if not half > self._min_half:
            half = self._min_half
        centre = signal - self._skew * position_lots / self._max
        base = self._base
        pos_abs = abs(position_lots)
        after = abs(position_lots + base)       # a buy
        charge_buy = 0.0
        if after > pos_abs:
            use = after / self._threshold
            charge_buy = self._hedge_bps * (use if use < 1.0 else 1.0)
        after = abs(position_lots - base)       # a sell
        charge_sell = 0.0
        if after > pos_abs:
            use = after / self._threshold
            charge_sell = self._hedge_bps * (use if use < 1.0 else 1.0)
        bid = half - centre + charge_buy
        ask = half + centre + charge_sell
        if move > self._fade:
            ask = math.inf if self._fade_pull else ask + self._fade_extra
        elif move < -self._fade:
            bid = math.inf if self._fade_pull else bid + self._fade_extra
        self.last = (half, centre, move)
        per_bps = mid_ticks * 1e-4
        return bid * per_bps, ask * per_bps
