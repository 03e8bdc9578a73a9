"""Net position from TrueX and hedge fills, the inventory skew, the position limits and the hedge signal.

Position is integer lots (buy adds, sell subtracts, partial fills are just smaller fills). The entry
price is the average cost of the open position (a risk view: it does not move when the position
shrinks); :mod:`fastmm.core.pnl` keeps FIFO lots for accounting. Both agree on total PnL.

Everything the quote engine reads on every price event (skew, side modes, emergency) is recomputed
here once per fill, so the hot path only reads attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from fractions import Fraction

from fastmm.config import HedgeConfig, InventoryConfig
from fastmm.core.money import MoneyScale, from_units
from fastmm.core.types import Side
from fastmm.instrument import Instrument


class SideMode(IntEnum):
    """What the quote engine may do on one side of the book."""

    NORMAL = 0
    WIDEN = 1  # position past widen_at_pct of the limit: this side accumulates, quote it wider
    PULL = 2  # position at the limit (or emergency): quote nothing on this side


@dataclass(frozen=True, slots=True)
class HedgeSignal:
    side: Side
    qty_lots: int


@dataclass(frozen=True, slots=True)
class PositionSummary:
    net_lots: int
    net_btc: Decimal
    avg_entry: Decimal | None  # PYUSD per BTC, None when flat
    unrealized: Decimal | None  # PYUSD at the mark, None when no mark
    use_pct: float  # |position| / max position x 100


class InventoryManager:
    """Position, average entry, skew and limits; one instance per instrument."""

    __slots__ = (
        "_cost",
        "_emergency_lots",
        "_exp",
        "_hedge_max",
        "_hedge_min",
        "_hedge_target",
        "_hedge_threshold",
        "_max_lots",
        "_max_skew",
        "_scale",
        "_widen_pct",
        "ask_mode",
        "bid_mode",
        "emergency",
        "instrument",
        "position_lots",
        "skew_ticks",
    )

    def __init__(self, cfg: InventoryConfig, hedge: HedgeConfig, instrument: Instrument, *,
                 hedge_target_btc: Decimal = Decimal(0)) -> None:
        """``hedge_target_btc``: a hedge brings |position| back down to this (not in config yet)."""
        self.instrument = instrument
        self._scale = MoneyScale(instrument)
        self._max_lots = instrument.qty_floor_lots(cfg.max_position_btc)
        if self._max_lots <= 0:
            raise ValueError("inventory.max_position_btc is below one lot")
        self._emergency_lots = max(self._max_lots, instrument.qty_floor_lots(cfg.emergency_position_btc))
        self._hedge_threshold = instrument.qty_floor_lots(cfg.hedge_threshold_btc)
        self._hedge_min = max(1, instrument.qty_floor_lots(hedge.min_hedge_btc))
        self._hedge_max = max(self._hedge_min, instrument.qty_floor_lots(hedge.max_hedge_btc))
        self._hedge_target = instrument.qty_floor_lots(hedge_target_btc)
        self._max_skew = float(cfg.max_skew_ticks)
        self._exp = float(cfg.skew_exponent)
        self._widen_pct = cfg.widen_at_pct
        self.position_lots = 0
        self._cost = Fraction(0)  # units: cost of the open position, signed like the position
        self.skew_ticks = 0.0
        self.bid_mode = SideMode.NORMAL
        self.ask_mode = SideMode.NORMAL
        self.emergency = False

    @property
    def max_lots(self) -> int:
        return self._max_lots

    @property
    def emergency_lots(self) -> int:
        return self._emergency_lots

    # -- fills ------------------------------------------------------------------------------------
    def on_truex_fill(self, side: Side, price_ticks: int, qty_lots: int) -> None:
        self._apply(side, qty_lots, self._scale.px_per_lot(price_ticks))

    def on_hedge_fill(self, side: Side, price: Decimal, qty_lots: int) -> None:
        self._apply(side, qty_lots, self._scale.price_per_lot(price))

    def _apply(self, side: Side, qty: int, px_per_lot: int) -> None:
        if qty <= 0:
            raise ValueError(f"fill quantity must be positive lots, got {qty}")
        p = self.position_lots
        d = qty if side == Side.BUY else -qty
        new = p + d
        if p == 0 or (p > 0) == (d > 0):
            self._cost += d * px_per_lot
        elif (new > 0) == (p > 0) and new != 0:
            self._cost = self._cost * Fraction(abs(new), abs(p))  # reduce: the average entry stays
        else:
            self._cost = Fraction(new * px_per_lot)  # flat, or flipped: the rest opens at this price
        self.position_lots = new
        self._recompute()

    def _recompute(self) -> None:
        p = self.position_lots
        ap = abs(p)
        ratio = min(1.0, ap / self._max_lots)
        self.skew_ticks = (self._max_skew * ratio ** self._exp) * (1 if p > 0 else -1) if p else 0.0
        self.emergency = ap > self._emergency_lots
        if self.emergency:
            acc, other = SideMode.PULL, SideMode.PULL
        elif ap >= self._max_lots:
            acc, other = SideMode.PULL, SideMode.NORMAL
        elif ap * 100 >= self._widen_pct * self._max_lots:
            acc, other = SideMode.WIDEN, SideMode.NORMAL
        else:
            acc, other = SideMode.NORMAL, SideMode.NORMAL
        if p >= 0:
            self.bid_mode, self.ask_mode = acc, other
        else:
            self.bid_mode, self.ask_mode = other, acc

    # -- reads ------------------------------------------------------------------------------------
    def skew_for(self, position_lots: int) -> float:
        """max_skew x sign(p) x |p / max|^exponent, |p / max| capped at 1 (positive when long)."""
        if not position_lots:
            return 0.0
        ratio = min(1.0, abs(position_lots) / self._max_lots)
        skew: float = self._max_skew * ratio ** self._exp
        return skew if position_lots > 0 else -skew

    def hedge_signal(self) -> HedgeSignal | None:
        """Sell when long past the threshold, buy when short; size toward the target, within min/max."""
        p = self.position_lots
        ap = abs(p)
        if ap <= self._hedge_threshold or ap == 0:
            return None
        size = min(self._hedge_max, ap - min(self._hedge_target, ap))
        if size < self._hedge_min:
            return None
        return HedgeSignal(Side.SELL if p > 0 else Side.BUY, size)

    def avg_entry_per_lot(self) -> Fraction | None:
        if not self.position_lots:
            return None
        return self._cost / self.position_lots

    def unrealized_units(self, mark_per_lot: int) -> Fraction:
        """Position at the mark less its cost (average-cost method)."""
        return self.position_lots * mark_per_lot - self._cost

    def summary(self, mid: float | None = None) -> PositionSummary:
        avg = self.avg_entry_per_lot()
        unreal = None
        if mid is not None:
            u = self.unrealized_units(self._scale.mark_per_lot(mid))
            unreal = from_units(round(u))
        return PositionSummary(
            net_lots=self.position_lots,
            net_btc=self.instrument.lots_to_qty(self.position_lots),
            avg_entry=None if avg is None else self._scale.price_of(avg),
            unrealized=unreal,
            use_pct=abs(self.position_lots) * 100.0 / self._max_lots,
        )
