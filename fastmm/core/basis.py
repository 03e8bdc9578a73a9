"""The quoted venue's price over the reference venues' fair price, estimated online (sans-I/O).

TrueX BTC-PYUSD trades at a small, drifting premium or discount to Coinbase/Kraken BTC-USD (PYUSD is
not USD); a perpetual future trades at a basis to spot. A fair price taken from the references alone
is off by that much, which a maker pays on every fill. The estimate is a time-weighted exponential
average of ``venue mid / reference mid - 1`` (a ratio, so it holds across price levels), sampled
whenever the venue's own book reaches the engine; ``halflife_s`` sets how fast it follows a drift.
A float signal, never money.
"""

from __future__ import annotations

import math


class BasisEstimator:
    """Relative basis of the venue over the reference; :meth:`apply` moves a reference mid onto the venue."""

    __slots__ = ("_k", "_last_ns", "ratio", "samples")

    def __init__(self, halflife_s: float) -> None:
        if not halflife_s > 0:
            raise ValueError("the basis half-life must be positive")
        self._k = math.log(2.0) / (halflife_s * 1e9)
        self._last_ns: int | None = None
        self.ratio = 0.0          # venue / reference - 1
        self.samples = 0

    def update(self, now_ns: int, venue_mid: float, ref_mid: float) -> None:
        """One observation of both mids (any unit, the same for both); non-positive ones are ignored."""
        if not (venue_mid > 0.0 and ref_mid > 0.0) or not math.isfinite(venue_mid / ref_mid):
            return
        x = venue_mid / ref_mid - 1.0
        last = self._last_ns
        if last is None:
            self.ratio = x
        else:
            w = math.exp(-self._k * max(0, now_ns - last))
            self.ratio = w * self.ratio + (1.0 - w) * x
        self._last_ns = now_ns
        self.samples += 1

    @property
    def bps(self) -> float:
        return self.ratio * 1e4

    def apply(self, ref_mid: float) -> float:
        return ref_mid * (1.0 + self.ratio)
