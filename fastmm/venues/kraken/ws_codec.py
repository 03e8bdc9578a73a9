"""Kraken WebSocket v2 ``book`` channel, sans-I/O: frames in, book and events out.

The second reference price. A ``book`` subscription answers with a snapshot of ``depth`` levels, then
updates (absolute ``qty``; 0 removes a level; a level pushed out of the subscribed depth is not
announced, so the client truncates to the depth itself). Every book message carries a CRC32 checksum of
the top 10 asks then bids, each price and quantity written with the pair's precision and stripped of the
dot and leading zeros: a mismatch means the book diverged, so it is dropped and resubscribed, the way a
Coinbase sequence gap is. Kraken v2 has no sequence number, so messages are counted instead.

Kraken writes prices and sizes as JSON numbers; they become exact 1e-8 integers by rounding (a double
holds every 8-decimal BTC price and size exactly enough for that), and the checksum check proves it.
"""

from __future__ import annotations

import logging
import zlib

import orjson

from fastmm.data.book import L2Book
from fastmm.logs import OnceLogger
from fastmm.units import DataError, fixed_e8, number_e8
from fastmm.venues.events import Heartbeat, Resubscribe, TopChanged
from fastmm.venues.frames import decode_frame
from fastmm.venues.wire_time import parse_timestamp_ns

log = logging.getLogger("fastmm.kraken")

CHECKSUM_LEVELS = 10


def book_checksum(bids: list[tuple[int, int]], asks: list[tuple[int, int]], price_decimals: int,
                  qty_decimals: int) -> int:
    parts = []
    for p, q in asks[:CHECKSUM_LEVELS] + bids[:CHECKSUM_LEVELS]:
        parts.append(fixed_e8(p, price_decimals).replace(".", "").lstrip("0"))
        parts.append(fixed_e8(q, qty_decimals).replace(".", "").lstrip("0"))
    return zlib.crc32("".join(parts).encode())




class KrakenBookFeed:
    venue = "kraken"

    def __init__(self, symbol: str = "BTC/USD", depth: int = 10, price_decimals: int = 1,
                 qty_decimals: int = 8, top_levels: int = 5) -> None:
        self.symbol = symbol
        self.depth = depth
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals
        self.top_levels = top_levels
        self.book = L2Book()
        self.synced = False
        self.last_recv_ns = 0
        self.messages = 0
        self.book_messages = 0
        self.checksum_failures = 0
        self.gaps = 0
        self.bad = OnceLogger(log)
        self._req_id = 0
        self._top: tuple = ()

    def connection_reset(self) -> None:
        self.synced = False
        self.book = L2Book()
        self._top = ()

    def _request(self, method: str) -> bytes:
        self._req_id += 1
        return orjson.dumps({"method": method, "params": {"channel": "book", "symbol": [self.symbol],
                                                          "depth": self.depth}, "req_id": self._req_id})

    def subscriptions(self) -> list[bytes]:
        return [self._request("subscribe")]

    def resubscription(self) -> list[bytes]:
        return [self._request("unsubscribe"), self._request("subscribe")]

    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best levels, best first: the ones the last TopChanged announced (computed once)."""
        return self._top or self.book.top(self.top_levels)

    def on_frame(self, frame: bytes | bytearray | str, t_recv_ns: int) -> list:
        msg = decode_frame(frame, self.bad)
        if msg is None:
            return []
        self.last_recv_ns = t_recv_ns
        self.messages += 1
        channel = msg.get("channel")
        try:
            if channel == "book":
                return self._on_book(msg, t_recv_ns)
            if channel == "heartbeat":
                return [Heartbeat(self.messages, t_recv_ns)]
            if channel == "status" or msg.get("method") in ("pong",):
                return []
            if "method" in msg:
                if msg.get("success") is False:
                    self.bad("request rejected", str(msg.get("error"))[:120])
                return []
            self.bad("unknown channel", str(channel)[:40])
        except (DataError, KeyError, TypeError, ValueError, AttributeError) as e:
            self.bad("bad book message", str(e)[:120])
        return []

    def _on_book(self, msg: dict, t_recv_ns: int) -> list:
        kind = msg["type"]
        out: list = []
        for d in msg["data"]:
            if d["symbol"] != self.symbol:
                continue
            bids = [(number_e8(lv["price"]), number_e8(lv["qty"])) for lv in d.get("bids", ())]
            asks = [(number_e8(lv["price"]), number_e8(lv["qty"])) for lv in d.get("asks", ())]
            if any(p <= 0 or q < 0 for p, q in bids + asks):
                raise ValueError("non-positive price or negative quantity")
            checksum = d["checksum"]
            if kind == "snapshot":
                book = L2Book()
                book.load(sorted(bids, reverse=True), sorted(asks))
                self.book = book
                self.synced = True
            elif kind == "update":
                if not self.synced:
                    self.bad("update before snapshot")
                    continue
                for p, q in bids:
                    self.book.set_level("bid", p, q)
                for p, q in asks:
                    self.book.set_level("ask", p, q)
                self._truncate()
            else:
                raise ValueError(f"book type {kind!r}")
            b, a = self.book.top(CHECKSUM_LEVELS)
            try:
                ours = book_checksum(b, a, self.price_decimals, self.qty_decimals)
            except DataError:   # a level off the pair's precision: the book cannot be trusted
                ours = -1
            if ours != checksum:
                self.checksum_failures += 1
                self.gaps += 1
                log.warning("kraken: book checksum mismatch; dropping the book, resubscribing")
                self.connection_reset()
                return [Resubscribe("book checksum mismatch")]
            self.book_messages += 1
            t_venue = parse_timestamp_ns(d["timestamp"]) if "timestamp" in d else 0
            top = self.book.top(self.top_levels)
            if top != self._top:
                self._top = top
                out.append(TopChanged(t_venue, t_recv_ns, self.book_messages))
        return out

    def _truncate(self) -> None:
        self.book.bids.truncate(self.depth)
        self.book.asks.truncate(self.depth)
