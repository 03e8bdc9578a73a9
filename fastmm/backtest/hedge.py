"""Kraken hedges in a backtest: the live hedge decision (:class:`~fastmm.core.hedge.HedgePlanner`) against
a simple model of Kraken built on the recorded reference book.

The hedger's loop runs on the engine's timer: it reads the core's position and the reference touch and
lets the planner decide, exactly as :class:`fastmm.procs.hedger.Hedger` does. Kraken is modelled with
one latency each way (``latency_ns``, REST round trips are slow):

* a limit order rests at its price once it arrives; it fills whole, at its price, as maker, when the
  reference touch reaches it or a recorded trade prints through it;
* a cancel removes what has not filled by the time it arrives;
* a market order fills whole at the reference touch when it arrives (bid for a sell, ask for a buy), as
  taker. ``mode="taker"`` makes the planner's limit time out at once, so every hedge is effectively a
  market order at the touch plus the taker fee.

The hedger learns an outcome one latency after it happened, publishes each fill to the quoter (the core's
:meth:`~fastmm.core.trading_core.TradingCore.on_hedge_fill`) and counts what the core has applied, so the
planner's "never a second hedge before the first is in the position" rule is exercised as live.
"""

from __future__ import annotations

import heapq
from decimal import Decimal
from typing import Literal

from fastmm.config import Config
from fastmm.core.hedge import (
    KRAKEN_ORDERMIN_E8,
    KRAKEN_TICK_E8,
    CancelHedge,
    HedgePhase,
    HedgePlanner,
    HedgeRisk,
    PlaceLimit,
    PlaceMarket,
)
from fastmm.core.money import FeeRate, MoneyScale, from_units
from fastmm.core.types import HedgeFilled, Liquidity, Side
from fastmm.instrument import Instrument
from fastmm.units import E8, parse_e8

HedgeMode = Literal["planner", "taker"]

_INF = 1 << 62
# internal messages: (due ns, seq, kind, payload)
_AT_KRAKEN, _TO_HEDGER = 0, 1


