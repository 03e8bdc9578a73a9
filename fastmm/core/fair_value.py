"""Short-horizon fair value of the reference books: microprice, signed trade flow, volatility, momentum.

Why: a TrueX quote is picked off when the deep venues have already moved and our quote has not. What
moves next is partly visible now: the touch's size imbalance (Stoikov 2018, the microprice), the sign of
the last seconds' taker flow (Cont, Kukanov and Stoikov 2014), and how far the mid has just run. This
module turns those into floats in bps of the mid; :mod:`fastmm.core.edge` turns them into quotes.

Sans-I/O: every input carries its time; nothing here reads a clock. Inputs:

* :meth:`FairValue.on_book`: one reference venue's best bid/ask and their sizes (1e-8 units), as the
  quoter reads them from shared memory (``Top.bid_sz_e8``) and the backtest from the recording;
* :meth:`FairValue.on_trade`: a market trade's taker side and size (the backtest from the recording,
  the quoter from the feeds' ``trades.<venue>`` rings, :mod:`fastmm.procs.trade_channel`);
* :meth:`FairValue.on_mid`: the fused fair mid (what the aggregator gives the core), for the volatility
  and the momentum.

Outputs: :meth:`signal_bps` (expected move of the fair mid, bps, positive = up), :attr:`sigma_bps`
(bps per sqrt(second)) and :attr:`move_bps` (fused mid minus its fast average, bps: the run the quotes
must fade).
"""

from __future__ import annotations

import math

from fastmm.config import EdgeConfig
from fastmm.core.models import VolatilityEstimator


class FairValue:
    """Signals of one instrument's reference books; floats only (they are signals, not money)."""

    __slots__ = ("_books", "_ema", "_ema_ns", "_fade_tau_ns", "_flow_abs", "_flow_ns", "_flow_signed",
                 "_flow_tau_ns", "_flow_w", "_micro_w", "mid", "now_ns", "vol")

    def __init__(self, cfg: EdgeConfig) -> None:
        self._micro_w = cfg.micro_weight
        self._flow_w = cfg.flow_bps
        self._flow_tau_ns = cfg.flow_window_s * 1e9
        self._fade_tau_ns = cfg.fade_window_ms * 1e6
        # log-price in bps, so the estimator's "ticks" are bps and its sigma is bps / sqrt(s)
        self.vol = VolatilityEstimator(cfg.volatility_window_s, prior_sigma=cfg.sigma_prior_bps)
        self._books: dict[str, float] = {}      # source -> (microprice - mid) in bps of its mid
        self._flow_signed = 0.0
        self._flow_abs = 0.0
        self._flow_ns: int | None = None
        self._ema = 0.0
        self._ema_ns: int | None = None
        self.mid = 0.0
        self.now_ns = 0                          # the newest input's time

    # -- inputs -----------------------------------------------------------------------------------
    def on_book(self, now_ns: int, source: str, bid_e8: int, ask_e8: int, bid_sz_e8: int,
                ask_sz_e8: int) -> None:
        """A reference top of book; a missing side or size drops that source's microprice."""
        if now_ns > self.now_ns:
            self.now_ns = now_ns
        if bid_e8 <= 0 or ask_e8 <= bid_e8 or bid_sz_e8 <= 0 or ask_sz_e8 <= 0:
            self._books.pop(source, None)
            return
        mid2 = bid_e8 + ask_e8
        # microprice = (bid x ask_size + ask x bid_size) / (bid_size + ask_size)
        micro2 = 2.0 * (bid_e8 * ask_sz_e8 + ask_e8 * bid_sz_e8) / (bid_sz_e8 + ask_sz_e8)
        self._books[source] = (micro2 - mid2) / mid2 * 1e4

    def on_trade(self, now_ns: int, taker_side: int, qty_e8: int) -> None:
        """A market trade: ``taker_side`` 1 = buyer took, 2 = seller took."""
        if qty_e8 <= 0 or taker_side not in (1, 2):
            return
        if now_ns > self.now_ns:
            self.now_ns = now_ns
        self._decay_flow(now_ns)
        q = float(qty_e8)
        self._flow_signed += q if taker_side == 1 else -q
        self._flow_abs += q

    def on_mid(self, now_ns: int, mid: float) -> None:
        """The fused fair mid (PYUSD): volatility and the fast average the momentum is measured from."""
        if not (mid > 0.0 and mid < math.inf):
            return
        if now_ns > self.now_ns:
            self.now_ns = now_ns
        self.mid = mid
        x = math.log(mid) * 1e4
        self.vol.update(now_ns, x)
        last = self._ema_ns
        if last is None:
            self._ema, self._ema_ns = x, now_ns
            return
        dt = now_ns - last
        if dt > 0:
            a = 1.0 - math.exp(-dt / self._fade_tau_ns)
            self._ema += a * (x - self._ema)
            self._ema_ns = now_ns

    def _decay_flow(self, now_ns: int) -> None:
        last = self._flow_ns
        self._flow_ns = now_ns
        if last is None or now_ns <= last:
            return
        f = math.exp(-(now_ns - last) / self._flow_tau_ns)
        self._flow_signed *= f
        self._flow_abs *= f

    # -- outputs ----------------------------------------------------------------------------------
    @property
    def micro_bps(self) -> float:
        """Mean over the reference books of (microprice - mid), bps."""
        b = self._books
        return sum(b.values()) / len(b) if b else 0.0

    def flow(self, now_ns: int) -> float:
        """Signed taker flow over the window, in [-1, 1] (buyers minus sellers over all)."""
        self._decay_flow(now_ns)
        return self._flow_signed / self._flow_abs if self._flow_abs > 0.0 else 0.0

    def signal_bps(self, now_ns: int) -> float:
        """Expected short-horizon move of the fair mid, bps: microprice term plus trade-flow term."""
        return self._micro_w * self.micro_bps + self._flow_w * self.flow(now_ns)

    def signals(self) -> tuple[float, float, float]:
        """(:attr:`sigma_bps`, :meth:`signal_bps` at the newest input's time, :attr:`move_bps`) in one call,
        the same floats as the three: the edge model reads all of them on every decision, and after a
        sleep each Python call is a cold frame (issue 21 item 3)."""
        now_ns = self.now_ns
        self._decay_flow(now_ns)
        b = self._books
        micro = sum(b.values()) / len(b) if b else 0.0
        flow = self._flow_signed / self._flow_abs if self._flow_abs > 0.0 else 0.0
        signal = self._micro_w * micro + self._flow_w * flow
        mid = self.mid
        move = 0.0 if self._ema_ns is None or mid <= 0.0 else math.log(mid) * 1e4 - self._ema
        return self.vol.sigma, signal, move

    @property
    def sigma_bps(self) -> float:
        """Volatility of the fused mid, bps per sqrt(second)."""
        return self.vol.sigma

    @property
    def move_bps(self) -> float:
        """How far the fused mid ran from its fast average (``fade_window_ms``), bps."""
        if self._ema_ns is None or self.mid <= 0.0:
            return 0.0
        return math.log(self.mid) * 1e4 - self._ema
