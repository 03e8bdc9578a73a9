"""Kraken WebSocket v2 public ``book`` and ``ticker`` simulator, sans-I/O core (shell: kraken_ws_server).

The reference replay (Binance capture) is shown on Kraken's BTC/USD grid: bids floored and asks ceiled
to the 0.1 tick with sizes summed per tick (:func:`fastmm.sim.kraken.aggregate_levels`). Protocol as
Kraken v2 documents it: a ``status`` message on connect; ``subscribe``/``unsubscribe`` with ``req_id``
echoed and ``time_in``/``time_out``; ``book`` snapshot then updates (``qty`` 0 removes a level; a
level pushed out of the subscribed depth is not announced, the client truncates) with the CRC32 checksum
of the top 10 levels; ``ticker`` on every trade (``event_trigger`` ``trades``, the default) or on a
change of the best bid/offer (``bbo``); ``ping``/``pong``; ``heartbeat`` once a second while subscribed.
Prices and sizes are written as exact JSON numbers (1 and 8 decimals), so a client that parses them as
decimals reproduces the checksum. Time is always the caller's ``now_ns``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from fastmm.data.binance import replay as binance_replay
from fastmm.data.book import L2Book
from fastmm.data.events import BookSnapshot, DepthDiff, Event, Trade
from fastmm.sim.kraken import PRICE_STEP, aggregate_levels
from fastmm.sim.ws_replay import WsConn, WsReplayCore
from fastmm.units import fixed_e8
from fastmm.venues.wire_time import rfc3339_us

log = logging.getLogger(__name__)

DEPTHS = (10, 25, 100, 500, 1000)
CHECKSUM_LEVELS = 10
Levels = list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class KrakenWsSettings:
    symbol: str = "BTC/USD"
    speed: float = 1.0  # 1.0 real time; 0 or inf as fast as possible
    rebase_time: bool = True
    heartbeat_interval_ms: int = 1000
    max_message_bytes: int = 16 * 1024
    high_water: int = 2000  # max-speed flow control
    max_backlog: int = 200_000  # slow consumer is dropped past this


def _px(p: int) -> str:
    return fixed_e8(p, 1)


def _qty(q: int) -> str:
    return fixed_e8(q, 8)


def checksum(bids: Levels, asks: Levels) -> int:
    """CRC32 of the top 10 asks (low to high) then bids (high to low): price and qty text with the dot
    and leading zeros removed (Kraken's v2 book checksum)."""
    parts = []
    for p, q in asks[:CHECKSUM_LEVELS] + bids[:CHECKSUM_LEVELS]:
        parts.append(_px(p).replace(".", "").lstrip("0"))
        parts.append(_qty(q).replace(".", "").lstrip("0"))
    return zlib.crc32("".join(parts).encode())


def _levels_json(levels: Levels) -> str:
    return "[" + ",".join(f'{{"price":{_px(p)},"qty":{_qty(q)}}}' for p, q in levels) + "]"


class _Conn(WsConn):
    __slots__ = ("book_depth", "hb_next", "ticker")

    def __init__(self, cid: int) -> None:
        super().__init__(cid)   # out: message texts
        self.book_depth: int | None = None
        self.ticker: str | None = None  # event trigger "trades" | "bbo"
        self.hb_next = 0


class KrakenWsSim(WsReplayCore[Event, _Conn]):
    """Replay + per-connection v2 protocol state; drive with :meth:`advance`, drain :meth:`data_to_send`."""

    def __init__(self, events: Iterable[Event], settings: KrakenWsSettings | None = None) -> None:
        self.settings = s = settings or KrakenWsSettings()
        super().__init__(binance_replay(events), s, log)
        self.book = L2Book()
        self.have_book = False
        self._views: dict[int, tuple[Levels, Levels]] = {}
        self._bbo: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._stats = {"volume": 0, "notional": 0, "low": 0, "high": 0, "open": 0, "last": 0}

    # -- connections -------------------------------------------------------------------------------
    def open(self, now_ns: int) -> int:
        c = self._add(_Conn)
        status = {"channel": "status", "type": "update", "data": [
            {"version": "2.0.10", "system": "online", "api_version": "v2", "connection_id": c.id}]}
        c.out.append(orjson.dumps(status).decode())
        return c.id

    def data_to_send(self, cid: int, now_ns: int) -> list[str]:
        c = self._conns.get(cid)
        if c is None or c.close_reason is not None:
            return []
        out = list(c.out)
        c.out.clear()
        return out

    # -- input -------------------------------------------------------------------------------------
    def receive(self, cid: int, data: str | bytes, now_ns: int) -> None:
        c = self._conns.get(cid)
        if c is None:
            return
        size = len(data.encode() if isinstance(data, str) else data)
        if size > self.settings.max_message_bytes:
            self._error(c, None, None, "EGeneral:Invalid arguments:message too large", now_ns)
            return
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._error(c, None, None, "EGeneral:Invalid arguments:malformed JSON", now_ns)
            return
        if not isinstance(msg, dict):
            self._error(c, None, None, "EGeneral:Invalid arguments:not an object", now_ns)
            return
        method, req_id = msg.get("method"), msg.get("req_id")
        if req_id is not None and (isinstance(req_id, bool) or not isinstance(req_id, int)):
            self._error(c, method, None, "EGeneral:Invalid arguments:req_id", now_ns)
            return
        if method == "ping":
            self._reply(c, {"method": "pong", "req_id": req_id}, now_ns)
            return
        if method not in ("subscribe", "unsubscribe"):
            self._error(c, method, req_id, "Method not found", now_ns)
            return
        params = msg.get("params")
        if not isinstance(params, dict):
            self._error(c, method, req_id, "EGeneral:Invalid arguments:params", now_ns)
            return
        channel = params.get("channel")
        if channel not in ("book", "ticker"):
            self._error(c, method, req_id, f"Channel {str(channel)[:30]} not found", now_ns)
            return
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols or not all(isinstance(x, str) for x in symbols):
            self._error(c, method, req_id, "EGeneral:Invalid arguments:symbol", now_ns)
            return
        bad = [x for x in symbols if x != self.settings.symbol]
        if bad:
            self._error(c, method, req_id, f"Currency pair not supported {bad[0][:20]}", now_ns, bad[0][:20])
            return
        sym = self.settings.symbol
        if channel == "book":
            depth = params.get("depth", 10)
            if depth not in DEPTHS or isinstance(depth, bool):
                self._error(c, method, req_id, "EGeneral:Invalid arguments:depth", now_ns)
                return
            if method == "subscribe":
                c.book_depth = depth
                snap = params.get("snapshot", True) is not False
                self._ack(c, method, {"channel": "book", "depth": depth, "snapshot": snap, "symbol": sym},
                          req_id, now_ns)
                if self.have_book and snap:
                    c.out.append(self._book_msg("snapshot", depth, *self._view(depth), None))
            else:
                c.book_depth = None
                self._ack(c, method, {"channel": "book", "depth": depth, "symbol": sym}, req_id, now_ns)
        else:
            trigger = params.get("event_trigger", "trades")
            if trigger not in ("trades", "bbo"):
                self._error(c, method, req_id, "EGeneral:Invalid arguments:event_trigger", now_ns)
                return
            if method == "subscribe":
                c.ticker = trigger
                self._ack(c, method, {"channel": "ticker", "event_trigger": trigger, "snapshot": True,
                                      "symbol": sym}, req_id, now_ns)
                if self.have_book:
                    c.out.append(self._ticker_msg("snapshot"))
            else:
                c.ticker = None
                self._ack(c, method, {"channel": "ticker", "symbol": sym}, req_id, now_ns)
        if c.hb_next == 0:
            c.hb_next = now_ns + self.settings.heartbeat_interval_ms * 1_000_000

    def _ack(self, c: _Conn, method: str, result: dict[str, Any], req_id: int | None, now_ns: int) -> None:
        self._reply(c, {"method": method, "result": result, "success": True, "req_id": req_id}, now_ns)

    def _reply(self, c: _Conn, body: dict[str, Any], now_ns: int) -> None:
        if body.get("req_id") is None:
            body.pop("req_id", None)
        t = rfc3339_us(now_ns)
        body["time_in"] = body["time_out"] = t
        c.out.append(orjson.dumps(body).decode())

    def _error(self, c: _Conn, method: object, req_id: int | None, text: str, now_ns: int,
               symbol: str | None = None) -> None:
        self.bad(text.split(":")[0] if text.startswith("E") else text.split(" ")[0], text)
        body: dict[str, Any] = {"error": text, "success": False, "req_id": req_id}
        if isinstance(method, str):
            body["method"] = method[:30]
        if symbol is not None:
            body["symbol"] = symbol
        self._reply(c, body, now_ns)

    # -- replay ------------------------------------------------------------------------------------
    def advance(self, now_ns: int, budget: int = 1000) -> bool:
        """Queue heartbeats and the replay events due by ``now_ns`` (at most ``budget``); True if more
        are due already."""
        step = self.settings.heartbeat_interval_ms * 1_000_000
        for c in self._conns.values():
            if (c.book_depth or c.ticker) and c.hb_next and c.hb_next <= now_ns:
                c.out.append('{"channel":"heartbeat"}')
                c.hb_next = max(c.hb_next + step, now_ns + 1)
        return self._replay_due(now_ns, budget, self._apply)

    def next_wakeup_ns(self) -> int | None:
        times = [c.hb_next for c in self._conns.values() if (c.book_depth or c.ticker) and c.hb_next]
        return self._replay_wakeup(times)

    def _view(self, depth: int) -> tuple[Levels, Levels]:
        v = self._views.get(depth)
        if v is None:
            v = (aggregate_levels(self.book.bids, -1, depth), aggregate_levels(self.book.asks, 1, depth))
            self._views[depth] = v
        return v

    def _apply(self, ev: Event) -> None:
        if isinstance(ev, DepthDiff):
            self.book.apply_diff(ev)
            if self.have_book:
                self._book_changed(ev.exch_ms * 1_000_000 + self._offset)
        elif isinstance(ev, BookSnapshot):
            self.book.apply_snapshot(ev)
            self.have_book = True
            self._views.clear()
            for c in self._conns.values():
                if c.book_depth:
                    self._queue(c, self._book_msg("snapshot", c.book_depth, *self._view(c.book_depth), None))
                if c.ticker:
                    self._queue(c, self._ticker_msg("snapshot"))
        elif isinstance(ev, Trade):
            st = self._stats
            st["volume"] += ev.qty
            st["notional"] += ev.qty * ev.price
            st["low"] = min(st["low"] or ev.price, ev.price)
            st["high"] = max(st["high"], ev.price)
            st["open"] = st["open"] or ev.price
            st["last"] = ev.price
            if self.have_book:
                msg = None
                for c in self._conns.values():
                    if c.ticker == "trades":
                        msg = msg or self._ticker_msg("update")
                        self._queue(c, msg)

    def _book_changed(self, ts_ns: int) -> None:
        depths = {c.book_depth for c in self._conns.values() if c.book_depth}
        old_views, self._views = self._views, {}
        for depth in depths:
            old = old_views.get(depth)
            new = self._view(depth)
            if old is None or old == new:
                continue
            bids = _changes(old[0], new[0])
            asks = _changes(old[1], new[1])
            msg = self._book_msg("update", depth, bids, asks, ts_ns, new)
            for c in self._conns.values():
                if c.book_depth == depth:
                    self._queue(c, msg)
        bbo = kraken_bbo(self._view(10))
        if bbo != self._bbo:
            self._bbo = bbo
            ticker: str | None = None      # made once, for the first subscriber
            for c in self._conns.values():
                if c.ticker == "bbo":
                    ticker = ticker or self._ticker_msg("update")
                    self._queue(c, ticker)

    def _queue(self, c: _Conn, msg: str) -> None:
        self._enqueue(c, msg)

    def _book_msg(self, kind: str, depth: int, bids: Levels, asks: Levels, ts_ns: int | None,
                  full: tuple[Levels, Levels] | None = None) -> str:
        fb, fa = full if full is not None else (bids, asks)
        cs = checksum(fb, fa)
        ts = "" if ts_ns is None else f',"timestamp":"{rfc3339_us(ts_ns)}"'
        return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{self.settings.symbol}",'
                f'"bids":{_levels_json(bids)},"asks":{_levels_json(asks)},"checksum":{cs}{ts}}}]}}')

    def _ticker_msg(self, kind: str) -> str:
        (bid, bid_q), (ask, ask_q) = kraken_bbo(self._view(10))
        st = self._stats
        vwap = st["notional"] // st["volume"] if st["volume"] else 0
        last, opn = st["last"], st["open"]
        change = last - opn
        pct = (Decimal(change) * 100 / Decimal(opn)).quantize(Decimal("0.01")) if opn else Decimal(0)
        return (f'{{"channel":"ticker","type":"{kind}","data":[{{"symbol":"{self.settings.symbol}",'
                f'"bid":{_px(bid)},"bid_qty":{_qty(bid_q)},"ask":{_px(ask)},"ask_qty":{_qty(ask_q)},'
                f'"last":{_trunc(last)},"volume":{_qty(st["volume"])},"vwap":{_trunc(vwap)},'
                f'"low":{_trunc(st["low"])},"high":{_trunc(st["high"])},"change":{_trunc(change)},'
                f'"change_pct":{pct}}}]}}')


def _trunc(p: int) -> str:
    """A price on the 0.1 grid, truncated toward zero."""
    return _px(p - p % PRICE_STEP if p >= 0 else -((-p) - (-p) % PRICE_STEP))


def kraken_bbo(view: tuple[Levels, Levels]) -> tuple[tuple[int, int], tuple[int, int]]:
    bids, asks = view
    return (bids[0] if bids else (0, 0)), (asks[0] if asks else (0, 0))


def _changes(old: Levels, new: Levels) -> Levels:
    """Levels to send so that a client holding ``old`` (truncated to depth) ends with ``new``."""
    before = dict(old)
    after = dict(new)
    out = [(p, q) for p, q in new if before.get(p) != q]
    out += [(p, 0) for p in before if p not in after]
    return out
