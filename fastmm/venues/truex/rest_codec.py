"""TrueX REST v1, sans-I/O: the answers as integer records at the instrument's increments, the errors,
and the request pacing; nothing here opens a socket or reads a clock, so reconciliation
(:mod:`fastmm.venues.truex.reconcile`) and tests use these records without the aiohttp shell
(:mod:`fastmm.venues.truex.rest`). A value off the grid or missing is a :class:`TruexRestError`, never a
guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from fastmm.instrument import Instrument, InstrumentError

API_PREFIX = "/api/v1"
LIVE_STATUSES = frozenset({"INITIALIZED", "NEW_PENDING", "ACTIVE", "CANCEL_PENDING", "MODIFY_PENDING"})


class TruexRestError(RuntimeError):
    """A REST call that failed: transport, HTTP status, TrueX's error text or an answer we cannot read."""

    def __init__(self, call: str, detail: str, status: int = 0) -> None:
        super().__init__(f"TrueX REST {call}: {detail}" + (f" (HTTP {status})" if status else ""))
        self.call = call
        self.status = status


@dataclass(frozen=True, slots=True)
class ClientInfo:
    id: str
    ref_client_id: str
    cancel_on_disconnect: bool


@dataclass(frozen=True, slots=True)
class RestOrder:
    order_id: str       # the exchange's id
    cl_ord_id: str      # external_id: our ClOrdID ("" for an order not sent by a client id)
    status: str
    side: str           # "1" buy, "2" sell (FIX values, as the journal has them)
    price_ticks: int    # 0 for a market order
    qty_lots: int
    leaves_lots: int
    client_id: str

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


@dataclass(frozen=True, slots=True)
class RestTrade:
    order_id: str
    match_id: str
    price_ticks: int
    qty_lots: int
    fee_rate: Decimal
    liquidity: int      # 851's values: 1 maker (added), 2 taker (removed)
    timestamp_ns: int


class Pacer:
    """At most one request per ``min_interval_ns`` (sans-I/O: the caller passes the time and sleeps)."""

    __slots__ = ("_last", "min_interval_ns")

    def __init__(self, min_interval_ns: int) -> None:
        if min_interval_ns < 0:
            raise ValueError("min_interval_ns must not be negative")
        self.min_interval_ns = min_interval_ns
        self._last: int | None = None

    def wait_ns(self, now_ns: int) -> int:
        return 0 if self._last is None else max(0, self._last + self.min_interval_ns - now_ns)

    def sent(self, now_ns: int) -> None:
        self._last = now_ns


def _side(v: object, call: str) -> str:
    s = str(v).upper()
    if s in ("BUY", "1"):
        return "1"
    if s in ("SELL", "2"):
        return "2"
    raise TruexRestError(call, f"unknown side {v!r}")


def required_field(obj: dict[str, Any], key: str, call: str) -> Any:
    """``obj[key]``, or a TruexRestError naming the call when the answer lacks it."""
    if key not in obj or obj[key] is None:
        raise TruexRestError(call, f"answer without {key!r}: {json.dumps(obj)[:200]}")
    return obj[key]


def parse_order(inst: Instrument, obj: dict[str, Any], call: str = "order") -> RestOrder:
    """One order record (``id``, ``external_id``, ``status``, ``order_info{...}``, ``leaves_qty``)."""
    info = required_field(obj, "order_info", call)
    if not isinstance(info, dict):
        raise TruexRestError(call, "order_info is not an object")
    try:
        price = info.get("price")
        qty = inst.qty_to_lots(str(required_field(info, "qty", call)))
        leaves = inst.qty_to_lots(str(obj.get("leaves_qty", info["qty"])))
        return RestOrder(str(required_field(obj, "id", call)), str(obj.get("external_id") or ""),
                         str(required_field(obj, "status", call)),
                         _side(required_field(info, "side", call), call),
                         inst.price_to_ticks(str(price)) if price not in (None, "", "0") else 0, qty, leaves,
                         str(info.get("client_id") or ""))
    except (InstrumentError, InvalidOperation, ValueError) as e:
        raise TruexRestError(call, f"bad order record {obj.get('id')!r}: {e}") from None


def parse_trade(inst: Instrument, obj: dict[str, Any], call: str = "trades") -> RestTrade:
    """One fill (``order_id, trade_price, trade_qty, trade_fee_rate, liq_flag, match_id, timestamp``)."""
    try:
        liq = str(required_field(obj, "liq_flag", call)).upper()
        if liq not in ("MAKER", "TAKER"):
            raise ValueError(f"liq_flag {liq!r}")
        qty = inst.qty_to_lots(str(required_field(obj, "trade_qty", call)))
        price = inst.price_to_ticks(str(required_field(obj, "trade_price", call)))
        if qty <= 0 or price <= 0:
            raise ValueError(f"price {price} ticks, quantity {qty} lots")
        return RestTrade(str(required_field(obj, "order_id", call)),
                         str(required_field(obj, "match_id", call)), price, qty,
                         Decimal(str(obj.get("trade_fee_rate") or "0")), 1 if liq == "MAKER" else 2,
                         int(str(obj.get("timestamp") or "0")))
    except (InstrumentError, InvalidOperation, ValueError) as e:
        raise TruexRestError(call, f"bad trade record {obj.get('match_id')!r}: {e}") from None