class HedgeSim:
    def __init__(self, cfg: Config, latency_ns: int, mode: HedgeMode = "planner") -> None:
        h = cfg.hedge
        instrument = Instrument.from_config(cfg.instrument)
        self.lot_e8 = lot = instrument.lot_e8     # hedges are whole TrueX lots
        self.enabled = h.enabled
        self.planner = HedgePlanner(
            threshold_lots=instrument.qty_floor_lots(cfg.inventory.hedge_threshold_btc),
            min_e8=max(parse_e8(str(h.min_hedge_btc)), KRAKEN_ORDERMIN_E8),
            max_e8=parse_e8(str(h.max_hedge_btc)) // lot * lot,
            limit_timeout_ns=0 if mode == "taker" else int(h.limit_timeout_s * 1e9),
            edge_bps=int(h.limit_edge_bps), price_tick_e8=KRAKEN_TICK_E8, volume_step_e8=lot,
            risk=HedgeRisk.from_config(cfg), lot_e8=lot)
        self.latency_ns = latency_ns
        self._maker = FeeRate(cfg.fees.kraken_maker_bps)
        self._taker = FeeRate(cfg.fees.kraken_taker_bps)
        self._scale = MoneyScale(instrument)
        self._q: list[tuple[int, int, int, tuple]] = []
        self._seq = 0
        self._resting: tuple[str, str, int, int] | None = None   # cl, side, volume e8, price e8 at Kraken
        self._txids = 0
        self._fills = 0
        self.published = 0            # hedge fills published to the quoter
        self.applied = 0              # of those, applied by the core (the engine counts)
        self.fills: list[tuple[int, str, int, int, int]] = []    # t, side, volume e8, price e8, liquidity
        self.fees_units = 0
        self.cash_units = 0           # Kraken's side of the ledger (1e-8 PYUSD), and its position in lots
        self.position_lots = 0

    @property
    def next_ns(self) -> int:
        return self._q[0][0] if self._q else _INF

    @property
    def resting(self) -> bool:
        return self._resting is not None

    def _push(self, due: int, kind: int, payload: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._q, (due, self._seq, kind, payload))

    # -- the hedger's loop ------------------------------------------------------------------------
    def step(self, now_ns: int, position_lots: int, bid_e8: int, ask_e8: int) -> None:
        """One pass of the hedger: follow the hedge in flight, then let the planner decide."""
        if not self.enabled:
            return
        p = self.planner
        if p.hedge is not None and p.hedge.phase == HedgePhase.CONFIRM:
            p.confirm_after(self.published)
        action = p.decide(position_lots, self.applied, self.published, bid_e8, ask_e8, now_ns)
        if action is not None:
            self._push(now_ns + self.latency_ns, _AT_KRAKEN, (action,))

    # -- Kraken and the way back ------------------------------------------------------------------
    def due(self, now_ns: int, bid_e8: int, ask_e8: int) -> list[HedgeFilled]:
        """Process messages due by ``now_ns``; returns the hedge fills the quoter receives now."""
        out: list[HedgeFilled] = []
        q = self._q
        while q and q[0][0] <= now_ns:
            t, _, kind, payload = heapq.heappop(q)
            if kind == _AT_KRAKEN:
                self._at_kraken(t, payload[0], bid_e8, ask_e8)
            else:
                out.extend(self._to_hedger(payload))
        return out

    def _at_kraken(self, t: int, action: object, bid_e8: int, ask_e8: int) -> None:
        back = t + self.latency_ns
        if isinstance(action, PlaceLimit):
            self._txids += 1
            txid = f"K{self._txids}"
            self._resting = (action.cl_ord_id, action.side, action.volume_e8, action.price_e8)
            self._push(back, _TO_HEDGER, ("ack", action.cl_ord_id, txid))
            self.check_limit(t, bid_e8, ask_e8)        # marketable on arrival
        elif isinstance(action, CancelHedge):
            if self._resting is not None:
                cl = self._resting[0]
                self._resting = None
                self._push(back, _TO_HEDGER, ("closed", cl))
        elif isinstance(action, PlaceMarket):
            px = bid_e8 if action.side == "sell" else ask_e8
            if px <= 0:
                self._push(back, _TO_HEDGER, ("closed", action.cl_ord_id))
                return
            self._fill(t, action.cl_ord_id, action.side, action.volume_e8, px, Liquidity.TAKER)

    def _fill(self, t: int, cl: str, side: str, volume_e8: int, px_e8: int, liq: Liquidity) -> None:
        lots = volume_e8 // self.lot_e8
        price = Decimal(px_e8) / E8
        value_units = lots * self._scale.price_per_lot(price)   # as the core values it
        fee = (self._maker if liq == Liquidity.MAKER else self._taker).fee(value_units)
        sign = -1 if side == "sell" else 1
        self.cash_units -= sign * value_units + fee
        self.position_lots += sign * lots
        self.fees_units += fee
        self._fills += 1
        self.fills.append((t, side, volume_e8, px_e8, int(liq)))
        ev = HedgeFilled(f"KX{self._fills}", Side.SELL if side == "sell" else Side.BUY, lots, price, liq,
                         from_units(fee))
        self._push(t + self.latency_ns, _TO_HEDGER, ("fill", cl, volume_e8, ev))

    def _to_hedger(self, payload: tuple) -> list[HedgeFilled]:
        h = self.planner.hedge
        what, cl = payload[0], payload[1]
        if h is None:
            return []
        if what == "ack":
            if cl == h.limit_cl:
                h.limit_txid = payload[2]
            return []
        if what == "fill":
            if cl == h.limit_cl:
                h.limit_filled_e8 += payload[2]
                h.limit_closed = True
            elif cl == h.market_cl:
                h.market_filled_e8 += payload[2]
                h.market_closed = True
            self.published += 1
            return [payload[3]]
        if cl == h.limit_cl:          # closed without (more) fills
            h.limit_closed = True
        elif cl == h.market_cl:
            h.market_closed = True
        return []

    # -- the recorded market at Kraken ------------------------------------------------------------
    def check_limit(self, now_ns: int, bid_e8: int, ask_e8: int, trade_px_e8: int = 0) -> None:
        """A resting limit fills when the touch reaches its price or a trade prints through it."""
        r = self._resting
        if r is None:
            return
        cl, side, volume, px = r
        if side == "sell":   # noqa: SIM108 - two conditions a side read better apart
            hit = (bid_e8 >= px) or (trade_px_e8 > px)
        else:
            hit = (0 < ask_e8 <= px) or (0 < trade_px_e8 < px)
        if hit:
            self._resting = None
            self._fill(now_ns, cl, side, volume, px, Liquidity.MAKER)
