"""Coinbase Advanced Trade market data, sans-I/O: frames in, book and events out.

:class:`CoinbaseFeed` is fed each WebSocket text frame with its local receive time. It checks the
envelope's ``sequence_num`` (one more per message on a connection), keeps the ``l2_data`` book of one
product (snapshot, then absolute sizes, "0" removes a level), and answers with what the shell must do:
publish a new top of book, resubscribe after a gap, or nothing. It never raises on bad input: a frame
that cannot be used is dropped, counted by reason and logged once, and never moves the published price.

Rules (venue facts, section 2): a sequence gap drops the book and resubscribes ``level2``; updates
before a snapshot are ignored; a second snapshot replaces the book; a crossed book is published with
the crossed flag so the aggregator ignores it; a negative or non-numeric size is rejected, and the whole
message with it (applying half a message would publish a book that never existed).

The backtest reads recorded frames through this same codec (:mod:`fastmm.backtest.readers`): it hands
each decoded message to :meth:`CoinbaseFeed.on_message`, takes every level change through a
``level_sink``, and swaps the forgiving ``bad`` counter for one that raises (a backtest on silently
dropped data is worse than none). The reasons it tolerates are the named constants below.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from fastmm.data import book as l2
from fastmm.data.book import L2Book, LevelChange
from fastmm.logs import OnceLogger
from fastmm.units import DataError, parse_e8
from fastmm.venues.events import Heartbeat, Resubscribe, TopChanged
from fastmm.venues.frames import decode_frame
from fastmm.venues.wire_time import parse_timestamp_ns

log = logging.getLogger("fastmm.coinbase")

CHANNELS = ("level2", "heartbeats", "market_trades")

# reasons given to ``bad`` that a reader of recorded frames may tolerate, by name rather than by text
SEQUENCE_BACKWARDS = "sequence_num went backwards"
UPDATE_BEFORE_SNAPSHOT = "update before snapshot"
UNKNOWN_CHANNEL = "unknown channel"
VENUE_ERROR = "venue error"

LevelSink = Callable[[str, list[LevelChange]], None]    # ("snapshot" or "update", the event's changes)


def subscribe_message(product_id: str, channel: str, unsubscribe: bool = False) -> bytes:
    """One channel per message, as the venue facts say (``level2`` answers on ``l2_data``)."""
    return orjson.dumps({"type": "unsubscribe" if unsubscribe else "subscribe",
                         "product_ids": [product_id], "channel": channel})


@dataclass(frozen=True, slots=True)
class MarketTrade:
    t_venue_ns: int
    t_recv_ns: int
    price_e8: int
    size_e8: int
    maker_side: str   # "BUY" or "SELL": Coinbase's side is the maker's
    history: bool = False   # from the snapshot event of a subscription: trades from before it


FeedEvent = TopChanged | Resubscribe | MarketTrade | Heartbeat


class CoinbaseFeed:
    """The protocol state of one connection for one product."""

    venue = "coinbase"

    def __init__(self, product_id: str = "BTC-USD", depth: int = 5, *, level_sink: LevelSink | None = None,
                 bad: OnceLogger | None = None) -> None:
        self.product_id = product_id
        self.depth = depth
        self.book = L2Book()
        self.synced = False          # a snapshot has been applied since the last gap
        self.expected_seq: int | None = None
        self.last_recv_ns = 0        # last frame of any channel (heartbeats included)
        self.last_book_ns = 0        # last applied l2_data message
        self.t_venue_ns = 0
        self.sequence_num = 0
        self.messages = 0
        self.gaps = 0
        self.duplicates = 0          # frames whose sequence_num went backwards (a resend): dropped
        self.bad = bad if bad is not None else OnceLogger(log)
        # every applied l2_data event's level changes, after the book has them (a recording's reader);
        # with it the checking parser runs in Python, without it the compiled twin applies the updates
        self.level_sink = level_sink
        self._top: tuple = ()

    def connection_reset(self) -> None:
        """A new connection: sequence numbers start again, the book must come again as a snapshot."""
        self.expected_seq = None
        self.synced = False
        self.book = L2Book()
        self._top = ()

    def subscriptions(self) -> list[bytes]:
        return [subscribe_message(self.product_id, ch) for ch in CHANNELS]

    def resubscription(self) -> list[bytes]:
        return [subscribe_message(self.product_id, "level2", unsubscribe=True),
                subscribe_message(self.product_id, "level2")]

    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best levels, best first: the ones the last TopChanged announced (computed once)."""
        return self._top or self.book.top(self.depth)

    # -- input ------------------------------------------------------------------------------------
    def on_frame(self, frame: bytes | bytearray | str, t_recv_ns: int) -> list[FeedEvent]:
        msg = decode_frame(frame, self.bad)
        if msg is None:
            return []
        return self.on_message(msg, t_recv_ns)

    def on_message(self, msg: dict, t_recv_ns: int) -> list[FeedEvent]:
        """One decoded frame (a JSON object): the sequence check, then its channel."""
        self.last_recv_ns = t_recv_ns
        self.messages += 1
        out: list[FeedEvent] = []
        seq = msg.get("sequence_num")
        if isinstance(seq, int) and not isinstance(seq, bool):
            if self.expected_seq is not None and seq != self.expected_seq:
                if seq < self.expected_seq:
                    self.duplicates += 1
                    self.bad(SEQUENCE_BACKWARDS, f"{seq} after {self.expected_seq - 1}")
                    return []
                self.gaps += 1
                missing = seq - self.expected_seq
                log.warning("coinbase: sequence gap: expected %d, got %d; dropping the book, resubscribing",
                            self.expected_seq, seq)
                self.expected_seq = seq + 1
                self._drop_book()
                return [Resubscribe(f"sequence gap: {missing} message(s) lost before {seq}")]
            self.expected_seq = seq + 1
            self.sequence_num = seq
        channel = msg.get("channel")
        try:
            if channel == "l2_data":
                ev = self._on_l2(msg, t_recv_ns)
                if ev is not None:
                    out.append(ev)
            elif channel == "market_trades":
                out.extend(self._on_trades(msg, t_recv_ns))
            elif channel == "heartbeats":
                out.extend(self._on_heartbeats(msg, t_recv_ns))
            elif channel == "subscriptions":
                pass
            elif msg.get("type") == "error":
                self.bad(VENUE_ERROR, str(msg.get("message"))[:120])
            else:
                self.bad(UNKNOWN_CHANNEL, str(channel)[:40])
        except (DataError, KeyError, TypeError, ValueError, AttributeError) as e:
            self.bad(f"bad {channel} message", str(e)[:120])
        return out

    def _drop_book(self) -> None:
        self.synced = False
        self.book = L2Book()
        self._top = ()

    def _on_l2(self, msg: dict, t_recv_ns: int) -> TopChanged | Resubscribe | None:
        events = msg["events"]
        if not isinstance(events, list):
            raise TypeError("events is not a list")
        t_venue = parse_timestamp_ns(msg["timestamp"]) if "timestamp" in msg else 0
        for ev in events:
            if ev.get("product_id", self.product_id) != self.product_id:
                continue
            kind = ev.get("type")
            updates = ev["updates"]
            if not isinstance(updates, list):
                raise TypeError("updates is not a list")
            if kind == "snapshot":
                book = L2Book()
                changes = self._apply(updates, book)
                self.book = book
                self.synced = True
            elif kind == "update":
                if not self.synced:
                    self.bad(UPDATE_BEFORE_SNAPSHOT)
                    continue
                changes = self._apply(updates, self.book)
            else:
                self.bad("unknown l2_data event type", str(kind)[:40])
                continue
            if changes is not None and self.level_sink is not None:
                self.level_sink(kind, changes)
        if not self.synced:
            return None
        self.last_book_ns = t_recv_ns
        self.t_venue_ns = t_venue
        top = self.book.top(self.depth)
        if top == self._top:
            return None
        self._top = top
        return TopChanged(t_venue, t_recv_ns, self.sequence_num)

    def _apply(self, updates: list, book: L2Book) -> list[LevelChange] | None:
        """Apply one event's updates to ``book`` (all or none); the changes when a sink wants them."""
        if self.level_sink is None:
            l2.apply_updates(updates, book, _PRICES, _SIZES, _cached)   # the book's loop (compiled twin)
            return None
        changes = l2.parse_updates(updates, _PRICES, _SIZES, _cached)
        bids, asks = book.bids.set, book.asks.set
        for is_bid, price, size in changes:
            (bids if is_bid else asks)(price, size)
        return changes

    def _on_trades(self, msg: dict, t_recv_ns: int) -> list[FeedEvent]:
        out: list[FeedEvent] = []
        for ev in msg["events"]:
            history = ev.get("type") == "snapshot"
            for tr in ev.get("trades", ()):
                if tr.get("product_id", self.product_id) != self.product_id:
                    continue
                side = tr["side"]
                if side not in ("BUY", "SELL"):
                    raise ValueError(f"trade side {side!r}")
                price, size = parse_e8(tr["price"]), parse_e8(tr["size"])
                if price <= 0 or size <= 0:
                    raise ValueError(f"trade price {tr['price']!r} size {tr['size']!r}")
                out.append(MarketTrade(parse_timestamp_ns(tr["time"]), t_recv_ns, price, size, side, history))
        return out

    def _on_heartbeats(self, msg: dict, t_recv_ns: int) -> list[FeedEvent]:
        out: list[FeedEvent] = []
        for ev in msg["events"]:
            out.append(Heartbeat(int(ev["heartbeat_counter"]), t_recv_ns))
        return out


_PRICES: dict[str, int] = {}   # price text -> 1e-8 units (validated > 0): a book's prices repeat
_SIZES: dict[str, int] = {}    # size text -> 1e-8 units (validated >= 0): so do many sizes ("0")
_CACHE_MAX = 200_000
_TOO_LARGE = 1 << 62           # no real price or size comes near; keeps every value an int64


def _cached(cache: dict[str, int], text: str, positive: bool) -> int:
    """Parse, check and remember one price or size text (only valid values are remembered)."""
    if not isinstance(text, str):
        raise TypeError(f"{text!r} is not a decimal string")
    value = parse_e8(text)
    if value < 0 or (positive and value == 0) or value >= _TOO_LARGE:
        raise ValueError(f"{'price_level' if positive else 'new_quantity'} {text!r}")
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[text] = value
    return value
