"""FIFO realized PnL, mark-to-market unrealized PnL, fees per venue, and the session's trading statistics.

All money is integer units of 1e-8 PYUSD (:mod:`fastmm.core.money`), so at every moment
``cash + position x mark == realized + unrealized - fees`` holds exactly, where cash counts what was paid
and received for every fill and every fee. Fills of both venues (TrueX quotes and Kraken hedges) go into
one FIFO queue of open lots, because they are one position.

Statistics:

* spread capture: for a TrueX fill, side x (fair mid at the fill - fill price), volume weighted, in bps
  of the fill price (positive = we bought under / sold over the mid);
* markouts at 1 s, 5 s and 30 s: side x (fair mid at the first mark at or after fill + horizon - fill
  price), volume weighted, in bps; TrueX fills only (hedges are takers by design);
* Sharpe: total PnL is sampled on a fixed grid (``sharpe_interval_s``, default 60 s, as a step function
  of the last known total, from the first fill on); the increments' mean over their standard deviation,
  annualized by sqrt(365 x 86400 / interval) since crypto trades around the clock;
* maximum drawdown: largest fall of total PnL from its running peak, checked at every mark and fill.

Events are drained with :meth:`PnLTracker.events`: a :class:`PnlChange` when total PnL moved by
``pnl.significant_change`` since the last one, and a :class:`PnlSummary` every ``pnl.log_interval_s``
from :meth:`PnLTracker.on_timer`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from fastmm.config import FeesConfig, PnlConfig
from fastmm.core.money import FeeRate, MoneyScale, from_units, to_units
from fastmm.core.types import HedgeFilled, Liquidity, OrderFilled, Side, Venue
from fastmm.instrument import Instrument
from fastmm.logs import OnceLogger
from fastmm.units import E8

log = logging.getLogger(__name__)

_YEAR_S = 365 * 86400
_CENT = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class PnlChange:
    now_ns: int
    total: Decimal
    realized: Decimal
    unrealized: Decimal
    fees: Decimal
    position_lots: int


@dataclass(frozen=True, slots=True)
class Markout:
    horizon_s: float
    fills: int
    volume_lots: int
    avg_bps: float | None
    avg_pyusd: Decimal | None  # per BTC


@dataclass(frozen=True, slots=True)
class PnlSummary:
    now_ns: int
    trades: int
    trades_by_venue: dict[str, int]
    volume_lots: int
    volume_notional: Decimal  # PYUSD
    realized: Decimal
    unrealized: Decimal
    fees: Decimal
    fees_by_venue: dict[str, Decimal]
    total: Decimal
    position_lots: int
    avg_spread_capture_bps: float | None
    markouts: tuple[Markout, ...]
    sharpe: float | None
    sharpe_samples: int
    max_drawdown: Decimal


class _Welford:
    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


class PnLTracker:
    """One per session. Call :meth:`on_mark` on every fair-mid update (cheap), fills as they come."""

    __slots__ = (
        "_bad",
        "_cap_bps_q",
        "_cap_qty",
        "_change_units",
        "_events",
        "_fee_rates",
        "_fees_by_venue",
        "_last_change_total",
        "_lots",
        "_markout_q",
        "_markout_stats",
        "_max_pending",
        "_next_sample",
        "_next_summary",
        "_peak",
        "_sample_last",
        "_sample_ns",
        "_sharpe",
        "_summary_ns",
        "capture_units",
        "cash_units",
        "fees_units",
        "hedge_slip_units",
        "horizons_ns",
        "mark",
        "max_drawdown_units",
        "notional_units",
        "open_cost",
        "position_lots",
        "realized_units",
        "scale",
        "trades",
        "volume_lots",
    )

    def __init__(self, pnl: PnlConfig, fees: FeesConfig, instrument: Instrument, *,
                 markout_horizons_s: tuple[float, ...] = (1.0, 5.0, 30.0), sharpe_interval_s: float = 60.0,
                 max_pending_markouts: int = 100_000) -> None:
        self.scale = MoneyScale(instrument)
        self._fee_rates = {
            (Venue.TRUEX, Liquidity.MAKER): FeeRate(fees.truex_maker_bps),
            (Venue.TRUEX, Liquidity.TAKER): FeeRate(fees.truex_taker_bps),
            (Venue.KRAKEN, Liquidity.MAKER): FeeRate(fees.kraken_maker_bps),
            (Venue.KRAKEN, Liquidity.TAKER): FeeRate(fees.kraken_taker_bps),
        }
        self._change_units = to_units(pnl.significant_change)
        self._summary_ns = int(pnl.log_interval_s * 1e9)
        self._sample_ns = int(sharpe_interval_s * 1e9)
        if self._sample_ns <= 0:
            raise ValueError("sharpe_interval_s must be positive")
        self.horizons_ns = tuple(int(h * 1e9) for h in markout_horizons_s)
        self._max_pending = max_pending_markouts
        self._bad = OnceLogger(log)
        # position and money (units)
        self._lots: deque[list[int]] = deque()  # FIFO open lots [qty, px_per_lot], all one sign
        self.position_lots = 0
        self.open_cost = 0  # sum qty x px_per_lot over open lots (positive)
        self.realized_units = 0
        self.fees_units = 0
        self.cash_units = 0
        self.mark: int | None = None  # units per lot at the last fair mid
        # side x (mark - price) x qty at each fill: what TrueX fills captured from the fair mid, and what
        # hedges gave to it (the PnL split: capture + hedge slippage + inventory mark - fees = total)
        self.capture_units = 0
        self.hedge_slip_units = 0
        # statistics
        self.trades: dict[Venue, int] = {Venue.TRUEX: 0, Venue.KRAKEN: 0}
        self._fees_by_venue: dict[Venue, int] = {Venue.TRUEX: 0, Venue.KRAKEN: 0}
        self.volume_lots = 0
        self.notional_units = 0
        self._cap_qty = 0
        self._cap_bps_q = 0.0
        self._markout_q: tuple[deque[tuple[int, int, int, int]], ...] = tuple(
            deque() for _ in self.horizons_ns)
        self._markout_stats = [[0, 0, 0.0, 0] for _ in self.horizons_ns]  # fills, qty, bps x qty, units x qty
        self._peak = 0
        self.max_drawdown_units = 0
        self._last_change_total = 0
        self._sharpe = _Welford()
        self._next_sample: int | None = None
        self._sample_last = 0
        self._next_summary: int | None = None
        self._events: list[PnlChange | PnlSummary] = []

    # -- derived money ----------------------------------------------------------------------------
    @property
    def unrealized_units(self) -> int:
        mark = self.mark
        if mark is None or not self.position_lots:
            return 0
        if self.position_lots > 0:
            return self.position_lots * mark - self.open_cost
        return self.open_cost + self.position_lots * mark

    @property
    def total_units(self) -> int:
        return self.realized_units + self.unrealized_units - self.fees_units

    @property
    def drawdown_units(self) -> int:
        return self._peak - self.total_units

    # -- inputs -----------------------------------------------------------------------------------
    def on_mark(self, now_ns: int, mid: float) -> None:
        """A new fair mid: revalue, settle due markouts, sample for Sharpe. The hot path: ints only."""
        if not (mid > 0.0 and mid < math.inf):
            self._bad("pnl: ignored a fair mid that is not a positive finite number", repr(mid))
            return
        if self._next_sample is not None and now_ns >= self._next_sample:
            self._sample(now_ns)
        mark = round(mid * self.scale.lot_per_pyusd_f)
        self.mark = mark
        for q in self._markout_q:       # usually nothing is due: no enumerate, no settling frame
            if q and q[0][0] <= now_ns:
                self._settle_markouts(now_ns, mark)
                break
        self._after_change(now_ns)

    def _settle_markouts(self, now_ns: int, mark: int) -> None:
        """Every markout due by ``now_ns``, at ``mark``."""
        for i, q in enumerate(self._markout_q):
            while q and q[0][0] <= now_ns:
                _, sign, px, qty = q.popleft()
                st = self._markout_stats[i]
                diff = sign * (mark - px)
                st[0] += 1
                st[1] += qty
                st[2] += diff / px * 1e4 * qty
                st[3] += diff * qty

    def _venue_fee(self, fee: Decimal | None) -> int | None:
        if fee is None:
            return None
        if not isinstance(fee, Decimal) or not fee.is_finite():
            self._bad("pnl: ignored a venue fee that is not a finite decimal; the configured rate applies",
                      repr(fee))
            return None
        return to_units(fee)

    def on_truex_fill(self, now_ns: int, ev: OrderFilled) -> None:
        fee = self._venue_fee(ev.fee)
        self.on_fill(now_ns, Venue.TRUEX, ev.side, ev.last_qty_lots, self.scale.px_per_lot(ev.last_px_ticks),
                     ev.liquidity, fee)

    def on_hedge_fill(self, now_ns: int, ev: HedgeFilled) -> None:
        fee = self._venue_fee(ev.fee)
        self.on_fill(now_ns, Venue.KRAKEN, ev.side, ev.qty_lots, self.scale.price_per_lot(ev.price),
                     ev.liquidity, fee)

    def on_fill(self, now_ns: int, venue: Venue, side: Side, qty: int, px: int, liquidity: Liquidity,
                fee_units: int | None = None) -> None:
        """One fill of ``qty`` lots at ``px`` units per lot; ``fee_units`` from the venue wins if given."""
        if qty <= 0 or px <= 0:
            self._bad("pnl: ignored a fill with a non-positive quantity or price", f"qty={qty} px={px}")
            return
        if self._next_sample is None:
            self._next_sample = now_ns + self._sample_ns
        elif now_ns >= self._next_sample:
            self._sample(now_ns)
        value = qty * px
        fee = self._fee_rates[(venue, liquidity)].fee(value) if fee_units is None else fee_units
        sign = 1 if side == Side.BUY else -1
        if self.mark is not None:
            if venue == Venue.TRUEX:
                self.capture_units += sign * (self.mark - px) * qty
            else:
                self.hedge_slip_units += sign * (self.mark - px) * qty
        self.cash_units -= sign * value + fee
        self.fees_units += fee
        self._fees_by_venue[venue] += fee
        self.trades[venue] += 1
        self.volume_lots += qty
        self.notional_units += value
        self._match(sign, qty, px)
        if venue == Venue.TRUEX:
            mark = self.mark
            if mark is not None:
                self._cap_qty += qty
                self._cap_bps_q += sign * (mark - px) / px * 1e4 * qty
            for h, q in zip(self.horizons_ns, self._markout_q, strict=True):
                if len(q) >= self._max_pending:
                    q.popleft()
                    self._bad("pnl: too many pending markouts; dropped the oldest")
                q.append((now_ns + h, sign, px, qty))
        if self.mark is None:
            self.mark = px
        self._after_change(now_ns)

    def _match(self, sign: int, qty: int, px: int) -> None:
        """FIFO: a fill against the position closes the oldest lots first, the rest opens new ones."""
        lots = self._lots
        pos = self.position_lots
        if pos * sign < 0:
            while qty and lots:
                lot = lots[0]
                m = lot[0] if lot[0] <= qty else qty
                # closing a long with a sell earns px - entry; closing a short with a buy earns entry - px
                self.realized_units += m * (lot[1] - px) * sign
                self.open_cost -= m * lot[1]
                lot[0] -= m
                qty -= m
                pos += sign * m
                if not lot[0]:
                    lots.popleft()
        if qty:
            lots.append([qty, px])
            self.open_cost += qty * px
            pos += sign * qty
        self.position_lots = pos

    def _after_change(self, now_ns: int) -> None:
        total = self.total_units
        if total > self._peak:
            self._peak = total
        elif self._peak - total > self.max_drawdown_units:
            self.max_drawdown_units = self._peak - total
        if abs(total - self._last_change_total) >= self._change_units and self._change_units > 0:
            self._last_change_total = total
            self._events.append(PnlChange(now_ns, from_units(total), from_units(self.realized_units),
                                          from_units(self.unrealized_units), from_units(self.fees_units),
                                          self.position_lots))

    def _sample(self, now_ns: int) -> None:
        """Record total PnL at every grid point up to now (the value held since the last change)."""
        assert self._next_sample is not None
        total = self.total_units
        n = (now_ns - self._next_sample) // self._sample_ns + 1
        self._sharpe.add((total - self._sample_last) / E8)
        for _ in range(min(n - 1, 100_000)):
            self._sharpe.add(0.0)
        self._sample_last = total
        self._next_sample += n * self._sample_ns

    def on_timer(self, now_ns: int) -> None:
        """Sharpe sampling and the periodic summary."""
        if self._next_sample is not None and now_ns >= self._next_sample:
            self._sample(now_ns)
        if self._next_summary is None:
            self._next_summary = now_ns + self._summary_ns
        elif now_ns >= self._next_summary:
            self._events.append(self.summary(now_ns))
            self._next_summary += self._summary_ns
            if self._next_summary <= now_ns:
                self._next_summary = now_ns + self._summary_ns

    def events(self) -> list[PnlChange | PnlSummary]:
        out, self._events = self._events, []
        return out

    # -- reports ----------------------------------------------------------------------------------
    def sharpe(self) -> float | None:
        s = self._sharpe
        sd = s.std()
        if s.n < 2 or sd == 0.0:
            return None
        return s.mean / sd * math.sqrt(_YEAR_S * 1e9 / self._sample_ns)

    def avg_entry(self) -> Decimal | None:
        """FIFO average entry of the open lots, PYUSD per BTC."""
        if not self.position_lots:
            return None
        return self.scale.price_of(self.open_cost) / abs(self.position_lots)

    def summary(self, now_ns: int) -> PnlSummary:
        lpp = self.scale.lot_per_pyusd
        markouts = []
        for h, st in zip(self.horizons_ns, self._markout_stats, strict=True):
            fills, qty, bps_q, units_q = int(st[0]), int(st[1]), st[2], int(st[3])
            markouts.append(Markout(h / 1e9, fills, qty, bps_q / qty if qty else None,
                                    (Decimal(units_q) / (qty * lpp)).quantize(_CENT) if qty else None))
        return PnlSummary(
            now_ns=now_ns,
            trades=sum(self.trades.values()),
            trades_by_venue={str(v): n for v, n in self.trades.items()},
            volume_lots=self.volume_lots,
            volume_notional=from_units(self.notional_units),
            realized=from_units(self.realized_units),
            unrealized=from_units(self.unrealized_units),
            fees=from_units(self.fees_units),
            fees_by_venue={str(v): from_units(u) for v, u in self._fees_by_venue.items()},
            total=from_units(self.total_units),
            position_lots=self.position_lots,
            avg_spread_capture_bps=self._cap_bps_q / self._cap_qty if self._cap_qty else None,
            markouts=tuple(markouts),
            sharpe=self.sharpe(),
            sharpe_samples=self._sharpe.n,
            max_drawdown=from_units(self.max_drawdown_units),
        )
