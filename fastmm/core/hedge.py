"""The hedge decision and the life of one hedge, sans-I/O.

:class:`HedgePlanner` is fed the position the quoter publishes, the Kraken reference book, the state of
the hedge order on Kraken and the time; it answers with at most one action. Its one rule that matters
most: never a second hedge while one is in flight or not yet confirmed. A hedge is *confirmed* when the
quoter's position shows every hedge fill the hedger has published (``hedge_fills`` counter), because
until then the position it reads does not include them, and hedging again would double the hedge (the
failure Hummingbot's cross-exchange strategy is known for).

A hedge starts as a limit order ``edge_bps`` through the mid on the far side (a sell rests above the
mid), and whatever is not filled after ``limit_timeout`` is cancelled and sent as a market order.

A hedge costs at least Kraken's fee (16 bps maker, 26 taker), more than many TrueX fills earn, so with a
:class:`HedgeRisk` gate a position past the threshold is hedged only when its risk over the horizon is
worth more than that: a ``z``-sigma move of the Kraken mid over ``horizon_s`` (volatility measured here,
from the book the planner is given) larger than the hedge's cost in bps. Below that, the quotes' skew
brings the position back for free. The supervisor's ``flatten`` ignores the gate.

Units: position in TrueX lots of the instrument (``lot_e8`` each, 1e-4 BTC for BTC-PYUSD); Kraken prices
and volumes in 1e-8 units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from fastmm.config import Config
from fastmm.core.models import VolatilityEstimator
from fastmm.units import BPS

# Kraken XBTUSD's own increments (venue facts; live, the hedger reads them from AssetPairs)
KRAKEN_TICK_E8 = 10_000_000         # price tick, 0.1 USD
KRAKEN_ORDERMIN_E8 = 10_000         # order minimum, 0.0001 BTC


class HedgePhase(StrEnum):
    IDLE = "idle"
    LIMIT = "limit"         # limit order sent or working
    CANCELING = "canceling"  # limit timed out; cancel sent, waiting for the venue's final state
    MARKET = "market"       # market order for the rest sent or working
    CONFIRM = "confirm"     # done on Kraken; waiting for the quoter's position to include the fills


@dataclass(frozen=True, slots=True)
class PlaceLimit:
    cl_ord_id: str
    side: str            # "buy" | "sell" (Kraken's words)
    volume_e8: int
    price_e8: int


@dataclass(frozen=True, slots=True)
class PlaceMarket:
    cl_ord_id: str
    side: str
    volume_e8: int


@dataclass(frozen=True, slots=True)
class CancelHedge:
    txid: str
    age_s: float


HedgeAction = PlaceLimit | PlaceMarket | CancelHedge


@dataclass
class ActiveHedge:
    hedge_id: int
    side: str
    volume_e8: int
    started_ns: int
    limit_cl: str
    market_cl: str
    limit_txid: str = ""
    market_txid: str = ""
    limit_filled_e8: int = 0
    market_filled_e8: int = 0
    limit_closed: bool = False
    market_closed: bool = False
    market_sent: bool = False
    phase: HedgePhase = HedgePhase.LIMIT
    published_target: int = 0   # hedge fills published when the hedge ended (for the confirmation)

    @property
    def filled_e8(self) -> int:
        return self.limit_filled_e8 + self.market_filled_e8


class HedgeRisk:
    """Is hedging worth its cost now? Volatility of the hedge venue's mid against the hedge's fee."""

    __slots__ = ("cost_bps", "horizon_s", "vol", "z")

    def __init__(self, horizon_s: float, z: float, cost_bps: float, window_s: float = 60.0,
                 prior_sigma_bps: float = 1.0) -> None:
        self.horizon_s = horizon_s
        self.z = z
        self.cost_bps = cost_bps
        self.vol = VolatilityEstimator(window_s, prior_sigma=prior_sigma_bps)

    @classmethod
    def from_config(cls, cfg: Config) -> HedgeRisk | None:
        """The gate the config asks for; None when ``hedge.risk_horizon_s`` is 0 (hedge by size only).
        The cost is the taker fee: the limit may time out and the rest go at market."""
        h = cfg.hedge
        if h.risk_horizon_s <= 0:
            return None
        return cls(h.risk_horizon_s, h.risk_z, float(cfg.fees.kraken_taker_bps),
                   prior_sigma_bps=cfg.edge.sigma_prior_bps)

    def on_book(self, now_ns: int, bid_e8: int, ask_e8: int) -> None:
        if bid_e8 > 0 and ask_e8 > bid_e8:
            self.vol.update(now_ns, math.log((bid_e8 + ask_e8) / 2) * 1e4)

    @property
    def risk_bps(self) -> float:
        """z-sigma move of the mid over the horizon, bps."""
        return self.z * self.vol.sigma * math.sqrt(self.horizon_s)

    def worth_it(self) -> bool:
        return self.risk_bps > self.cost_bps


@dataclass
class HedgePlanner:
    threshold_lots: int
    min_e8: int
    max_e8: int
    limit_timeout_ns: int
    lot_e8: int                         # one lot of the quoted instrument in 1e-8 (Instrument.lot_e8)
    edge_bps: int = 2
    price_tick_e8: int = KRAKEN_TICK_E8
    volume_step_e8: int = 1             # Kraken: 8 lot decimals
    hedge: ActiveHedge | None = None
    next_id: int = 1
    flatten: bool = False               # the supervisor's hedge_flat: hedge down to zero, ignore threshold
    history: list[ActiveHedge] = field(default_factory=list)
    risk: HedgeRisk | None = None       # when set, a position is hedged only when its risk outweighs the cost

    @property
    def phase(self) -> HedgePhase:
        return self.hedge.phase if self.hedge else HedgePhase.IDLE

    @property
    def busy(self) -> bool:
        return self.hedge is not None

    def wanted_e8(self, position_lots: int) -> tuple[str, int] | None:
        """(side, volume) the position asks for now, or None."""
        p = position_lots
        if p == 0 or (abs(p) <= self.threshold_lots and not self.flatten):
            return None
        volume = min(self.max_e8, abs(p) * self.lot_e8)
        volume -= volume % self.volume_step_e8
        if volume < self.min_e8:
            return None
        return ("sell" if p > 0 else "buy"), volume

    def decide(self, position_lots: int, fills_applied: int, fills_published: int, bid_e8: int, ask_e8: int,
               now_ns: int) -> HedgeAction | None:
        """The one action to take now, if any."""
        h = self.hedge
        risk = self.risk
        if risk is not None:
            risk.on_book(now_ns, bid_e8, ask_e8)
        if h is None:
            if fills_applied < fills_published:
                return None       # an earlier hedge's fills are not in the position yet
            want = self.wanted_e8(position_lots)
            if want is None or bid_e8 <= 0 or ask_e8 <= bid_e8:
                return None
            if risk is not None and not self.flatten and not risk.worth_it():
                return None       # the skew mean-reverts it cheaper than Kraken's fee
            side, volume = want
            hid = self.next_id
            self.next_id += 1
            h = self.hedge = ActiveHedge(hid, side, volume, now_ns, f"h{hid}l", f"h{hid}m")
            return PlaceLimit(h.limit_cl, side, volume, self._limit_price(side, bid_e8, ask_e8))
        if h.phase == HedgePhase.LIMIT:
            if h.limit_closed:
                return self._after_limit(now_ns)
            if h.limit_txid and now_ns - h.started_ns >= self.limit_timeout_ns:
                h.phase = HedgePhase.CANCELING
                return CancelHedge(h.limit_txid, (now_ns - h.started_ns) / 1e9)
            return None
        if h.phase == HedgePhase.CANCELING:
            return self._after_limit(now_ns) if h.limit_closed else None
        if h.phase == HedgePhase.MARKET:
            if h.market_closed:
                h.phase = HedgePhase.CONFIRM
                h.published_target = -1
            return None
        if h.phase == HedgePhase.CONFIRM:
            if h.published_target >= 0 and fills_applied >= h.published_target:
                self.history.append(h)
                self.hedge = None
            return None
        return None

    def _after_limit(self, now_ns: int) -> HedgeAction | None:
        h = self.hedge
        assert h is not None
        rest = h.volume_e8 - h.limit_filled_e8
        if rest < self.min_e8 or rest <= 0:
            h.phase = HedgePhase.CONFIRM
            h.published_target = -1
            return None
        h.phase = HedgePhase.MARKET
        h.market_sent = True
        return PlaceMarket(h.market_cl, h.side, rest)

    def confirm_after(self, fills_published: int) -> None:
        """The hedge is over on Kraken with ``fills_published`` fills out: wait for them in the position."""
        if self.hedge is not None and self.hedge.phase == HedgePhase.CONFIRM:
            self.hedge.published_target = fills_published

    def _limit_price(self, side: str, bid_e8: int, ask_e8: int) -> int:
        mid2 = bid_e8 + ask_e8          # twice the mid, to stay in integers
        tick = self.price_tick_e8
        if side == "sell":
            raw = (mid2 * (BPS + self.edge_bps)) // (2 * BPS)
            return -(-raw // tick) * tick          # up to the tick: never sell below mid + edge
        raw = (mid2 * (BPS - self.edge_bps)) // (2 * BPS)
        return (raw // tick) * tick                # down to the tick: never buy above mid - edge
