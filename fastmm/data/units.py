"""Exact decimal text <-> integer units of 1e-8, the resolution of every recorded price and size.

Binance prints 8 decimals, Coinbase and Kraken at most 8 for BTC, so one integer scale keeps every
price and quantity exact and makes book keys and comparisons plain integer operations (fast, no
Decimal on the replay path).
"""

from __future__ import annotations

from decimal import Decimal

E8 = 100_000_000
_DIGITS = 8


class DataError(ValueError):
    """A recorded line or frame that cannot be read; the message says which and why."""


def parse_e8(text: str) -> int:
    """``"61837.63000000"`` -> ``6183763000000``; more than 8 significant decimals is an error."""
    try:
        if text[-9:-8] == ".":  # fast path: Binance's fixed 8 decimals
            digits = text[:-9] + text[-8:]
            if digits.isdigit() and digits.isascii():
                return int(digits)
        whole, _, frac = text.partition(".")  # fast path: up to 8 decimals, no sign (Coinbase, Kraken)
        if len(frac) <= _DIGITS and whole.isdigit() and whole.isascii() and (
                not frac or (frac.isdigit() and frac.isascii())):
            return int(whole) * E8 + (int(frac) * _POW[len(frac)] if frac else 0)
    except (TypeError, AttributeError):
        raise DataError(f"not a decimal string: {text!r}") from None
    return _parse_e8_slow(text)


_POW = [10 ** (_DIGITS - n) for n in range(_DIGITS + 1)]


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
    if n == _DIGITS:
        v = int(digits)
    elif n < _DIGITS:
        v = int(digits) * 10 ** (_DIGITS - n)
    else:
        if frac[_DIGITS:].strip("0"):
            raise DataError(f"more than {_DIGITS} decimals: {text!r}")
        v = int(digits[: len(digits) - n + _DIGITS])
    return -v if neg else v


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
    if decimals > _DIGITS:
        return format_e8(units, _DIGITS) + "0" * (decimals - _DIGITS)
    step = 10 ** (_DIGITS - decimals)
    if units % step:
        raise DataError(f"{format_e8(units)} has more than {decimals} decimals")
    return format_e8(units, decimals)


def e8_to_decimal(units: int) -> Decimal:
    return Decimal(units).scaleb(-_DIGITS)
