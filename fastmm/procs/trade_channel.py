"""Writing and reading a reference venue's market trades (``TRADE``) on an event ring, ``trades.<venue>``.

Why: the edge model's signed taker flow (:meth:`fastmm.core.fair_value.FairValue.on_trade`) and the
GLFT/A-S intensity fit read market trades; the backtest feeds them to :meth:`TradingCore.on_trade`, and
live the feed publishes them here so the quoter can make the same call (``Quoter.drain_trades``).

A feed's loop must never wait on the quoter: a trade is a signal, not money, so when the ring is full
:meth:`TradePublisher.publish` drops it, counts it (``dropped``) and logs the first drop. Trades from
before the subscription (Coinbase's ``market_trades`` snapshot, ``history``) are not published: they
are old news, and the backtest's reader skips them too. Coinbase's side is the maker's; the record
carries the taker's (:data:`TAKER_BUY` / :data:`TAKER_SELL`), the convention of the backtest's rows.

Only Coinbase has a trade channel: the Kraken WebSocket codec subscribes to ``book`` alone.
Timestamps as in :mod:`fastmm.procs.book_channel`: ``t_recv``/``t_pub`` CLOCK_MONOTONIC, ``t_venue``
the venue's wall clock.
"""

from __future__ import annotations

import logging
import struct
import time
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fastmm.shm import EventRing
from fastmm.shm.records import TAKER_BUY, TAKER_SELL, TRADE

if TYPE_CHECKING:       # the quoter imports this module too, and needs no venue codec
    from fastmm.venues.coinbase.codec import MarketTrade

log = logging.getLogger(__name__)

# seq, t_venue, t_recv, t_pub, venue, taker_side, price_e8, size_e8, checksum
_LAYOUT = struct.Struct("<QqqqIIqqQ")


def trades_channel(venue: str) -> str:
    """The ring's channel name for a reference venue (``trades.coinbase``)."""
    return f"trades.{venue}"


def taker_side(maker_side: str) -> int:
    """Coinbase names the maker's side: a BUY maker (a resting bid) was hit by a selling taker."""
    return TAKER_SELL if maker_side == "BUY" else TAKER_BUY


class TradePublisher:
    """The feed side: one ``struct.pack_into`` and a push per live trade, never a wait."""

    def __init__(self, ring: EventRing, venue: int) -> None:
        if _LAYOUT.size != TRADE.itemsize:
            raise TypeError("TradePublisher's layout no longer matches the TRADE record")
        self.ring = ring
        self.venue = venue
        self._tx = ring.tx.view(np.uint8).data
        self.published = 0
        self.dropped = 0         # the ring was full (the quoter is not reading): lost signal, counted
        self.history = 0         # trades from before the subscription, not published

    def publish(self, trade: MarketTrade) -> bool:
        """Publish one trade; False when it is history or the ring is full (dropped)."""
        if trade.history:
            self.history += 1
            return False
        _LAYOUT.pack_into(self._tx, 0, 0, trade.t_venue_ns, trade.t_recv_ns, time.monotonic_ns(), self.venue,
                          taker_side(trade.maker_side), trade.price_e8, trade.size_e8, 0)
        if self.ring.push():
            self.published += 1
            return True
        self.dropped += 1
        if self.dropped == 1:
            log.warning("%s full (%d records): dropping market trades until the quoter reads again; the edge "
                        "model's flow term misses them (further drops counted, not logged)",
                        self.ring.name, self.ring.capacity)
        return False


class TradeRecord(NamedTuple):
    """What the quoter needs of one published trade."""

    taker_side: int
    price_e8: int
    size_e8: int
    t_venue_ns: int
    t_recv_ns: int
    t_pub_ns: int


def pop_trade(ring: EventRing) -> TradeRecord | None:
    """The consumer side: the oldest unread trade, released from the ring (None when it is empty)."""
    if not ring.pop():
        return None
    _seq, t_venue, t_recv, t_pub, _venue, side, price, size, _ck = _LAYOUT.unpack_from(ring.rx_bytes)
    return TradeRecord(side, price, size, t_venue, t_recv, t_pub)
