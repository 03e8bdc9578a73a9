"""Kraken spot REST simulator, sans-I/O core (the aiohttp shell is kraken_server.py).

Venue facts section 3, as Kraken does it:

* private calls are authenticated by ``API-Sign = base64(HMAC-SHA512(base64decode(secret), path +
  SHA256(nonce + body)))`` over the raw body (form or JSON); the nonce must increase per key;
* the per-key call counter (+1 per call except AddOrder/CancelOrder, max 15/20/20, decay 0.33/0.5/1 per
  s by tier) gives ``EAPI:Rate limit exceeded``; the per-pair trading counter (AddOrder +1 always;
  cancelling an order younger than 5/10/15/45/90/300 s costs +8/6/5/4/2/1; threshold 60/125/180, decay
  1/2.34/3.75 per s) gives ``EOrder:Rate limit exceeded``;
* answers are ``{"error": [...], "result": {...}}`` with Kraken's error strings.

Orders fill against a replayed reference book (the Binance capture as BTC/USD): a marketable limit order
walks the book up to its price as taker, a market order fills whole at the touch as taker, a resting
limit order fills as maker when the book moves through its price or when a recorded taker trade reaches
it (thinned by ``trade_fill_probability`` with ``random.Random(seed)``, sized by ``trade_size_scale``).
Prices and volumes are integer E8 units; balances, costs and fees are exact Decimals. Counters are
integers of 1e-12 so that their decay is exact. Time is always the caller's ``now_ns``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import random
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson

from fastmm.data.binance import replay as binance_replay
from fastmm.data.book import L2Book
from fastmm.data.events import BookSnapshot, BookTicker, DepthDiff, Event, Trade
from fastmm.data.replay import Cursor, ReplayClock
from fastmm.logs import OnceLogger
from fastmm.units import BPS, E8, DataError, e8_to_decimal, fixed_e8, format_e8, parse_e8

log = logging.getLogger(__name__)

# -- Kraken's numbers (venue facts section 3) -------------------------------------------------------
CALL_TIERS = {"starter": (15, 330), "intermediate": (20, 500), "pro": (20, 1000)}  # (max, decay milli/s)
TRADING_TIERS = {"starter": (60, 1000), "intermediate": (125, 2340), "pro": (180, 3750)}
CANCEL_PENALTY = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))  # (age below s, cost)
UNIT = 10**12  # one count in counter units; decay per ns = milli-per-s exactly

PAIR_KEY, PAIR_ALT, PAIR_WS = "XXBTZUSD", "XBTUSD", "XBT/USD"
PAIR_NAMES = frozenset({PAIR_KEY, PAIR_ALT, PAIR_WS, "BTC/USD", "BTCUSD"})
BASE, QUOTE = "XXBT", "ZUSD"
PRICE_STEP = 10**7  # 0.1 USD in E8
ORDERMIN = 10_000  # 0.0001 BTC in E8
COSTMIN = Decimal("0.5")
_FEE_Q = Decimal("0.00000001")
_BPS = Decimal(BPS)

E_INVALID_KEY = "EAPI:Invalid key"
E_INVALID_SIGNATURE = "EAPI:Invalid signature"
E_INVALID_NONCE = "EAPI:Invalid nonce"
E_RATE = "EAPI:Rate limit exceeded"
E_ORDER_RATE = "EOrder:Rate limit exceeded"
E_FUNDS = "EOrder:Insufficient funds"
E_ORDERMIN = "EOrder:Order minimum not met"
E_COSTMIN = "EOrder:Cost minimum not met"
E_UNKNOWN_ORDER = "EOrder:Unknown order"
E_INVALID_ORDER = "EOrder:Invalid order"
E_UNAVAILABLE = "EService:Unavailable"
E_CANCEL_ONLY = "EService:Market in cancel_only mode"
E_ARGS = "EGeneral:Invalid arguments"
E_UNKNOWN_METHOD = "EGeneral:Unknown method"
E_UNKNOWN_PAIR = "EQuery:Unknown asset pair"
E_PRICE = "EOrder:Invalid price:XBTUSD price can only be specified up to 1 decimals."

PRIVATE_METHODS = frozenset({"AddOrder", "CancelOrder", "CancelAll", "CancelAllOrdersAfter", "QueryOrders",
                             "OpenOrders", "ClosedOrders", "Balance"})
PUBLIC_METHODS = frozenset({"Ticker", "AssetPairs", "Time"})
_TRADING_METHODS = frozenset({"AddOrder", "CancelOrder"})


def kraken_signature(secret_b64: str, urlpath: str, nonce: str | int, body: bytes | str) -> str:
    """API-Sign of one request, exactly as Kraken computes it."""
    raw = body.encode() if isinstance(body, str) else body
    sha = hashlib.sha256(str(nonce).encode() + raw).digest()
    mac = hmac.new(base64.b64decode(secret_b64), urlpath.encode() + sha, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


class DecayCounter:
    """A leaky counter in units of 1e-12 count decaying ``decay_milli`` thousandths per second, exactly."""

    __slots__ = ("decay_milli", "last_ns", "limit", "value")

    def __init__(self, limit: int, decay_milli: int) -> None:
        self.limit = limit * UNIT
        self.decay_milli = decay_milli
        self.value = 0
        self.last_ns: int | None = None

    def level(self, now_ns: int) -> int:
        if self.last_ns is not None and now_ns > self.last_ns:
            self.value = max(0, self.value - (now_ns - self.last_ns) * self.decay_milli)
        if self.last_ns is None or now_ns > self.last_ns:
            self.last_ns = now_ns
        return self.value

    def add(self, count: int, now_ns: int) -> None:
        self.level(now_ns)
        self.value += count * UNIT

    def would_exceed(self, count: int, now_ns: int) -> bool:
        return self.level(now_ns) + count * UNIT > self.limit

    @property
    def count(self) -> Decimal:
        return Decimal(self.value) / UNIT


def cancel_penalty(age_ns: int) -> int:
    for below_s, cost in CANCEL_PENALTY:
        if age_ns < below_s * 1_000_000_000:
            return cost
    return 0


# -- settings ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KrakenSettings:
    keys: dict[str, str] = field(default_factory=dict)  # API key -> base64 secret
    balances: dict[str, Decimal] = field(default_factory=lambda: {QUOTE: Decimal(100_000), BASE: Decimal(2)})
    maker_fee_bps: Decimal = Decimal(16)
    taker_fee_bps: Decimal = Decimal(26)
    tier: str = "starter"  # call counter tier
    trading_tier: str = "starter"
    speed: float = 1.0  # replay speed of the reference book (0 or inf = all at once)
    seed: int = 0
    trade_fill_probability: float = 1.0  # chance a recorded taker trade reaches a resting order
    trade_size_scale: float = 1.0  # recorded taker size x this = size available to our order
    max_body_bytes: int = 16 * 1024
    cancel_only: bool = False  # fault: AddOrder answers EService:Market in cancel_only mode
    unavailable: bool = False  # fault: every call answers EService:Unavailable
    market_delay_ms: int = 0  # fault: a market order stays open this long before it executes (a slow venue)
    vol_exec_factor: int = 1  # fault: QueryOrders reports vol_exec (and cost, fee) this many times over

    def __post_init__(self) -> None:
        if self.tier not in CALL_TIERS or self.trading_tier not in TRADING_TIERS:
            raise ValueError(f"unknown tier {self.tier!r}/{self.trading_tier!r}; one of {sorted(CALL_TIERS)}")
        for k, s in self.keys.items():
            try:
                base64.b64decode(s, validate=True)
            except binascii.Error:
                raise ValueError(f"kraken sim: secret of key {k[:6]}... is not base64") from None
        if not 0.0 <= self.trade_fill_probability <= 1.0 or self.trade_size_scale < 0:
            raise ValueError("trade_fill_probability must be in [0, 1] and trade_size_scale >= 0")


# -- orders and accounts ----------------------------------------------------------------------------
@dataclass(slots=True)
class Order:
    txid: str
    side: str  # "buy" | "sell"
    ordertype: str  # "limit" | "market"
    price: int  # E8; 0 for market
    volume: int  # E8
    opentm_ns: int
    tif: str = "GTC"
    post_only: bool = False
    userref: int | None = None
    cl_ord_id: str | None = None
    oflags: str = ""
    expire_ns: int | None = None
    filled: int = 0
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    status: str = "open"
    closetm_ns: int | None = None
    reason: str | None = None
    trades: list[str] = field(default_factory=list)
    execute_ns: int | None = None  # a delayed market order executes at this time (``market_delay_ms``)

    @property
    def remaining(self) -> int:
        return self.volume - self.filled

    def descr(self) -> str:
        vol = fixed_e8(self.volume, 8)
        if self.ordertype == "market":
            return f"{self.side} {vol} {PAIR_ALT} @ market"
        return f"{self.side} {vol} {PAIR_ALT} @ limit {fixed_e8(self.price, 1)}"


@dataclass(slots=True)
class Fill:
    trade_id: str
    txid: str
    side: str
    price: int
    volume: int
    cost: Decimal
    fee: Decimal
    maker: bool
    time_ns: int


class Account:
    __slots__ = ("balances", "calls", "dead_man_ns", "fills", "last_nonce", "orders", "trading")

    def __init__(self, s: KrakenSettings) -> None:
        self.balances: dict[str, Decimal] = {BASE: Decimal(0), QUOTE: Decimal(0), **s.balances}
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.last_nonce = 0
        self.calls = DecayCounter(*CALL_TIERS[s.tier])
        self.trading = DecayCounter(*TRADING_TIERS[s.trading_tier])
        self.dead_man_ns: int | None = None

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.status == "open"]


class KrakenError(Exception):
    """An answer of ``{"error": [text]}``."""


def _ok(result: Any) -> dict[str, Any]:
    return {"error": [], "result": result}


def _err(text: str) -> dict[str, Any]:
    return {"error": [text]}


def _ts(ns: int) -> float:
    return round(ns / 1e9, 4)


def _money(d: Decimal, places: int) -> str:
    """Kraken-style text with at least ``places`` decimals, never losing digits (exact balances)."""
    q = Decimal(1).scaleb(-places)
    return str(d.quantize(q)) if d == d.quantize(q) else format(d.normalize(), "f")


# -- the core ----------------------------------------------------------------------------------------
class KrakenSim:
    """Accounts, orders and a replayed reference book; ``handle_*`` answer requests at ``now_ns``."""

    def __init__(self, events: Iterable[Event], settings: KrakenSettings | None = None) -> None:
        self.settings = s = settings or KrakenSettings()
        self.clock = ReplayClock(s.speed)
        self._cursor: Cursor[Event] = Cursor(binance_replay(events))
        self.book = L2Book()
        self.have_book = False
        self.rng = random.Random(s.seed)
        self.accounts = {k: Account(s) for k in s.keys}
        self.bad = OnceLogger(log)
        self.last_trade: Trade | None = None
        self.last_ticker: BookTicker | None = None
        self._stats = {"volume": 0, "notional": 0, "count": 0, "low": 0, "high": 0, "open": 0}
        self.replayed = 0

    # -- replay ------------------------------------------------------------------------------------
    def start_replay(self, now_ns: int) -> None:
        if not self.clock.started:
            first = self._cursor.peek()
            self.clock.start(now_ns, first.recv_ns if first is not None else now_ns)

    def advance(self, now_ns: int) -> int:
        """Replay the reference up to ``now_ns``, fill resting orders, run dead-man switches and GTD
        expiry. Returns how many recorded events were applied."""
        self.start_replay(now_ns)
        data_now = self.clock.data_now(now_ns)
        n = 0
        while (ev := self._cursor.peek()) is not None and ev.recv_ns <= data_now:
            self._apply(self._cursor.pop(), now_ns)
            n += 1
        self.replayed += n
        self._timers(now_ns)
        return n

    def next_wakeup_ns(self) -> int | None:
        times = [a.dead_man_ns for a in self.accounts.values() if a.dead_man_ns is not None]
        times += [t for a in self.accounts.values() for o in a.orders.values() if o.status == "open"
                  for t in (o.expire_ns, o.execute_ns) if t is not None]
        ev = self._cursor.peek()
        if ev is not None:
            w = self.clock.wall_at(ev.recv_ns)
            if w is not None:
                times.append(w)
        return min(times) if times else None

    @property
    def finished(self) -> bool:
        return self._cursor.exhausted

    def _apply(self, ev: Event, now_ns: int) -> None:
        if isinstance(ev, DepthDiff):
            self.book.apply_diff(ev)
            self._cross_resting(now_ns)
        elif isinstance(ev, Trade):
            self._on_trade(ev, now_ns)
        elif isinstance(ev, BookTicker):
            self.last_ticker = ev
        elif isinstance(ev, BookSnapshot):
            self.book.apply_snapshot(ev)
            self.have_book = True
            self._cross_resting(now_ns)

    def _timers(self, now_ns: int) -> None:
        for key, acct in self.accounts.items():
            if acct.dead_man_ns is not None and now_ns >= acct.dead_man_ns:
                acct.dead_man_ns = None
                for o in acct.open_orders():
                    self._close(o, "canceled", now_ns, "Dead man's switch")
                log.info("kraken sim: dead man's switch fired for key %s...", key[:6])
            for o in acct.open_orders():
                if o.expire_ns is not None and now_ns >= o.expire_ns:
                    self._close(o, "expired", now_ns, "Order expired")
                elif o.execute_ns is not None and now_ns >= o.execute_ns:
                    o.execute_ns = None
                    self._execute(acct, o, now_ns)

    # -- fills -------------------------------------------------------------------------------------
    def _resting(self) -> list[tuple[Account, Order]]:
        return [(a, o) for a in self.accounts.values() for o in a.orders.values()
                if o.status == "open" and o.ordertype == "limit"]

    def _cross_resting(self, now_ns: int) -> None:
        """A book that moved through a resting order's price fills it whole at its price (maker)."""
        bb, ba = self.book.best_bid(), self.book.best_ask()
        for acct, o in self._resting():
            if (o.side == "buy" and ba is not None and ba[0] <= o.price) or \
                    (o.side == "sell" and bb is not None and bb[0] >= o.price):
                self._fill(acct, o, o.price, o.remaining, True, now_ns)

    def _on_trade(self, t: Trade, now_ns: int) -> None:
        self.last_trade = t
        st = self._stats
        st["volume"] += t.qty
        st["notional"] += t.qty * t.price
        st["count"] += 1
        st["low"] = t.price if not st["low"] else min(st["low"], t.price)
        st["high"] = max(st["high"], t.price)
        st["open"] = st["open"] or t.price
        want = "buy" if t.buyer_is_maker else "sell"  # the side a taker of this trade would hit
        resting = [(a, o) for a, o in self._resting() if o.side == want and
                   (o.price >= t.price if want == "buy" else o.price <= t.price)]
        if not resting:
            return
        if self.rng.random() >= self.settings.trade_fill_probability:
            return
        avail = int(t.qty * self.settings.trade_size_scale)
        resting.sort(key=lambda ao: (-ao[1].price if want == "buy" else ao[1].price, ao[1].opentm_ns))
        for acct, o in resting:
            if avail <= 0:
                break
            q = min(avail, o.remaining)
            self._fill(acct, o, o.price, q, True, now_ns)
            avail -= q

    def _fill(self, acct: Account, o: Order, price: int, qty: int, maker: bool, now_ns: int) -> None:
        cost = Decimal(price * qty).scaleb(-16)
        bps = self.settings.maker_fee_bps if maker else self.settings.taker_fee_bps
        fee = (cost * bps / _BPS).quantize(_FEE_Q, ROUND_HALF_EVEN)
        vol = e8_to_decimal(qty)
        b = acct.balances
        if o.side == "buy":
            b[QUOTE] -= cost + fee
            b[BASE] += vol
        else:
            b[BASE] -= vol
            b[QUOTE] += cost - fee
        o.filled += qty
        o.cost += cost
        o.fee += fee
        tid = self._id("T")
        o.trades.append(tid)
        acct.fills.append(Fill(tid, o.txid, o.side, price, qty, cost, fee, maker, now_ns))
        if o.remaining == 0:
            self._close(o, "closed", now_ns, None)

    def _close(self, o: Order, status: str, now_ns: int, reason: str | None) -> None:
        o.status, o.closetm_ns, o.reason = status, now_ns, reason

    def _id(self, prefix: str) -> str:
        a = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        r = self.rng
        parts = ("".join(r.choice(a) for _ in range(n)) for n in (5, 5, 6))
        return prefix + "-".join(parts)

    # -- requests ----------------------------------------------------------------------------------
    def handle_public(self, method: str, params: dict[str, str], now_ns: int) -> dict[str, Any]:
        if self.settings.unavailable:
            return _err(E_UNAVAILABLE)
        self.advance(now_ns)
        try:
            if method == "Time":
                rfc = time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now_ns // 10**9))
                return _ok({"unixtime": now_ns // 10**9, "rfc1123": rfc})
            if method == "AssetPairs":
                self._check_pairs(params.get("pair"))
                return _ok({PAIR_KEY: self._asset_pair()})
            if method == "Ticker":
                if not params.get("pair"):
                    raise KrakenError(E_ARGS + ":pair")
                self._check_pairs(params.get("pair"))
                return _ok({PAIR_KEY: self._ticker()})
        except KrakenError as e:
            self.bad(f"public {method}: {e}")
            return _err(str(e))
        self.bad("unknown public method", method[:40])
        return _err(E_UNKNOWN_METHOD)

    def handle_private(self, method: str, api_key: str | None, api_sign: str | None, body: bytes,
                       content_type: str, now_ns: int) -> dict[str, Any]:
        """Authenticate, rate-limit and run one private call (``method`` is the path's last part)."""
        try:
            return self._private(method, api_key, api_sign, body, content_type, now_ns)
        except KrakenError as e:
            self.bad(f"private {method[:40]}: {e}")
            return _err(str(e))

    def _private(self, method: str, api_key: str | None, api_sign: str | None, body: bytes,
                 content_type: str, now_ns: int) -> dict[str, Any]:
        if self.settings.unavailable:
            raise KrakenError(E_UNAVAILABLE)
        acct = self.accounts.get(api_key or "")
        if acct is None:
            raise KrakenError(E_INVALID_KEY)
        if len(body) > self.settings.max_body_bytes:
            raise KrakenError(E_ARGS + ":body too large")
        params = parse_body(body, content_type)
        nonce_text = params.get("nonce", "")
        if not (nonce_text.isascii() and nonce_text.isdigit()) or len(nonce_text) > 20:
            raise KrakenError(E_INVALID_NONCE)
        nonce = int(nonce_text)
        if not api_sign or not _sign_ok(self.settings.keys[api_key or ""], f"/0/private/{method}",
                                        nonce_text, body, api_sign):
            raise KrakenError(E_INVALID_SIGNATURE)
        if nonce <= acct.last_nonce or nonce >= 1 << 64:
            raise KrakenError(E_INVALID_NONCE)
        acct.last_nonce = nonce
        if method not in PRIVATE_METHODS:
            raise KrakenError(E_UNKNOWN_METHOD)
        if method not in _TRADING_METHODS:
            if acct.calls.would_exceed(1, now_ns):
                raise KrakenError(E_RATE)
            acct.calls.add(1, now_ns)
        self.advance(now_ns)
        handler = getattr(self, "_m_" + method)
        return _ok(handler(acct, params, now_ns))

    # -- private methods -----------------------------------------------------------------------------
    def _m_Balance(self, acct: Account, p: dict[str, str], now_ns: int) -> dict[str, str]:
        return {a: _money(v, 10 if a == BASE else 4) for a, v in sorted(acct.balances.items())}

    def _m_AddOrder(self, acct: Account, p: dict[str, str], now_ns: int) -> dict[str, Any]:
        acct.trading.add(1, now_ns)  # the fixed count applies even when validation fails
        if acct.trading.level(now_ns) > acct.trading.limit:
            raise KrakenError(E_ORDER_RATE)
        if self.settings.cancel_only:
            raise KrakenError(E_CANCEL_ONLY)
        o = self._parse_order(p, now_ns)
        if p.get("validate", "").lower() in ("true", "1"):
            return {"descr": {"order": o.descr()}}
        if not self.have_book:
            raise KrakenError(E_UNAVAILABLE)
        self._check_funds(acct, o)
        acct.orders[o.txid] = o
        if o.ordertype == "market" and self.settings.market_delay_ms > 0:
            o.execute_ns = now_ns + self.settings.market_delay_ms * 1_000_000   # open until then
            return {"descr": {"order": o.descr()}, "txid": [o.txid]}
        self._execute(acct, o, now_ns)
        return {"descr": {"order": o.descr()}, "txid": [o.txid]}

    def _parse_order(self, p: dict[str, str], now_ns: int) -> Order:
        for name in ("pair", "type", "ordertype", "volume"):
            if not p.get(name):
                raise KrakenError(f"{E_ARGS}:{name}")
        self._check_pairs(p["pair"], single=True)
        side, otype = p["type"], p["ordertype"]
        if side not in ("buy", "sell"):
            raise KrakenError(E_ARGS + ":type")
        if otype not in ("limit", "market"):
            raise KrakenError(E_ARGS + ":ordertype")
        try:
            vol = parse_e8(p["volume"])
        except DataError:
            raise KrakenError(E_ARGS + ":volume") from None
        if vol <= 0:
            raise KrakenError(E_ARGS + ":volume")
        if vol < ORDERMIN:
            raise KrakenError(E_ORDERMIN)
        price = 0
        if otype == "limit":
            try:
                price = parse_e8(p.get("price", ""))
            except DataError:
                raise KrakenError(E_ARGS + ":price") from None
            if price <= 0:
                raise KrakenError(E_ARGS + ":price")
            if price % PRICE_STEP:
                raise KrakenError(E_PRICE)
            if Decimal(price * vol).scaleb(-16) < COSTMIN:
                raise KrakenError(E_COSTMIN)
        tif = p.get("timeinforce", "GTC") or "GTC"
        if tif not in ("GTC", "IOC", "GTD"):
            raise KrakenError(E_ARGS + ":timeinforce")
        flags = [f for f in p.get("oflags", "").split(",") if f]
        if any(f not in ("post", "fcib", "fciq", "nompp", "viqc") for f in flags):
            raise KrakenError(E_ARGS + ":oflags")
        post = "post" in flags
        if post and otype != "limit":
            raise KrakenError(E_ARGS + ":oflags")
        expire = None
        if tif == "GTD":
            exp = p.get("expiretm", "")
            if not exp.lstrip("+").isdigit():
                raise KrakenError(E_ARGS + ":expiretm")
            expire = now_ns + int(exp[1:]) * 10**9 if exp.startswith("+") else int(exp) * 10**9
        userref = None
        if p.get("userref"):
            try:
                userref = int(p["userref"])
            except ValueError:
                raise KrakenError(E_ARGS + ":userref") from None
            if not -(2**31) <= userref < 2**31:
                raise KrakenError(E_ARGS + ":userref")
        cl = p.get("cl_ord_id") or None
        if cl is not None and (len(cl) > 36 or not cl.isascii()):
            raise KrakenError(E_ARGS + ":cl_ord_id")
        return Order(self._id("O"), side, otype, price, vol, now_ns, tif, post, userref, cl, ",".join(flags),
                     expire)

    def _fee_rate(self, maker: bool) -> Decimal:
        return (self.settings.maker_fee_bps if maker else self.settings.taker_fee_bps) / _BPS

    def _check_funds(self, acct: Account, o: Order) -> None:
        held_quote = held_base = Decimal(0)
        taker = 1 + self._fee_rate(False)
        for x in acct.open_orders():
            if x.side == "buy":
                held_quote += Decimal(x.price * x.remaining).scaleb(-16) * taker
            else:
                held_base += e8_to_decimal(x.remaining)
        if o.side == "buy":
            px = o.price
            if o.ordertype == "market":
                ba = self.book.best_ask()
                if ba is None:
                    raise KrakenError(E_UNAVAILABLE)
                px = ba[0]
            need = Decimal(px * o.volume).scaleb(-16) * taker
            if need > acct.balances[QUOTE] - held_quote:
                raise KrakenError(E_FUNDS)
        elif e8_to_decimal(o.volume) > acct.balances[BASE] - held_base:
            raise KrakenError(E_FUNDS)

    def _execute(self, acct: Account, o: Order, now_ns: int) -> None:
        book = self.book
        if o.ordertype == "market":
            touch = book.best_ask() if o.side == "buy" else book.best_bid()
            if touch is None:
                self._close(o, "canceled", now_ns, "No liquidity")
                return
            self._fill(acct, o, touch[0], o.volume, False, now_ns)
            return
        levels = book.asks if o.side == "buy" else book.bids
        crosses = [(p, q) for p, q in _levels_through(levels, o.price, o.side)]
        if crosses and o.post_only:
            self._close(o, "canceled", now_ns, "Post only order")
            return
        for p, q in crosses:
            if o.remaining == 0:
                break
            self._fill(acct, o, p, min(q, o.remaining), False, now_ns)
        if o.status == "open" and o.tif == "IOC":
            self._close(o, "canceled", now_ns, "User requested")

    def _m_CancelOrder(self, acct: Account, p: dict[str, str], now_ns: int) -> dict[str, Any]:
        ref = p.get("txid") or ""
        cl = p.get("cl_ord_id") or ""
        if not ref and not cl:
            raise KrakenError(E_ARGS + ":txid")
        hits = [o for o in acct.open_orders()
                if (ref and (o.txid == ref or (ref.lstrip("-").isdigit() and o.userref == int(ref))))
                or (cl and o.cl_ord_id == cl)]
        if not hits:
            raise KrakenError(E_UNKNOWN_ORDER)
        for o in hits:
            self._cancel(acct, o, now_ns)
        return {"count": len(hits)}

    def _cancel(self, acct: Account, o: Order, now_ns: int) -> None:
        acct.trading.add(cancel_penalty(now_ns - o.opentm_ns), now_ns)
        self._close(o, "canceled", now_ns, "User requested")

    def _m_CancelAll(self, acct: Account, p: dict[str, str], now_ns: int) -> dict[str, Any]:
        hits = acct.open_orders()
        for o in hits:
            self._cancel(acct, o, now_ns)
        return {"count": len(hits)}

    def _m_CancelAllOrdersAfter(self, acct: Account, p: dict[str, str], now_ns: int) -> dict[str, Any]:
        t = p.get("timeout", "")
        if not (t.isascii() and t.isdigit()) or int(t) > 86400:
            raise KrakenError(E_ARGS + ":timeout")
        secs = int(t)
        acct.dead_man_ns = now_ns + secs * 10**9 if secs else None
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        trig = "0" if not secs else time.strftime(fmt, time.gmtime((now_ns // 10**9) + secs))
        return {"currentTime": time.strftime(fmt, time.gmtime(now_ns // 10**9)), "triggerTime": trig}

    def _m_OpenOrders(self, acct: Account, p: dict[str, str], now_ns: int) -> dict[str, Any]:
        ur = p.get("userref")
        cl = p.get("cl_ord_id")
        show_trades = p.get("trades", "").lower() in ("true", "1")
        out = {o.txid: self._info(o, show_trades) for o in acct.open_orders()
               if (not ur or str(o.userref) == ur) and (not cl or o.cl_ord_id == cl)}
        return {"open": out}

    def _m_ClosedOrders(self, acct: Account, p: dict[str, str], now_ns: int) -> dict[str, Any]:
        """Closed, canceled and expired orders, newest first (Kraken pages by 50), filtered by
        ``userref`` or ``cl_ord_id`` as Kraken allows."""
        ur = p.get("userref")
        cl = p.get("cl_ord_id")
        show_trades = p.get("trades", "").lower() in ("true", "1")
        done = [o for o in acct.orders.values() if o.status != "open"
                and (not ur or str(o.userref) == ur) and (not cl or o.cl_ord_id == cl)]
        done.sort(key=lambda o: o.closetm_ns or 0, reverse=True)
        return {"closed": {o.txid: self._info(o, show_trades) for o in done[:50]}, "count": len(done)}

    def _m_QueryOrders(self, acct: Account, p: dict[str, str], now_ns: int) -> dict[str, Any]:
        ids = [x.strip() for x in p.get("txid", "").split(",") if x.strip()]
        if not ids or len(ids) > 50:
            raise KrakenError(E_ARGS + ":txid")
        show_trades = p.get("trades", "").lower() in ("true", "1")
        out = {}
        for i in ids:
            o = acct.orders.get(i)
            if o is None:
                raise KrakenError(E_INVALID_ORDER)
            out[i] = self._info(o, show_trades)
        return out

    def _info(self, o: Order, trades: bool) -> dict[str, Any]:
        avg = (o.cost / e8_to_decimal(o.filled)).quantize(Decimal("0.00001")) if o.filled else Decimal(0)
        d: dict[str, Any] = {
            "refid": None, "userref": o.userref if o.userref is not None else 0, "status": o.status,
            "opentm": _ts(o.opentm_ns), "starttm": 0,
            "expiretm": _ts(o.expire_ns) if o.expire_ns else 0,
            "descr": {"pair": PAIR_ALT, "type": o.side, "ordertype": o.ordertype,
                      "price": fixed_e8(o.price, 1), "price2": "0", "leverage": "none",
                      "order": o.descr(), "close": ""},
            "vol": fixed_e8(o.volume, 8), "vol_exec": fixed_e8(o.filled * self.settings.vol_exec_factor, 8),
            "cost": _money(o.cost * self.settings.vol_exec_factor, 5),
            "fee": _money(o.fee * self.settings.vol_exec_factor, 5), "price": _money(avg, 5),
            "stopprice": "0.00000", "limitprice": "0.00000", "misc": "", "oflags": o.oflags or "fciq",
        }
        if o.cl_ord_id is not None:
            d["cl_ord_id"] = o.cl_ord_id
        if o.closetm_ns is not None:
            d["closetm"] = _ts(o.closetm_ns)
            d["reason"] = o.reason
        if trades and o.trades:
            d["trades"] = list(o.trades)
        return d

    # -- public answers ------------------------------------------------------------------------------
    def _check_pairs(self, pair: str | None, single: bool = False) -> None:
        if pair is None:
            return
        names = [x.strip() for x in pair.split(",")]
        if (single and len(names) != 1) or any(n.upper() not in PAIR_NAMES for n in names):
            raise KrakenError(E_UNKNOWN_PAIR)

    def _asset_pair(self) -> dict[str, Any]:
        s = self.settings
        return {
            "altname": PAIR_ALT, "wsname": PAIR_WS, "aclass_base": "currency", "base": BASE,
            "aclass_quote": "currency", "quote": QUOTE, "lot": "unit", "cost_decimals": 5,
            "pair_decimals": 1, "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [],
            "leverage_sell": [], "fees": [[0, float(s.taker_fee_bps / 100)]],
            "fees_maker": [[0, float(s.maker_fee_bps / 100)]], "fee_volume_currency": "ZUSD",
            "margin_call": 80, "margin_stop": 40, "ordermin": format_e8(ORDERMIN), "costmin": str(COSTMIN),
            "tick_size": "0.1", "status": "cancel_only" if s.cancel_only else "online",
        }

    def _ticker(self) -> dict[str, Any]:
        bid, ask = kraken_touch(self.book)
        st = self._stats
        vwap = st["notional"] // st["volume"] if st["volume"] else 0
        lt = self.last_trade
        last = [_dec(lt.price, 5), _dec(lt.qty, 8)] if lt else ["0.00000", "0.00000000"]
        vol = fixed_e8(st["volume"], 8)
        return {
            "a": [_dec(ask[0], 5), str(max(1, ask[1] // E8)) if ask[1] else "0", _dec(ask[1], 3)],
            "b": [_dec(bid[0], 5), str(max(1, bid[1] // E8)) if bid[1] else "0", _dec(bid[1], 3)],
            "c": last, "v": [vol, vol], "p": [_dec(vwap, 5)] * 2, "t": [st["count"], st["count"]],
            "l": [_dec(st["low"], 5)] * 2, "h": [_dec(st["high"], 5)] * 2, "o": _dec(st["open"], 5),
        }


def _dec(units: int, places: int) -> str:
    """E8 units as text with exactly ``places`` decimals, truncated (Kraken's display)."""
    return str(e8_to_decimal(units).quantize(Decimal(1).scaleb(-places), ROUND_DOWN))


def kraken_touch(book: L2Book) -> tuple[tuple[int, int], tuple[int, int]]:
    """Best bid/ask on Kraken's 0.1 tick (bid rounded down, ask up), size of every level in that tick."""
    bids, asks = aggregate_levels(book.bids, -1, 1), aggregate_levels(book.asks, 1, 1)
    return (bids[0] if bids else (0, 0)), (asks[0] if asks else (0, 0))


def aggregate_levels(levels: Iterable[tuple[int, int]], direction: int, depth: int) -> list[tuple[int, int]]:
    """Reference levels (best first) summed into Kraken's 0.1 ticks: bids floored, asks ceiled."""
    out: list[tuple[int, int]] = []
    for p, q in levels:
        tick = p - p % PRICE_STEP if direction < 0 else -(-p // PRICE_STEP) * PRICE_STEP
        if out and out[-1][0] == tick:
            out[-1] = (tick, out[-1][1] + q)
        elif len(out) == depth:
            break
        else:
            out.append((tick, q))
    return out


def _levels_through(levels: Iterable[tuple[int, int]], limit: int, side: str) -> list[tuple[int, int]]:
    out = []
    for p, q in levels:
        if (side == "buy" and p > limit) or (side == "sell" and p < limit):
            break
        out.append((p, q))
    return out


def _sign_ok(secret: str, path: str, nonce: str, body: bytes, api_sign: str) -> bool:
    expected = kraken_signature(secret, path, nonce, body)
    return hmac.compare_digest(expected.encode(), api_sign.strip().encode("ascii", "replace"))


def parse_body(body: bytes, content_type: str) -> dict[str, str]:
    """Form or JSON body to text parameters; anything malformed is ``EGeneral:Invalid arguments``."""
    if "json" in content_type:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise KrakenError(E_ARGS + ":body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise KrakenError(E_ARGS + ":body is not a JSON object")
        out = {}
        for k, v in obj.items():
            if isinstance(v, bool):
                out[k] = "true" if v else "false"
            elif isinstance(v, int | str):
                out[k] = str(v)
            elif isinstance(v, float):
                out[k] = repr(v)
            elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                out[k] = ",".join(v)
            else:
                raise KrakenError(f"{E_ARGS}:{k[:30]}")
        return out
    try:
        text = body.decode("utf-8")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                                       errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise KrakenError(E_ARGS + ":malformed form body") from None
    return dict(pairs)
