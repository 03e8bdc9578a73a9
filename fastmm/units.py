"""The one scale of every recorded price, size and amount of money: integers of 1e-8 (``E8`` per whole).

Binance prints 8 decimals, Coinbase and Kraken at most 8 for BTC, and 1e-8 PYUSD is TrueX's fee quantum,
so one integer scale keeps every price, quantity and money amount exact and makes book keys and
comparisons plain integer operations (fast, no Decimal on the replay path). A venue's own increments
(TrueX's tick and lot, Kraken's) are whole numbers of these units: :func:`step_e8` checks that, and
:class:`fastmm.instrument.Instrument` carries its ``tick_e8`` and ``lot_e8``.

Conversions, all exact unless their name says round:

* :func:`parse_e8` decimal text -> units (the hot-path parser; more than 8 decimals is an error)
* :func:`to_e8` decimal text or ``Decimal`` -> units, exact
* :func:`round_e8` ``Decimal`` (or text, int) -> units, rounded (half-even by default)
* :func:`number_e8` a JSON number (int or float) -> units, rounded to the nearest
* :func:`format_e8`, :func:`fixed_e8` units -> plain decimal text; :func:`e8_to_decimal` -> ``Decimal``

``BPS`` is basis points per whole (a rate of ``b`` bps is ``b / BPS``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

E8 = 100_000_000        # units per whole: PYUSD, BTC, USD
E8_DIGITS = 8           # decimal places of one unit
BPS = 10_000            # basis points per whole


class DataError(ValueError):
    """A recorded line, frame or decimal text that cannot be read; the message says which and why."""


_POW = [10 ** (E8_DIGITS - n) for n in range(E8_DIGITS + 1)]    # scale of a fraction of n digits


def parse_e8(text: str) -> int:
    """``"61837.63000000"`` -> ``6183763000000``; more than 8 significant decimals is an error."""
    try:
        if text[-9:-8] == ".":  # fast path: Binance's fixed 8 decimals
            digits = text[:-9] + text[-8:]
            if digits.isdigit() and digits.isascii():
                return int(digits)
        whole, _, frac = text.partition(".")  # fast path: up to 8 decimals, no sign (Coinbase, Kraken)
        if len(frac) <= E8_DIGITS and whole.isdigit() and whole.isascii() and (
                not frac or (frac.isdigit() and frac.isascii())):
            return int(whole) * E8 + (int(frac) * _POW[len(frac)] if frac else 0)
    except (TypeError, AttributeError):
        raise DataError(f"not a decimal string: {text!r}") from None
    return _parse_e8_slow(text)


def _parse_e8_slow(text: str) -> int:
    try:
        whole, _dot, frac = text.partition(".")
    except (AttributeError, TypeError):
        raise DataError(f"not a decimal string: {text!r}") from None
    neg = whole[:1] == "-"
    if neg:
        whole = whole[1:]
    n = len(frac)
    digits = (whole or "0") + frac
    if not (digits.isascii() and digits.isdigit()) or not (whole or frac):
        raise DataError(f"not a decimal string: {text!r}")
    if n == E8_DIGITS:
        v = int(digits)
    elif n < E8_DIGITS:
        v = int(digits) * _POW[n]
    else:
        if frac[E8_DIGITS:].strip("0"):
            raise DataError(f"more than {E8_DIGITS} decimals: {text!r}")
        v = int(digits[: len(digits) - n + E8_DIGITS])
    return -v if neg else v


def to_e8(value: str | Decimal | int) -> int:
    """Exact decimal text or number to units; more than 8 decimal places is an error, not a rounding."""
    if isinstance(value, str):
        return parse_e8(value)
    d = Decimal(value).scaleb(E8_DIGITS)
    if not d.is_finite() or d != d.to_integral_value():
        raise DataError(f"{value} has more than {E8_DIGITS} decimal places")
    return int(d)


def round_e8(value: Decimal | int | str, rounding: str = ROUND_HALF_EVEN) -> int:
    """A ``Decimal`` (or its text) to units, rounded to the 1e-8 quantum (half-even unless told)."""
    return int((Decimal(value) * E8).to_integral_value(rounding))


def number_e8(x: object) -> int:
    """A JSON number (int or float, as Kraken's WebSocket writes prices and sizes) to units, rounded to
    the nearest: a double holds 8 decimals of any real price or size closely enough for that to be exact."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise DataError(f"not a number: {x!r}")
    return round(x * E8)


def step_e8(step: Decimal) -> int:
    """A venue increment (tick or lot) in units; it must be a positive whole number of them."""
    units = Decimal(step).scaleb(E8_DIGITS)
    if not units.is_finite() or units <= 0 or units != units.to_integral_value():
        raise ValueError(f"increment {step} is not a positive multiple of 1e-{E8_DIGITS}")
    return int(units)


def e8_to_decimal(units: int) -> Decimal:
    """Units to an exact ``Decimal`` with 8 decimal places."""
    return Decimal(units).scaleb(-E8_DIGITS)


def format_e8(units: int, min_decimals: int = 0) -> str:
    """Plain decimal text without exponent; trailing zeros trimmed down to ``min_decimals``."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), E8)
    f = f"{frac:08d}".rstrip("0")
    if len(f) < min_decimals:
        f = f + "0" * (min_decimals - len(f))
    return f"{sign}{whole}.{f}" if f else f"{sign}{whole}"


def fixed_e8(units: int, decimals: int) -> str:
    """Text with exactly ``decimals`` decimals (the value must fit; used for venue wire formats)."""
    if decimals > E8_DIGITS:
        return format_e8(units, E8_DIGITS) + "0" * (decimals - E8_DIGITS)
    step = _POW[decimals]
    if units % step:
        raise DataError(f"{format_e8(units)} has more than {decimals} decimals")
    return format_e8(units, decimals)
