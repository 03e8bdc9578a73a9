"""Exact money: integer units of 1e-8 PYUSD, and the conversions from ticks, lots, Decimals and marks.

1e-8 PYUSD is TrueX's fee quantum, so every fill value, every configured fee and every fee TrueX sends
is a whole number of units: a fill of ``q`` lots at ``p`` ticks is worth ``p * q * tick_lot`` units
(``tick_lot`` = 0.50 x 0.0001 x 1e8 = 5000 for BTC-PYUSD). Marking to a float fair mid is the one place a
float becomes money; it is rounded to whole units per lot (1e-4 PYUSD per BTC), once, at the mark.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from fastmm.instrument import Instrument
from fastmm.units import BPS, E8, e8_to_decimal, round_e8


def to_units(amount: Decimal | int | str) -> int:
    """PYUSD -> units, rounded half-even to the 1e-8 quantum (venue fees are already on it)."""
    return round_e8(amount)


def from_units(units: int) -> Decimal:
    """Units -> PYUSD, exact."""
    return e8_to_decimal(units)


def div_round(num: int, den: int) -> int:
    """Integer division rounded half to even (den > 0), as Decimal's ROUND_HALF_EVEN does."""
    q, r = divmod(num, den)
    twice = 2 * r
    if twice > den or (twice == den and q & 1):
        q += 1
    return q


class FeeRate:
    """A rate in basis points of notional, applied exactly to integer units (negative = rebate)."""

    __slots__ = ("_den", "_num", "bps")

    def __init__(self, bps: Decimal | int | str) -> None:
        self.bps = Decimal(bps)
        frac = Fraction(self.bps) / BPS
        self._num, self._den = frac.numerator, frac.denominator

    def fee(self, notional_units: int) -> int:
        return div_round(abs(notional_units) * self._num, self._den)


class MoneyScale:
    """Conversions for one instrument; built once, used with plain ints on the hot path."""

    __slots__ = ("lot_per_pyusd", "lot_per_pyusd_f", "tick_lot")

    def __init__(self, instrument: Instrument) -> None:
        tick_lot = instrument.tick_size * instrument.lot_size * E8
        if tick_lot != tick_lot.to_integral_value():
            raise ValueError(f"tick {instrument.tick_size} x lot {instrument.lot_size} is under 1e-8 PYUSD")
        self.tick_lot = int(tick_lot)  # units per (tick x lot)
        self.lot_per_pyusd = instrument.lot_e8  # units per lot for a price of 1 PYUSD/BTC
        self.lot_per_pyusd_f = float(self.lot_per_pyusd)

    def px_per_lot(self, price_ticks: int) -> int:
        """Units one lot is worth at a price in ticks."""
        return price_ticks * self.tick_lot

    def price_per_lot(self, price: Decimal) -> int:
        """Units one lot is worth at a Decimal price per BTC (a hedge venue's price), half-even."""
        return int((price * self.lot_per_pyusd).to_integral_value(ROUND_HALF_EVEN))

    def mark_per_lot(self, mid: float) -> int:
        """Units one lot is worth at a float fair mid: the one float -> money step, rounded once."""
        return round(mid * self.lot_per_pyusd_f)

    def price_of(self, per_lot_units: int | Fraction) -> Decimal:
        """Units per lot -> PYUSD per BTC, for reports."""
        return (Decimal(per_lot_units.numerator) / Decimal(per_lot_units.denominator) / self.lot_per_pyusd
                if isinstance(per_lot_units, Fraction) else Decimal(per_lot_units) / self.lot_per_pyusd)
