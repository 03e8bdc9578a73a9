"""Sanity checks of what a venue reports, before anything is booked: impossible reports are refused.

A venue (or a broken gateway, or a hostile peer) can report a fill larger than what is left of the
order, for an order we never sent, at a price on the wrong side of our limit, with a price or quantity
that is zero, negative or absurd (1e11 BTC); Kraken can report ``vol_exec`` above the order's volume.
Booked, any of these moves the position to something that never traded (and an absurd one overflows
the int64 records of the position channel). Each check here is a pure function that returns the
problem as text (``None`` = plausible); the trading core refuses the report and trips the kill switch,
the shells only journal and report. The same functions judge journal records at start-up recovery, so
a record an older version booked is skipped there instead of crash-looping the quoter.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from fastmm.core.types import OrderFilled, Side
from fastmm.units import E8, e8_to_decimal

# Beyond any real report (for BTC-PYUSD: 1e6 BTC in 1e-4 lots, and 1e9 PYUSD per BTC in 0.50 ticks). They
# catch the typo-sized reports (1e11 BTC); money products near them can still pass int64, so the position
# publisher clamps its fields as well.
MAX_LOTS = 10**10
MAX_PRICE_TICKS = 2 * 10**9
MAX_E8 = 10**6 * E8                  # a hedge venue's quantity bound: 1e6 BTC in 1e-8 BTC
MAX_PRICE = Decimal(10**9)           # PYUSD (or USD) per BTC
PRICE_IMPROVEMENT_FACTOR = 2         # a fill at more than 2x (sell) or under 1/2 (buy) our limit is absurd


class OrderTerms(NamedTuple):
    """What we know of one of our orders when a fill for it arrives."""

    side: Side
    price_ticks: int       # our limit; a pending replace's new limit in ``alt_price_ticks``
    qty_lots: int          # order quantity (the larger of the old and new one while a replace is pending)
    cum_lots: int          # already filled
    alt_price_ticks: int = 0


def _int_in(v: object, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi   # bool is not a quantity


def fill_problem(fill: OrderFilled, order: OrderTerms | None) -> str | None:
    """Why a TrueX fill report cannot be true (``None`` when it can)."""
    qty, px, leaves = fill.last_qty_lots, fill.last_px_ticks, fill.leaves_lots
    if not _int_in(qty, 1, MAX_LOTS):
        return f"fill quantity {qty!r} lots is not in 1..{MAX_LOTS}"
    if not _int_in(px, 1, MAX_PRICE_TICKS):
        return f"fill price {px!r} ticks is not in 1..{MAX_PRICE_TICKS}"
    if not _int_in(leaves, 0, MAX_LOTS):
        return f"fill leaves {leaves!r} lots is not in 0..{MAX_LOTS}"
    if fill.fee is not None and (not fill.fee.is_finite() or abs(fill.fee) > MAX_PRICE):
        return f"fill fee {fill.fee} is absurd"
    if order is None:
        return f"fill for an order we never sent (ClOrdID {fill.cl_ord_id!r})"
    if fill.side != order.side:
        return f"fill side {fill.side.name} on our {order.side.name} order {fill.cl_ord_id}"
    remaining = order.qty_lots - order.cum_lots
    if qty > remaining:
        return (f"over-fill: {qty} lots on order {fill.cl_ord_id} with {max(remaining, 0)} of "
                f"{order.qty_lots} lots left")
    limits = [p for p in (order.price_ticks, order.alt_price_ticks) if p > 0]
    if limits:
        if order.side == Side.BUY and (px > max(limits) or px * PRICE_IMPROVEMENT_FACTOR < min(limits)):
            return f"buy fill at {px} ticks against our limit {max(limits)} ticks"
        if order.side == Side.SELL and (px < min(limits) or px > max(limits) * PRICE_IMPROVEMENT_FACTOR):
            return f"sell fill at {px} ticks against our limit {min(limits)} ticks"
    return None


def hedge_fill_problem(qty_lots: object, price: object, fee: object = None) -> str | None:
    """Why a hedge fill (whole TrueX lots at a Decimal price) cannot be true."""
    if not _int_in(qty_lots, 1, MAX_LOTS):
        return f"hedge fill quantity {qty_lots!r} lots is not in 1..{MAX_LOTS}"
    if not isinstance(price, Decimal) or not price.is_finite() or not 0 < price <= MAX_PRICE:
        return f"hedge fill price {price!r} is not in (0, {MAX_PRICE}]"
    if fee is not None and (not isinstance(fee, Decimal) or not fee.is_finite() or abs(fee) > MAX_PRICE):
        return f"hedge fill fee {fee!r} is absurd"
    return None


def execution_problem(volume_e8: int, vol_exec_e8: int, prev_vol_exec_e8: int, cost: Decimal,
                      fee: Decimal) -> str | None:
    """Why a Kraken order's cumulative execution (``vol_exec``, ``cost``, ``fee`` of QueryOrders) cannot
    be true for an order of ``volume_e8`` (1e-8 BTC) we sent, having seen ``prev_vol_exec_e8`` before."""
    if not 0 <= vol_exec_e8 <= MAX_E8:
        return f"vol_exec {vol_exec_e8} e-8 BTC is absurd"
    if volume_e8 > 0 and vol_exec_e8 > volume_e8:
        return f"vol_exec {vol_exec_e8} e-8 BTC above the order volume {volume_e8}"
    if vol_exec_e8 < prev_vol_exec_e8:
        return f"vol_exec went back from {prev_vol_exec_e8} to {vol_exec_e8} e-8 BTC"
    if not cost.is_finite() or cost < 0 or not fee.is_finite() or abs(fee) > MAX_PRICE:
        return f"cost {cost} or fee {fee} is absurd"
    if vol_exec_e8 and not 0 < cost / e8_to_decimal(vol_exec_e8) <= MAX_PRICE:
        return f"average price {cost / e8_to_decimal(vol_exec_e8)} is absurd"
    return None
