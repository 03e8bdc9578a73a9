"""TrueX's own L2 book, sans-I/O: market-data snapshots (W) and incrementals (X) in, top levels out.

Kept in ticks and lots by price level (new, change, delete; an empty side arrives as price 0 size 0),
so the feed-truex-md process, the latency bench and tests build the same book from the same records.
"""

from __future__ import annotations

from fastmm.venues.truex.codec import MarketDataIncremental, MarketDataSnapshot


class TruexBook:
    """TrueX's L2 book in ticks and lots, built from W and X."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.synced = False
        self.updates = 0

    def snapshot(self, snap: MarketDataSnapshot) -> None:
        self.bids.clear()
        self.asks.clear()
        for e in snap.entries:
            if e.price > 0 and e.size > 0:
                if e.entry_type == "0":
                    self.bids[e.price] = e.size
                elif e.entry_type == "1":
                    self.asks[e.price] = e.size
        self.synced = True

    def incremental(self, inc: MarketDataIncremental) -> bool:
        """Apply; True when a book level changed (trades alone change nothing)."""
        changed = False
        for e in inc.entries:
            if e.entry_type not in ("0", "1"):
                continue
            side = self.bids if e.entry_type == "0" else self.asks
            if e.action == "2" or e.size == 0:
                changed |= side.pop(e.price, None) is not None
            elif e.price > 0:
                side[e.price] = e.size
                changed = True
        self.updates += changed
        return changed

    def top(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """``n`` levels a side, best first, as (price ticks, size lots): the seed's ``getOrderBook``."""
        bids = sorted(self.bids.items(), reverse=True)[:n]
        asks = sorted(self.asks.items())[:n]
        return bids, asks

    def best_bid_ask(self) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """The best (price ticks, size lots) of each side, None for an empty side: ``getBestBidAsk``."""
        bid = max(self.bids) if self.bids else None
        ask = min(self.asks) if self.asks else None
        return ((bid, self.bids[bid]) if bid is not None else None,
                (ask, self.asks[ask]) if ask is not None else None)
