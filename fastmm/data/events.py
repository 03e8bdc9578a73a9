"""Typed market-data events of a recorded capture, in the order they were received.

Every event carries ``recv_ns`` (the local receive time of the capture, ns since epoch); events the
exchange stamped also carry ``exch_ms``. The capture's local clock runs about 1.27 s behind the
exchange's, so the two are kept apart and never mixed. Prices and sizes are integer E8 units.
"""

from __future__ import annotations

from dataclasses import dataclass

Level = tuple[int, int]  # (price E8, size E8); size 0 removes the level in a diff


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A full depth snapshot (REST); diffs with ``last_id > last_update_id`` follow it."""

    recv_ns: int
    last_update_id: int
    bids: tuple[Level, ...]  # best first
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class DepthDiff:
    """Absolute new sizes of changed levels over update ids ``first_id..last_id``."""

    recv_ns: int
    exch_ms: int
    first_id: int
    last_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class Trade:
    recv_ns: int
    exch_ms: int  # event time (E)
    trade_ms: int  # trade time (T)
    trade_id: int
    price: int
    qty: int
    buyer_is_maker: bool  # True: the taker sold

    @property
    def taker_side(self) -> str:
        return "sell" if self.buyer_is_maker else "buy"


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid/offer; Binance gives it no exchange time."""

    recv_ns: int
    update_id: int
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int


Event = BookSnapshot | DepthDiff | Trade | BookTicker
