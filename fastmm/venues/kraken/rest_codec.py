"""Kraken spot REST, sans-I/O: signing, nonces, rate-limit models, requests and typed answers.

Venue facts section 3. Nothing here opens a socket or reads a clock: the aiohttp shell
(:mod:`fastmm.venues.kraken.rest`) passes time in and moves the bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fastmm.units import E8_DIGITS, fixed_e8, parse_e8

API_PREFIX = "/0"

# -- signing ---------------------------------------------------------------------------------------


def api_sign(secret_b64: str, urlpath: str, nonce: int | str, body: bytes | str) -> str:
    """API-Sign = base64(HMAC-SHA512(base64decode(secret), urlpath + SHA256(nonce + body)))."""
    raw = body.encode() if isinstance(body, str) else body
    digest = hashlib.sha256(str(nonce).encode() + raw).digest()
    mac = hmac.new(base64.b64decode(secret_b64), urlpath.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def encode_form(params: dict[str, Any]) -> bytes:
    """Form-encode in the caller's order (the signature covers these exact bytes)."""
    return urllib.parse.urlencode([(k, str(v)) for k, v in params.items() if v is not None]).encode()


# -- nonces ----------------------------------------------------------------------------------------


class NonceStore:
    """A strictly increasing nonce per API key that survives restarts.

    The nonce is the wall clock in microseconds, or one more than the last one issued if the clock is
    behind (a restart within the same microsecond, or a clock stepped back). Each nonce is written to
    the file (atomically, fsync'd) before it is used, so a crash can never reissue one.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.last = 0
        try:
            text = self.path.read_text().strip()
            self.last = int(text) if text else 0
        except FileNotFoundError:
            pass
        except ValueError:
            raise ValueError(f"nonce file {self.path} is corrupt; it must hold one integer") from None

    def next(self, now_us: int) -> int:
        nonce = max(now_us, self.last + 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, str(nonce).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.last = nonce
        return nonce

    def jump_past(self, nonce: int) -> None:
        """After ``EAPI:Invalid nonce``: the venue has seen a higher one; never go below it again."""
        self.last = max(self.last, nonce)


# -- rate limits -----------------------------------------------------------------------------------

CALL_TIERS = {"starter": (15.0, 0.33), "intermediate": (20.0, 0.5), "pro": (20.0, 1.0)}
TRADING_TIERS = {"starter": (60.0, 1.0), "intermediate": (125.0, 2.34), "pro": (180.0, 3.75)}
CANCEL_COST = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))


@dataclass
class LeakyCounter:
    """Kraken's decaying counter, modelled on our side to stay under it (with ``headroom`` spare)."""

    limit: float
    decay_per_s: float
    headroom: float = 1.0
    value: float = 0.0
    last_ns: int = -1

    def level(self, now_ns: int) -> float:
        if self.last_ns >= 0 and now_ns > self.last_ns:
            self.value = max(0.0, self.value - (now_ns - self.last_ns) / 1e9 * self.decay_per_s)
        self.last_ns = max(self.last_ns, now_ns)
        return self.value

    def wait_s(self, cost: float, now_ns: int) -> float:
        """How long to wait before spending ``cost`` keeps the counter under its limit."""
        over = self.level(now_ns) + cost - (self.limit - self.headroom)
        return 0.0 if over <= 0 else over / self.decay_per_s

    def spend(self, cost: float, now_ns: int) -> None:
        self.level(now_ns)
        self.value += cost


def cancel_cost(age_s: float) -> int:
    for below, cost in CANCEL_COST:
        if age_s < below:
            return cost
    return 0


class RateModel:
    """The per-key call counter and the per-pair trading counter, as Kraken counts them."""

    def __init__(self, tier: str = "starter", trading_tier: str = "starter") -> None:
        self.calls = LeakyCounter(*CALL_TIERS[tier])
        self.trading = LeakyCounter(*TRADING_TIERS[trading_tier], headroom=2.0)

    def costs(self, method: str, order_age_s: float | None = None) -> tuple[float, float]:
        """(call counter cost, trading counter cost) of one private call."""
        if method == "AddOrder":
            return 0.0, 1.0
        if method == "CancelOrder":
            return 0.0, float(cancel_cost(order_age_s)) if order_age_s is not None else 8.0
        return 1.0, 0.0

    def wait_s(self, method: str, now_ns: int, order_age_s: float | None = None) -> float:
        c, t = self.costs(method, order_age_s)
        return max(self.calls.wait_s(c, now_ns) if c else 0.0, self.trading.wait_s(t, now_ns) if t else 0.0)

    def spend(self, method: str, now_ns: int, order_age_s: float | None = None) -> None:
        c, t = self.costs(method, order_age_s)
        if c:
            self.calls.spend(c, now_ns)
        if t:
            self.trading.spend(t, now_ns)


