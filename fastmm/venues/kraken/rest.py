"""Kraken REST client: one keep-alive aiohttp session around the sans-I/O :mod:`rest_codec`.

Reads are retried with backoff on ``EService:Unavailable``, rate limits, bad answers and timeouts. An
order is different: resending after a timeout could trade twice, so :meth:`KrakenRest.add_order` sends
with a ``cl_ord_id`` and, when the outcome is unknown, asks the venue about that id (open orders, then
closed orders) before it sends again. Every call first waits on the rate model so the client stays
under Kraken's counters instead of discovering them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from fastmm.config import Secret
from fastmm.logs import reason
from fastmm.venues.kraken.rest_codec import (
    API_PREFIX,
    RETRYABLE,
    BadAnswer,
    InvalidNonce,
    KrakenError,
    NonceStore,
    RateModel,
    ServiceUnavailable,
    api_sign,
    encode_form,
    parse_answer,
)

log = logging.getLogger("fastmm.kraken")

IDEMPOTENT = frozenset({"Balance", "OpenOrders", "ClosedOrders", "QueryOrders", "CancelAll",
                        "CancelAllOrdersAfter", "Ticker", "AssetPairs", "Time"})


class OutcomeUnknown(KrakenError):
    """An order request whose fate the venue could not tell us even after asking; the caller must not
    send another order for the same purpose until it knows."""

    code = "fastmm:outcome unknown"


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    txid: str
    cl_ord_id: str
    adopted: bool        # found on the venue after an unknown outcome, not confirmed by our own call


class KrakenRest:
    def __init__(self, base_url: str, api_key: Secret | None, api_secret: Secret | None, nonces: NonceStore,
                 *, rate: RateModel | None = None, timeout_s: float = 10.0, retries: int = 4,
                 backoff_s: float = 0.2, seed: int | None = None,
                 wall_us: Callable[[], int] = lambda: time.time_ns() // 1000,
                 mono_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self._secret = api_secret
        self.nonces = nonces
        self.rate = rate or RateModel()
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._rng = random.Random(seed)
        self._wall_us = wall_us
        self._mono_ns = mono_ns
        self._session: aiohttp.ClientSession | None = None
        self.calls = 0
        self.errors: dict[str, int] = {}
        self._nonce_jump_us = 0

    async def __aenter__(self) -> KrakenRest:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=aiohttp.TCPConnector(limit=4, keepalive_timeout=60))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- one request ------------------------------------------------------------------------------
    async def _once(self, path: str, body: bytes, headers: dict[str, str]) -> Any:
        assert self._session is not None, "use `async with KrakenRest(...)`"
        self.calls += 1
        async with self._session.post(self.base_url + path, data=body, headers=headers) as resp:
            raw = await resp.read()
            return parse_answer(resp.status, raw)

    async def _private_once(self, method: str, params: dict[str, Any], order_age_s: float | None) -> Any:
        if self._key is None or self._secret is None or not self._key or not self._secret:
            raise KrakenError("no Kraken API key: set FASTMM_KRAKEN_API_KEY and FASTMM_KRAKEN_API_SECRET")
        wait = self.rate.wait_s(method, self._mono_ns(), order_age_s)
        if wait > 0:
            log.info("kraken: waiting %.2f s to stay under the rate limit before %s", wait, method)
            await asyncio.sleep(wait)
        self.rate.spend(method, self._mono_ns(), order_age_s)
        path = f"{API_PREFIX}/private/{method}"
        nonce = self.nonces.next(self._wall_us())
        body = encode_form({"nonce": nonce, **params})
        headers = {"API-Key": self._key.reveal(),
                   "API-Sign": api_sign(self._secret.reveal(), path, nonce, body),
                   "Content-Type": "application/x-www-form-urlencoded"}
        try:
            result = await self._once(path, body, headers)
        except InvalidNonce:
            # Someone used a higher nonce with this key (another client, a clock that was ahead): jump
            # ahead, twice as far each time it happens again, so a retry gets past it.
            jump = self._nonce_jump_us
            self._nonce_jump_us = min(jump * 2, 3_600_000_000) if jump else 1_000_000
            self.nonces.jump_past(max(self.nonces.last, self._wall_us()) + self._nonce_jump_us)
            raise
        self._nonce_jump_us = 0
        return result

    def _count(self, e: BaseException) -> None:
        key = getattr(e, "code", "") or type(e).__name__
        self.errors[key] = self.errors.get(key, 0) + 1

    async def _retrying(self, what: str, call: Callable[[], Any]) -> Any:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return await call()
            except (*RETRYABLE, InvalidNonce, aiohttp.ClientError, TimeoutError) as e:
                self._count(e)
                if attempt == self.retries:
                    raise ServiceUnavailable(
                        f"{what}: gave up after {attempt + 1} attempts: {reason(e)}") from e
                log.warning("kraken: %s failed (%s); retry %d in %.2f s", what, reason(e),
                            attempt + 1, delay)
                await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    # -- public interface -------------------------------------------------------------------------
    async def public(self, method: str, params: dict[str, Any] | None = None) -> Any:
        body = encode_form(params or {})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        path = f"{API_PREFIX}/public/{method}"
        return await self._retrying(method, lambda: self._once(path, body, headers))

    async def private(self, method: str, params: dict[str, Any] | None = None,
                      order_age_s: float | None = None) -> Any:
        """A private call; idempotent ones are retried, others raise on the first failure."""
        p = params or {}
        if method in IDEMPOTENT:
            return await self._retrying(method, lambda: self._private_once(method, p, order_age_s))
        return await self._private_once(method, p, order_age_s)

    async def balance(self) -> dict[str, str]:
        return await self.private("Balance")

    async def find_order(self, cl_ord_id: str) -> tuple[str, dict[str, Any]] | None:
        """The order with this ``cl_ord_id``, open or closed, or None if the venue has none."""
        for method, key in (("OpenOrders", "open"), ("ClosedOrders", "closed")):
            result = await self.private(method, {"cl_ord_id": cl_ord_id, "trades": "true"})
            for txid, info in (result.get(key) or {}).items():
                if info.get("cl_ord_id") == cl_ord_id:
                    return txid, info
        return None

    async def add_order(self, params: dict[str, Any], cl_ord_id: str | None = None) -> PlacedOrder:
        """Place an order exactly once. ``params``: pair, type, ordertype, volume, price, timeinforce..."""
        cl = cl_ord_id or str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        p = {**params, "cl_ord_id": cl}
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                result = await self._private_once("AddOrder", p, None)
                txids = result.get("txid") or []
                if not txids:
                    raise BadAnswer("AddOrder answer without txid")
                return PlacedOrder(txids[0], cl, adopted=False)
            except (ServiceUnavailable, BadAnswer, aiohttp.ClientError, TimeoutError) as e:
                self._count(e)
                log.warning("kraken: AddOrder %s outcome unknown (%s); asking the venue", cl,
                            e or type(e).__name__)
            try:
                found = await self.find_order(cl)
            except (KrakenError, aiohttp.ClientError, TimeoutError) as e:
                raise OutcomeUnknown(f"AddOrder {cl}: sent, and the venue cannot say whether it exists: {e}"
                                     ) from e
            if found is not None:
                log.info("kraken: AddOrder %s exists as %s; adopting it", cl, found[0])
                return PlacedOrder(found[0], cl, adopted=True)
            if attempt < self.retries:
                await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))
                delay = min(delay * 2, 5.0)
        raise ServiceUnavailable(f"AddOrder {cl}: not placed after {self.retries + 1} attempts")
