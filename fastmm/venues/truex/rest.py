"""TrueX REST v1 client (venue facts section 6): account state for reconciliation and safety settings.

TrueX's FIX dictionary has no order-status or mass-status request, so what is live and what filled on
the venue comes from here. Every request is signed (``x-truex-auth-*`` headers, the signature over
timestamp + METHOD + path without the query + body, :func:`fastmm.venues.truex.auth.rest_signature`),
paced (at most one request per ``min_interval_s``: TrueX publishes no REST limit, so a conservative
setting), and every failure is a :class:`TruexRestError` naming the call, the HTTP status and TrueX's
message. Answers become integer records at the instrument's increments (:class:`RestOrder`,
:class:`RestTrade`); a value off the grid or missing is an error, never a guess.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from fastmm.config import Secret
from fastmm.instrument import Instrument, InstrumentError
from fastmm.venues.truex.auth import rest_headers

log = logging.getLogger("fastmm.truex.rest")

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


def _req(obj: dict[str, Any], key: str, call: str) -> Any:
    if key not in obj or obj[key] is None:
        raise TruexRestError(call, f"answer without {key!r}: {json.dumps(obj)[:200]}")
    return obj[key]


def parse_order(inst: Instrument, obj: dict[str, Any], call: str = "order") -> RestOrder:
    """One order record (``id``, ``external_id``, ``status``, ``order_info{...}``, ``leaves_qty``)."""
    info = _req(obj, "order_info", call)
    if not isinstance(info, dict):
        raise TruexRestError(call, "order_info is not an object")
    try:
        price = info.get("price")
        qty = inst.qty_to_lots(str(_req(info, "qty", call)))
        leaves = inst.qty_to_lots(str(obj.get("leaves_qty", info["qty"])))
        return RestOrder(str(_req(obj, "id", call)), str(obj.get("external_id") or ""),
                         str(_req(obj, "status", call)), _side(_req(info, "side", call), call),
                         inst.price_to_ticks(str(price)) if price not in (None, "", "0") else 0, qty, leaves,
                         str(info.get("client_id") or ""))
    except (InstrumentError, InvalidOperation, ValueError) as e:
        raise TruexRestError(call, f"bad order record {obj.get('id')!r}: {e}") from None


def parse_trade(inst: Instrument, obj: dict[str, Any], call: str = "trades") -> RestTrade:
    """One fill (``order_id, trade_price, trade_qty, trade_fee_rate, liq_flag, match_id, timestamp``)."""
    try:
        liq = str(_req(obj, "liq_flag", call)).upper()
        if liq not in ("MAKER", "TAKER"):
            raise ValueError(f"liq_flag {liq!r}")
        qty = inst.qty_to_lots(str(_req(obj, "trade_qty", call)))
        price = inst.price_to_ticks(str(_req(obj, "trade_price", call)))
        if qty <= 0 or price <= 0:
            raise ValueError(f"price {price} ticks, quantity {qty} lots")
        return RestTrade(str(_req(obj, "order_id", call)), str(_req(obj, "match_id", call)), price, qty,
                         Decimal(str(obj.get("trade_fee_rate") or "0")), 1 if liq == "MAKER" else 2,
                         int(str(obj.get("timestamp") or "0")))
    except (InstrumentError, InvalidOperation, ValueError) as e:
        raise TruexRestError(call, f"bad trade record {obj.get('match_id')!r}: {e}") from None


class TruexRest:
    """``async with TruexRest(url, user_id, key_id, secret, instrument) as rest: await rest.get_client()``."""

    def __init__(self, base_url: str, user_id: str, key_id: Secret | str, secret: Secret | str,
                 instrument: Instrument, *, min_interval_s: float = 0.2, timeout_s: float = 10.0,
                 wall_s: Callable[[], int] = lambda: int(time.time()),
                 mono_ns: Callable[[], int] = time.monotonic_ns) -> None:
        if not key_id or not secret:
            raise TruexRestError("setup", "no API key: set FASTMM_TRUEX_API_KEY_ID and "
                                 "FASTMM_TRUEX_API_SECRET")
        self.base_url = base_url.rstrip("/")
        self.user_id = user_id
        self._key, self._secret = key_id, secret
        self.instrument = instrument
        self.pacer = Pacer(int(min_interval_s * 1e9))
        self.timeout_s = timeout_s
        self._wall_s, self._mono_ns = wall_s, mono_ns
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        self.calls = 0

    async def __aenter__(self) -> TruexRest:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, query: dict[str, Any] | None = None,
                      body: dict[str, Any] | None = None) -> Any:
        """One signed, paced call; ``path`` is below ``/api/v1``. Returns the decoded JSON answer."""
        assert self._session is not None, "use `async with TruexRest(...)`"
        call = f"{method} {path}"
        full = API_PREFIX + path
        text = json.dumps(body, separators=(",", ":")) if body is not None else ""
        async with self._lock:          # one at a time, so the pacing holds
            wait = self.pacer.wait_ns(self._mono_ns())
            if wait:
                await asyncio.sleep(wait / 1e9)
            self.pacer.sent(self._mono_ns())
            headers = rest_headers(self._key, self._secret, self._wall_s(), method, full, text)
            headers["x-truex-auth-userid"] = self.user_id
            if text:
                headers["Content-Type"] = "application/json"
            url = self.base_url + full + (f"?{urlencode(query)}" if query else "")
            self.calls += 1
            try:
                async with self._session.request(method, url, data=text or None, headers=headers) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                raise TruexRestError(call, f"{type(e).__name__}: {e}") from e
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
            if status < 300:
                raise TruexRestError(call, f"answer is not JSON: {raw[:120]!r}", status) from None
        if status >= 300:
            msg = answer.get("message") or answer.get("error") if isinstance(answer, dict) else None
            raise TruexRestError(call, str(msg or raw[:200].decode("utf-8", "replace") or "no body"), status)
        return answer

    # -- calls ---------------------------------------------------------------------------------------
    async def get_client(self) -> ClientInfo:
        a = await self.request("GET", "/client")
        if not isinstance(a, dict):
            raise TruexRestError("GET /client", "answer is not an object")
        return ClientInfo(str(_req(a, "id", "GET /client")), str(a.get("ref_client_id") or ""),
                          bool(a.get("cancel_on_disconnect")))

    async def set_cancel_on_disconnect(self, on: bool) -> ClientInfo:
        await self.request("PATCH", "/client", body={"cancel_on_disconnect": on})
        info = await self.get_client()
        if info.cancel_on_disconnect is not on:
            raise TruexRestError("PATCH /client", f"cancel_on_disconnect still {info.cancel_on_disconnect}")
        return info

    async def active_orders(self) -> list[RestOrder]:
        a = await self.request("GET", "/order/active")
        if not isinstance(a, list):
            raise TruexRestError("GET /order/active", "answer is not a list")
        return [parse_order(self.instrument, o, "GET /order/active") for o in a]

    async def order_status(self, ref: str, id_type: str = "exchange") -> RestOrder:
        path = f"/order/status/{quote(ref, safe='')}"
        a = await self.request("GET", path, {"id_type": id_type})
        if not isinstance(a, dict):
            raise TruexRestError(f"GET {path}", "answer is not an object")
        return parse_order(self.instrument, a, f"GET {path}")

    async def trades(self, since_ns: int = 0, size: int = 100, max_pages: int = 50) -> list[RestTrade]:
        """Fills since ``since_ns`` (the venue keeps 24 h), every page (``size`` 1..100) up to a bound."""
        if not 1 <= size <= 100:
            raise ValueError("size must be 1..100")
        out: list[RestTrade] = []
        for page in range(max_pages):
            a = await self.request("GET", "/order/trade",
                                   {"timestamp": since_ns, "size": size, "skip": page * size})
            if not isinstance(a, list):
                raise TruexRestError("GET /order/trade", "answer is not a list")
            out += [parse_trade(self.instrument, t, "GET /order/trade") for t in a]
            if len(a) < size:
                return out
        raise TruexRestError("GET /order/trade", f"more than {max_pages * size} fills since {since_ns}")

    async def cancel(self, ref: str, id_type: str = "exchange") -> None:
        await self.request("DELETE", f"/order/{quote(ref, safe='')}", {"id_type": id_type})