# -- answers and errors ----------------------------------------------------------------------------


class KrakenError(Exception):
    """An error answer of Kraken's, or an answer that is not one."""

    code = ""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidKey(KrakenError):
    code = "EAPI:Invalid key"


class InvalidSignature(KrakenError):
    code = "EAPI:Invalid signature"


class InvalidNonce(KrakenError):
    code = "EAPI:Invalid nonce"


class RateLimited(KrakenError):
    code = "EAPI:Rate limit exceeded"


class OrderRateLimited(KrakenError):
    code = "EOrder:Rate limit exceeded"


class InsufficientFunds(KrakenError):
    code = "EOrder:Insufficient funds"


class OrderMinimum(KrakenError):
    code = "EOrder:Order minimum not met"


class UnknownOrder(KrakenError):
    code = "EOrder:Unknown order"


class ServiceUnavailable(KrakenError):
    code = "EService:Unavailable"


class CancelOnly(KrakenError):
    code = "EService:Market in cancel_only mode"


class InvalidArguments(KrakenError):
    code = "EGeneral:Invalid arguments"


class BadAnswer(KrakenError):
    """Not Kraken's JSON envelope: an HTML error page from a proxy, an empty body, garbage."""

    code = "fastmm:bad answer"


_ERRORS: dict[str, type[KrakenError]] = {cls.code: cls for cls in (
    InvalidKey, InvalidSignature, InvalidNonce, RateLimited, OrderRateLimited, InsufficientFunds,
    OrderMinimum, UnknownOrder, ServiceUnavailable, CancelOnly, InvalidArguments)}

RETRYABLE = (ServiceUnavailable, RateLimited, BadAnswer)


def error_of(text: str) -> KrakenError:
    """Map one of Kraken's error strings (``EOrder:Insufficient funds``, maybe with ``:detail``)."""
    for code, cls in _ERRORS.items():
        if text == code or text.startswith(code + ":"):
            return cls(text)
    return KrakenError(text)


def parse_answer(status: int, body: bytes) -> Any:
    """The ``result`` of an answer, or the typed error it carries."""
    if not body:
        raise BadAnswer(f"empty body (HTTP {status})")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        snippet = body[:60].decode("utf-8", "replace").replace("\n", " ")
        raise BadAnswer(f"not JSON (HTTP {status}): {snippet!r}") from None
    if not isinstance(doc, dict) or "error" not in doc or not isinstance(doc["error"], list):
        raise BadAnswer(f"no error list in the answer (HTTP {status})")
    if doc["error"]:
        raise error_of(str(doc["error"][0]))
    if status >= 400:
        raise BadAnswer(f"HTTP {status} without an error")
    if "result" not in doc:
        raise BadAnswer("no result in the answer")
    return doc["result"]


@dataclass(frozen=True, slots=True)
class PairInfo:
    """AssetPairs of the hedge pair: what an order's price and volume must look like."""

    altname: str
    key: str
    price_decimals: int
    lot_decimals: int
    ordermin_e8: int
    tick_e8: int

    @classmethod
    def from_asset_pairs(cls, result: dict[str, Any], pair: str) -> PairInfo:
        for key, info in result.items():
            if pair in (key, info.get("altname"), info.get("wsname")):
                decimals = int(info["pair_decimals"])
                tick = info.get("tick_size")
                return cls(info.get("altname", pair), key, decimals, int(info["lot_decimals"]),
                           parse_e8(str(info.get("ordermin", "0"))),
                           parse_e8(str(tick)) if tick else 10 ** (E8_DIGITS - decimals))
        raise KrakenError(f"AssetPairs has no pair {pair}")

    def order_params(self, side: str, volume_e8: int, price_e8: int = 0) -> dict[str, str]:
        """AddOrder's parameters for this pair, at its precisions (``price_e8`` 0: a market order)."""
        params = {"pair": self.altname, "type": side, "ordertype": "limit" if price_e8 else "market",
                  "volume": fixed_e8(volume_e8, self.lot_decimals)}
        if price_e8:
            params["price"] = fixed_e8(price_e8, self.price_decimals)
        return params
