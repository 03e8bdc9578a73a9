"""TrueX REST v1 client (venue facts section 6): account state for reconciliation and safety settings.

TrueX's FIX dictionary has no order-status or mass-status request, so what is live and what filled on
the venue comes from here. Every request is signed (``x-truex-auth-*`` headers, the signature over
timestamp + METHOD + path without the query + body, :func:`fastmm.venues.truex.auth.rest_signature`),
paced (at most one request per ``min_interval_s``: TrueX publishes no REST limit, so a conservative
setting), and every failure is a :class:`TruexRestError` naming the call, the HTTP status and TrueX's
message. Answers become integer records at the instrument's increments by the sans-I/O half,
:mod:`fastmm.venues.truex.rest_codec`; this module only signs, paces and moves the bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from fastmm.config import Secret
from fastmm.instrument import Instrument
from fastmm.venues.truex.auth import rest_headers
from fastmm.venues.truex.rest_codec import (
    API_PREFIX,
    ClientInfo,
    Pacer,
    RestOrder,
    RestTrade,
    TruexRestError,
    parse_order,
    parse_trade,
    required_field,
)

log = logging.getLogger("fastmm.truex.rest")


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
        return ClientInfo(str(required_field(a, "id", "GET /client")), str(a.get("ref_client_id") or ""),
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
