"""PriceAggregator: one fair mid and a confidence in [0, 1] from the reference venues (sans-I/O).

Each source contributes its top of book (integer 1e-8 units, as published in shared memory) and the
local receive time. A source is used while it is *valid* (a two-sided book, not crossed, not flagged
stale by its feed) and *fresh* (younger than its ``stale_after_ns``). The fair mid is the mean of the
valid sources' mids weighted by configured weight x freshness x tightness, then moved by the USD->PYUSD
basis. The confidence is the product of four factors, each in [0, 1]:

* coverage   0.5 + 0.5 x (weight of the sources in use / weight of all sources): losing one of two
             sources lowers confidence to 0.75 but keeps a price (the seed: Coinbase dead -> Kraken alone)
* freshness  weighted mean over sources in use of 1 - 0.5 x age / stale_after (1 when just received)
* tightness  weighted mean of 1 - spread / (4 x max_dispersion): a wide book says little about value
* agreement  1 - dispersion / max_dispersion, dispersion = (highest mid - lowest mid) / fair mid

No source in use: no price (mid 0, confidence 0), so the quoter pulls its quotes. Time is an argument;
:meth:`PriceAggregator.update` and :meth:`PriceAggregator.on_timer` return a new :class:`FairPrice` only
when the mid or the confidence (to 1e-3) changed, so a quiet market causes no work downstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from fastmm.speedups import compiled_twin
from fastmm.units import BPS, E8

if TYPE_CHECKING:
    from fastmm.config import Config


class FairPrice(NamedTuple):
    """A named tuple (immutable, a third of a frozen dataclass's cost to build): one per price event."""

    mid_e8: int             # fair mid in PYUSD, 1e-8 units (0 = no price)
    mid: float              # the same as a float signal, in PYUSD
    confidence: float
    sources: tuple[str, ...]   # the sources in use
    t_ns: int               # when it was computed (the caller's clock)
    t_recv_ns: int          # receive time of the newest input that went into it (for latency stages)

    @property
    def has_price(self) -> bool:
        return self.mid_e8 > 0


@dataclass(slots=True)
class _Source:
    weight: float
    stale_after_ns: int
    bid_e8: int = 0
    ask_e8: int = 0
    t_recv_ns: int = 0
    flagged_stale: bool = False
    received: bool = False


_tnew = tuple.__new__   # FairPrice without its Python-level __new__ (one frame less per event)
_NO_PRICE_SOURCES: tuple[str, ...] = ()


class AggregatorCorePy:
    """The pure twin of the aggregator's state and computation (``fastmm/core/_agg_fast.pyx`` is the
    compiled one, checked equal by tests/core/test_price_aggregator_compiled.py); :class:`PriceAggregator`
    adds the construction from config and the reads around it."""

    def __init__(self, sources: dict[str, tuple[float, int]], *, basis_bps: float = 0.0,
                 max_dispersion_bps: float = 20.0) -> None:
        """``sources``: name -> (weight, stale_after_ns)."""
        if not sources:
            raise ValueError("the aggregator needs at least one reference source")
        self._sources = {n: _Source(float(w), int(s)) for n, (w, s) in sources.items() if w > 0}
        if not self._sources:
            raise ValueError("every reference source has weight 0")
        self._total_weight = sum(s.weight for s in self._sources.values())
        self.basis = 1.0 + basis_bps / BPS
        self.max_dispersion = max_dispersion_bps / BPS
        self._inv4_disp = 1.0 / (4.0 * self.max_dispersion)
        self._items = [(1 << i, s) for i, s in enumerate(self._sources.values())]
        names = list(self._sources)
        self.source_names = tuple(names)
        self.stale_after_ns = tuple(s.stale_after_ns for s in self._sources.values())
        # every subset of sources in use, as the tuple FairPrice carries: built once, not per event
        self._names_of = {m: tuple(n for i, n in enumerate(names) if m >> i & 1)
                          for m in range(1 << len(names))}
        self._last_used = 0
        self.last = FairPrice(0, 0.0, 0.0, (), 0, 0)
        self.rejected = 0   # crossed or one-sided books seen

    def book(self, source: str) -> tuple[int, int, int, bool, bool]:
        """What ``source`` last gave: (bid_e8, ask_e8, t_recv_ns, flagged stale, received at all)."""
        s = self._sources[source]
        return s.bid_e8, s.ask_e8, s.t_recv_ns, s.flagged_stale, s.received

    def update(self, source: str, bid_e8: int, ask_e8: int, t_recv_ns: int, now_ns: int,
               stale: bool = False) -> FairPrice | None:
        """A new top of book from ``source``; returns the new fair price if it changed."""
        s = self._sources.get(source)
        if s is None:
            raise KeyError(f"unknown reference source {source!r}")
        if not stale and (bid_e8 <= 0 or ask_e8 <= 0 or bid_e8 >= ask_e8):
            self.rejected += 1
            stale = True   # a crossed or one-sided book is not a price
        s.bid_e8, s.ask_e8, s.t_recv_ns, s.flagged_stale, s.received = bid_e8, ask_e8, t_recv_ns, stale, True
        return self._recompute(now_ns)

    def on_timer(self, now_ns: int) -> FairPrice | None:
        """Age the sources; returns a new fair price when freshness changed it (e.g. a source died)."""
        return self._recompute(now_ns)

    def current(self, now_ns: int) -> FairPrice:
        self._recompute(now_ns)
        return self.last

    def _recompute(self, now_ns: int) -> FairPrice | None:
        # One pass, no intermediate lists: this runs on every reference update.
        wsum = msum = plain_w = fsum = tsum = 0.0
        lo = hi = 0.0
        used = 0
        t_newest = 0
        inv4 = self._inv4_disp
        for bit, s in self._items:
            if not s.received or s.flagged_stale:
                continue
            age = now_ns - s.t_recv_ns
            if age > s.stale_after_ns:
                continue
            mid = (s.bid_e8 + s.ask_e8) * 0.5
            fresh = 1.0 - 0.5 * (age if age > 0 else 0) / s.stale_after_ns
            tight = 1.0 - (s.ask_e8 - s.bid_e8) / mid * inv4
            if tight < 0.0:
                tight = 0.0
            w = s.weight
            k = w * fresh * (tight if tight > 1e-6 else 1e-6)
            wsum += k
            msum += mid * k
            plain_w += w
            fsum += w * fresh
            tsum += w * tight
            if used:
                lo = mid if mid < lo else lo
                hi = mid if mid > hi else hi
            else:
                lo = hi = mid
            used |= bit
            if s.t_recv_ns > t_newest:
                t_newest = s.t_recv_ns
        last = self.last
        if not used:
            if last.mid_e8 == 0 and last.confidence == 0.0 and self._last_used == 0:
                return None
            fair: FairPrice = _tnew(FairPrice, (0, 0.0, 0.0, _NO_PRICE_SOURCES, now_ns, 0))
        else:
            mid_usd = msum / wsum
            coverage = 0.5 + 0.5 * plain_w / self._total_weight
            agreement = 1.0 - (hi - lo) / mid_usd / self.max_dispersion
            if agreement < 0.0:
                agreement = 0.0
            conf = round(coverage * (fsum / plain_w) * (tsum / plain_w) * agreement, 3)
            mid_e8 = round(mid_usd * self.basis)
            # compared before a FairPrice is built: a quiet market allocates nothing
            if mid_e8 == last.mid_e8 and conf == last.confidence and used == self._last_used:
                return None
            fair = _tnew(FairPrice, (mid_e8, mid_e8 / E8, conf, self._names_of[used], now_ns, t_newest))
        self._last_used = used
        self.last = fair
        return fair


# the compiled twin (fastmm/core/_agg_fast.pyx) when built and not FASTMM_PURE=1, else the pure one
_compiled = compiled_twin("fastmm.core._agg_fast", "AggregatorCore")
if TYPE_CHECKING:
    _Core = AggregatorCorePy
else:
    _Core = _compiled or AggregatorCorePy
COMPILED = _compiled is not None


class PriceAggregator(_Core):
    """The aggregator the core and the backtest use: the state and computation of the selected twin."""

    @classmethod
    def from_config(cls, cfg: Config) -> PriceAggregator:
        """From the pricing, coinbase and kraken sections."""
        sources: dict[str, tuple[float, int]] = {}
        if cfg.coinbase.enabled:
            sources["coinbase"] = (cfg.pricing.coinbase_weight, cfg.coinbase.stale_after_ms * 1_000_000)
        if cfg.kraken.enabled:
            sources["kraken"] = (cfg.pricing.kraken_weight, cfg.kraken.stale_after_ms * 1_000_000)
        return cls(sources, basis_bps=float(cfg.pricing.basis_bps),
                   max_dispersion_bps=cfg.pricing.max_dispersion_bps)
