"""Integer price ticks and quantity lots of one instrument, and their wire text.

Order state and money stay integers everywhere; text exists only at the wire. A price in ticks times
``tick_size`` is PYUSD; a quantity in lots times ``lot_size`` is BTC. Notional in "quote units"
(ticks x lots) is exact: ``notional = price_ticks * qty_lots * tick_size * lot_size``.

``tick_e8`` and ``lot_e8`` are the same increments in integers of 1e-8 (:mod:`fastmm.units`), the scale
of every recorded price and size: a price of ``p`` ticks is ``p * tick_e8`` units of PYUSD, a quantity of
``q`` lots ``q * lot_e8`` units of BTC. They come from the configured ``tick_size`` and ``lot_size``;
nothing else in fastmm knows an instrument's increments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from fastmm.config import InstrumentConfig
from fastmm.units import step_e8


class InstrumentError(ValueError):
    """A price or quantity that does not fit the instrument's increments."""


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    security_type: str
    tick_size: Decimal
    lot_size: Decimal
    tick_e8: int = field(init=False, compare=False)     # one price tick in 1e-8 of the quote currency
    lot_e8: int = field(init=False, compare=False)      # one quantity lot in 1e-8 of the base asset

    def __post_init__(self) -> None:
        try:
            tick_e8, lot_e8 = step_e8(self.tick_size), step_e8(self.lot_size)
        except ValueError as e:
            raise InstrumentError(f"{self.symbol}: {e}") from None
        object.__setattr__(self, "tick_e8", tick_e8)
        object.__setattr__(self, "lot_e8", lot_e8)

    @classmethod
    def from_config(cls, cfg: InstrumentConfig) -> Instrument:
        return cls(cfg.symbol, cfg.security_type, cfg.tick_size, cfg.lot_size)

    # -- prices ---------------------------------------------------------------------------------
    def price_to_ticks(self, price: Decimal | str) -> int:
        """Exact conversion; a price off the tick grid is an error (venue rejects it too)."""
        q = Decimal(price) / self.tick_size
        if q != q.to_integral_value():
            raise InstrumentError(f"price {price} is not a multiple of tick {self.tick_size}")
        return int(q)

    def price_floor_ticks(self, price: Decimal | float) -> int:
        return int((Decimal(str(price)) / self.tick_size).to_integral_value(ROUND_FLOOR))

    def price_ceil_ticks(self, price: Decimal | float) -> int:
        return int((Decimal(str(price)) / self.tick_size).to_integral_value(ROUND_CEILING))

    def ticks_to_price(self, ticks: int) -> Decimal:
        return ticks * self.tick_size

    def price_text(self, ticks: int) -> str:
        """Wire text of a price: plain decimal, no exponent, no trailing zeros beyond the tick."""
        return _plain(ticks * self.tick_size)

    # -- quantities -----------------------------------------------------------------------------
    def qty_to_lots(self, qty: Decimal | str) -> int:
        q = Decimal(qty) / self.lot_size
        if q != q.to_integral_value():
            raise InstrumentError(f"quantity {qty} is not a multiple of lot {self.lot_size}")
        return int(q)

    def qty_floor_lots(self, qty: Decimal | float) -> int:
        return int((Decimal(str(qty)) / self.lot_size).to_integral_value(ROUND_FLOOR))

    def lots_to_qty(self, lots: int) -> Decimal:
        return lots * self.lot_size

    def qty_text(self, lots: int) -> str:
        return _plain(lots * self.lot_size)

    # -- money ----------------------------------------------------------------------------------
    def notional(self, price_ticks: int, qty_lots: int) -> Decimal:
        return price_ticks * qty_lots * self.tick_size * self.lot_size


def _plain(d: Decimal) -> str:
    return format(d.normalize(), "f")
