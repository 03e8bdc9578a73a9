"""Coinbase Advanced Trade market-data simulator, sans-I/O core (the websockets shell is coinbase_server).

It replays either the Binance capture (book -> ``l2_data`` snapshot and updates, trades ->
``market_trades``) or recorded Advanced Trade frames, and speaks the Advanced Trade protocol per
connection (venue facts section 2): one channel per subscribe message (``level2``, ``market_trades``,
``heartbeats``), a ``subscriptions`` answer, ``sequence_num`` increasing by one per message on the
connection over every channel, prices and sizes as strings, ``market_trades`` side = the maker's side.

The core takes the caller's time as ``now_ns`` everywhere; the shell only moves text. Faults
(:class:`CoinbaseFaults`) are applied at the wire position of a sequence number, so the client sees
exactly what a real loss, stall or drop looks like. Bad input gets ``{"type":"error","message":...}``
(logged once per reason) and never closes the connection.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from fastmm.data.binance import replay as binance_replay
from fastmm.data.book import L2Book
from fastmm.data.coinbase_frames import RawFrame
from fastmm.data.events import BookSnapshot, DepthDiff, Event, Level, Trade
from fastmm.logs import OnceLogger
from fastmm.sim.ws_replay import WsConn, WsReplayCore
from fastmm.units import DataError, format_e8, parse_e8
from fastmm.venues.wire_time import go_time_ns, parse_rfc3339_ns, rfc3339_ns

log = logging.getLogger(__name__)

CHANNELS = ("level2", "market_trades", "heartbeats")
_CHANNEL_OF_SUB = {"level2": "l2_data", "market_trades": "market_trades", "heartbeats": "heartbeats"}
_EPOCH_TEXT = "1970-01-01T00:00:00Z"


# --------------------------------------------------------------------------------------------------
# Feed events: what the replay emits, independent of the source
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CbBook:
    """A whole book (the source's snapshot); subscribers get an ``l2_data`` snapshot of it."""

    recv_ns: int
    ts_ns: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class CbUpdate:
    """Level changes ``(side "bid"|"offer", price E8, new size E8)``; ``raw`` keeps recorded events."""

    recv_ns: int
    ts_ns: int
    event_ns: int
    changes: tuple[tuple[str, int, int], ...]
    raw: list | None = None


@dataclass(frozen=True, slots=True)
class CbTrade:
    trade_id: str
    price: int
    size: int
    side: str  # maker's side, "BUY" | "SELL"
    time_ns: int


@dataclass(frozen=True, slots=True)
class CbTrades:
    recv_ns: int
    ts_ns: int
    trades: tuple[CbTrade, ...]
    raw: list | None = None
    snapshot: bool = False  # a recorded snapshot: history for new subscribers, not broadcast


FeedEvent = CbBook | CbUpdate | CbTrades


def from_binance(events: Iterable[Event] | None = None) -> Iterator[FeedEvent]:
    """The Binance capture as Coinbase feed events (diffs in book order; book tickers are not sent)."""
    for ev in binance_replay(events):
        if isinstance(ev, DepthDiff):
            changes = tuple(("bid", p, q) for p, q in ev.bids) + tuple(("offer", p, q) for p, q in ev.asks)
            if changes:
                yield CbUpdate(ev.recv_ns, ev.recv_ns, ev.exch_ms * 1_000_000, changes)
        elif isinstance(ev, Trade):
            side = "BUY" if ev.buyer_is_maker else "SELL"
            t = CbTrade(str(ev.trade_id), ev.price, ev.qty, side, ev.trade_ms * 1_000_000)
            yield CbTrades(ev.recv_ns, ev.recv_ns, (t,))
        elif isinstance(ev, BookSnapshot):
            yield CbBook(ev.recv_ns, ev.recv_ns, ev.bids, ev.asks)


def _frame_updates(updates: object) -> tuple[tuple[str, int, int], ...]:
    if not isinstance(updates, list):
        raise DataError("updates is not a list")
    out = []
    for u in updates:
        side = u.get("side") if isinstance(u, dict) else None
        if side not in ("bid", "offer"):
            raise DataError(f"bad update side {side!r:.20}")
        out.append((side, parse_e8(u.get("price_level")), parse_e8(u.get("new_quantity"))))
    return tuple(out)


def from_frames(frames: Iterable[RawFrame], product_id: str = "BTC-USD",
                bad: OnceLogger | None = None) -> Iterator[FeedEvent]:
    """Recorded Advanced Trade frames as feed events. The sim makes its own ``heartbeats`` and
    ``subscriptions``, so recorded ones are skipped; an unreadable frame is skipped and logged once."""
    bad = bad or OnceLogger(log)
    for fr in frames:
        try:
            msg = orjson.loads(fr.text)
            if not isinstance(msg, dict):
                raise DataError("frame is not an object")
            channel = msg.get("channel")
            if channel not in ("l2_data", "market_trades"):
                continue
            ts = parse_rfc3339_ns(msg.get("timestamp", "")) or fr.t_ns
            events = msg.get("events")
            if not isinstance(events, list):
                raise DataError("events is not a list")
            for ev in events:
                if not isinstance(ev, dict):
                    raise DataError("event is not an object")
                kind = ev.get("type")
                if channel == "l2_data":
                    if ev.get("product_id", product_id) != product_id:
                        continue
                    ch = _frame_updates(ev.get("updates"))
                    if kind == "snapshot":
                        bids = tuple((p, q) for s, p, q in ch if s == "bid" and q)
                        asks = tuple((p, q) for s, p, q in ch if s == "offer" and q)
                        yield CbBook(fr.t_ns, ts, bids, asks)
                    elif ch:
                        et = parse_rfc3339_ns(ev["updates"][0].get("event_time", "")) or ts
                        yield CbUpdate(fr.t_ns, ts, et, ch, raw=[ev])
                else:
                    trades = ev.get("trades")
                    if not isinstance(trades, list):
                        raise DataError("trades is not a list")
                    tt = []
                    for t in trades:
                        if not isinstance(t, dict) or t.get("product_id", product_id) != product_id:
                            continue
                        tt.append(CbTrade(str(t.get("trade_id", "")), parse_e8(t.get("price", "")),
                                          parse_e8(t.get("size", "")), str(t.get("side", "")),
                                          parse_rfc3339_ns(t.get("time", "")) or ts))
                    if tt:
                        yield CbTrades(fr.t_ns, ts, tuple(tt), raw=[ev], snapshot=kind == "snapshot")
        except (orjson.JSONDecodeError, DataError, AttributeError, TypeError, KeyError, IndexError) as e:
            bad("recorded frame unreadable", f"{e!s:.120}")


# --------------------------------------------------------------------------------------------------
# Settings and faults
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CoinbaseFaults:
    """Faults at wire positions; they hit the first ``connections`` connections (0 = every one)."""

    drop_seq: int | None = None  # the message with this sequence_num is never sent (a gap)
    stall_seq: int | None = None  # hold this message and everything after it for stall_ms
    stall_ms: int = 0
    disconnect_seq: int | None = None  # drop the TCP connection instead of sending this message
    heartbeats_stop_after: int | None = None  # send this many heartbeats, then none
    connections: int = 1


@dataclass(frozen=True, slots=True)
class CoinbaseSettings:
    product_id: str = "BTC-USD"
    speed: float = 1.0  # 1.0 real time; 0 or inf as fast as possible
    heartbeat_interval_ms: int = 1000
    max_message_bytes: int = 64 * 1024  # larger client messages get an error
    trades_snapshot_size: int = 50  # recent trades in a market_trades snapshot
    rebase_time: bool = True  # shift recorded times so the replay start is "now"
    high_water: int = 2000  # max-speed flow control: pause the replay at this backlog
    max_backlog: int = 200_000  # a connection this far behind is dropped (slow consumer)
    faults: CoinbaseFaults = field(default_factory=CoinbaseFaults)


# --------------------------------------------------------------------------------------------------
# The core
# --------------------------------------------------------------------------------------------------
class _Conn(WsConn):
    __slots__ = ("faulty", "hb_count", "hb_next", "seq", "stall_done", "stall_until", "subs")

    def __init__(self, cid: int, faulty: bool) -> None:
        super().__init__(cid)   # out: (channel, ts_ns, events json) | raw text
        self.seq = 0
        self.subs: dict[str, list[str]] = {}
        self.hb_count = 0
        self.hb_next = 0
        self.faulty = faulty
        self.stall_until = 0
        self.stall_done = False


def error_text(message: str) -> str:
    return orjson.dumps({"type": "error", "message": message}).decode()


class CoinbaseSim(WsReplayCore[FeedEvent, _Conn]):
    """Replay + per-connection protocol state. Drive with :meth:`advance`; drain with :meth:`data_to_send`."""

    def __init__(self, source: Iterable[FeedEvent], settings: CoinbaseSettings | None = None) -> None:
        self.settings = s = settings or CoinbaseSettings()
        super().__init__(source, s, log)
        self.book = L2Book()
        self._have_book = False
        self._recent: deque[CbTrade] = deque(maxlen=max(1, s.trades_snapshot_size))
        self._t_created: int | None = None
        self.emitted = 0

    # -- connections -------------------------------------------------------------------------------
    def open(self, now_ns: int) -> int:
        if self._t_created is None:
            self._t_created = now_ns
        n = self.settings.faults.connections
        return self._add(_Conn, n == 0 or self._next_id <= n).id

    # -- replay control ----------------------------------------------------------------------------
    def advance(self, now_ns: int, budget: int = 1000) -> bool:
        """Queue heartbeats and the replay events due by ``now_ns`` (at most ``budget``).
        True when more are due already (call again after draining)."""
        self._heartbeats(now_ns)
        return self._replay_due(now_ns, budget, self._emit)

    def next_wakeup_ns(self) -> int | None:
        """The earliest time at which :meth:`advance` or :meth:`data_to_send` has new work."""
        times = [c.hb_next for c in self._conns.values() if "heartbeats" in c.subs and self._hb_on(c)]
        times += [c.stall_until for c in self._conns.values() if c.stall_until and c.out]
        return self._replay_wakeup(times)

    # -- input -------------------------------------------------------------------------------------
    def receive(self, cid: int, data: str | bytes, now_ns: int) -> None:
        c = self._conns.get(cid)
        if c is None:
            return
        size = len(data.encode() if isinstance(data, str) else data)
        if size > self.settings.max_message_bytes:
            self._reject(c, "message too large", f"{size} bytes over {self.settings.max_message_bytes}")
            return
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._reject(c, "malformed JSON")
            return
        if not isinstance(msg, dict):
            self._reject(c, "message is not a JSON object")
            return
        kind = msg.get("type")
        if kind not in ("subscribe", "unsubscribe"):
            self._reject(c, f"unknown message type {str(kind)[:40]!r}", "want subscribe or unsubscribe")
            return
        channel = msg.get("channel")
        if not isinstance(channel, str):
            self._reject(c, f"Failed to {kind}: channel is required (one channel per message)")
            return
        if channel not in CHANNELS:
            self._reject(c, f"Failed to {kind}: unknown channel {channel[:40]!r}")
            return
        products = msg.get("product_ids", [])
        if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
            self._reject(c, f"Failed to {kind}: product_ids must be a list of strings")
            return
        if channel != "heartbeats" and not products:
            self._reject(c, f"Failed to {kind}: product_ids is required for {channel}")
            return
        unknown = [p for p in products if p != self.settings.product_id]
        if unknown:
            self._reject(c, f"Failed to {kind}: {unknown[0][:40]} is not a valid product")
            return
        if kind == "subscribe":
            self._subscribe(c, channel, products, now_ns)
        else:
            c.subs.pop(channel, None)
            self._queue(c, "subscriptions", now_ns, self._subs_events(c))

    def _reject(self, c: _Conn, message: str, detail: str = "") -> None:
        self.bad(message.split(":")[0], detail or message)
        c.out.append(error_text(message))

    def _subscribe(self, c: _Conn, channel: str, products: list[str], now_ns: int) -> None:
        new = channel not in c.subs
        c.subs[channel] = products or [self.settings.product_id]
        self._queue(c, "subscriptions", now_ns, self._subs_events(c))
        if not new:
            return
        ts = now_ns
        if channel == "level2" and self._have_book:
            self._queue(c, "l2_data", ts, self._snapshot_events())
        elif channel == "market_trades":
            trades = [self._trade_obj(t) for t in reversed(self._recent)]
            events = orjson.dumps([{"type": "snapshot", "trades": trades}]).decode()
            self._queue(c, "market_trades", ts, events)
        elif channel == "heartbeats":
            c.hb_next = now_ns

    def _subs_events(self, c: _Conn) -> str:
        return orjson.dumps([{"subscriptions": dict(c.subs)}]).decode()

    # -- output ------------------------------------------------------------------------------------
    def _queue(self, c: _Conn, channel: str, ts_ns: int, events_json: str) -> None:
        self._enqueue(c, (channel, ts_ns, events_json))

    def _broadcast(self, sub: str, ts_ns: int, events_json: str) -> None:
        channel = _CHANNEL_OF_SUB[sub]
        for c in self._conns.values():
            if sub in c.subs:
                self._queue(c, channel, ts_ns, events_json)

    def data_to_send(self, cid: int, now_ns: int) -> list[str]:
        """The frames to write now, with sequence numbers assigned and faults applied."""
        c = self._conns.get(cid)
        if c is None or c.close_reason is not None:
            return []
        if c.stall_until:
            if now_ns < c.stall_until:
                return []
            c.stall_until = 0
        f = self.settings.faults
        out: list[str] = []
        q = c.out
        while q:
            item = q[0]
            if isinstance(item, str):  # error messages carry no sequence number
                out.append(q.popleft())
                continue
            seq = c.seq
            if c.faulty:
                if seq == f.disconnect_seq:
                    c.close_reason = f"fault: disconnect at sequence_num {seq}"
                    return out
                if seq == f.stall_seq and not c.stall_done and f.stall_ms > 0:
                    c.stall_done = True
                    c.stall_until = now_ns + f.stall_ms * 1_000_000
                    return out
                if seq == f.drop_seq:
                    q.popleft()
                    c.seq += 1
                    continue
            channel, ts, events = q.popleft()
            out.append(f'{{"channel":"{channel}","client_id":"","timestamp":"{rfc3339_ns(ts)}",'
                       f'"sequence_num":{seq},"events":{events}}}')
            c.seq = seq + 1
        return out

    # -- heartbeats --------------------------------------------------------------------------------
    def _hb_on(self, c: _Conn) -> bool:
        stop = self.settings.faults.heartbeats_stop_after
        return not (c.faulty and stop is not None and c.hb_count >= stop)

    def _heartbeats(self, now_ns: int) -> None:
        step = self.settings.heartbeat_interval_ms * 1_000_000
        t0 = self._t_created or 0
        for c in self._conns.values():
            if "heartbeats" not in c.subs:
                continue
            while c.hb_next <= now_ns and self._hb_on(c):
                c.hb_count += 1
                ev = [{"current_time": go_time_ns(now_ns, now_ns - t0), "heartbeat_counter": str(c.hb_count)}]
                self._queue(c, "heartbeats", now_ns, orjson.dumps(ev).decode())
                c.hb_next += step
                if c.hb_next <= now_ns:  # far behind (a stalled loop): no burst of heartbeats
                    c.hb_next = now_ns + step

    # -- replay events -----------------------------------------------------------------------------
    def _emit(self, ev: FeedEvent) -> None:
        self.emitted += 1
        off = self._offset
        if isinstance(ev, CbUpdate):
            book = self.book
            for side, p, q in ev.changes:
                book.set_level("bid" if side == "bid" else "ask", p, q)
            if not self._have_book:
                return
            if ev.raw is not None and off == 0:
                events = orjson.dumps(ev.raw).decode()
            else:
                et = rfc3339_ns(ev.event_ns + off)
                ups = [_level(s, et, p, q) for s, p, q in ev.changes]
                events = orjson.dumps([{"type": "update", "product_id": self.settings.product_id,
                                        "updates": ups}]).decode()
            self._broadcast("level2", ev.ts_ns + off, events)
        elif isinstance(ev, CbTrades):
            self._recent.extend(ev.trades)
            if ev.snapshot:
                return
            if ev.raw is not None and off == 0:
                events = orjson.dumps(ev.raw).decode()
            else:
                events = orjson.dumps([{"type": "update", "trades": [self._trade_obj(t) for t in ev.trades]}]
                                      ).decode()
            self._broadcast("market_trades", ev.ts_ns + off, events)
        else:
            self.book.load(ev.bids, ev.asks)
            self._have_book = True
            if any("level2" in c.subs for c in self._conns.values()):
                self._broadcast("level2", ev.ts_ns + off, self._snapshot_events())

    def _trade_obj(self, t: CbTrade) -> dict[str, str]:
        return {"trade_id": t.trade_id, "product_id": self.settings.product_id, "price": format_e8(t.price),
                "size": format_e8(t.size), "side": t.side, "time": rfc3339_ns(t.time_ns + self._offset)}

    def _snapshot_events(self) -> str:
        ups = [_level("bid", _EPOCH_TEXT, p, q) for p, q in self.book.bids]
        ups += [_level("offer", _EPOCH_TEXT, p, q) for p, q in self.book.asks]
        snap = {"type": "snapshot", "product_id": self.settings.product_id, "updates": ups}
        return orjson.dumps([snap]).decode()


def _level(side: str, event_time: str, price: int, qty: int) -> dict[str, str]:
    return {"side": side, "event_time": event_time, "price_level": format_e8(price),
            "new_quantity": format_e8(qty)}
