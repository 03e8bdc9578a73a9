"""A reference L2 book in integer E8 units: snapshot + absolute-size diffs, best levels in order.

Each side is a dict (price -> size) plus a sorted list of keys (bids stored negated, so index 0 is the
best on both sides). ``bisect`` keeps insert/delete cheap at the ~1-2k levels of a depth snapshot and
makes best price O(1) and top-N O(N), which is what the simulators ask for on every update.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator

from fastmm.data.events import BookSnapshot, DepthDiff, Level


class _Side:
    __slots__ = ("keys", "levels", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # -1 for bids (keys are -price), +1 for asks
        self.levels: dict[int, int] = {}
        self.keys: list[int] = []

    def set(self, price: int, qty: int) -> None:
        levels = self.levels
        if qty <= 0:
            if price in levels:
                del levels[price]
                keys = self.keys
                del keys[bisect_left(keys, self.sign * price)]
            return
        if price not in levels:
            insort(self.keys, self.sign * price)
        levels[price] = qty

    def clear(self) -> None:
        self.levels.clear()
        self.keys.clear()

    def best(self) -> Level | None:
        if not self.keys:
            return None
        p = self.sign * self.keys[0]
        return p, self.levels[p]

    def top(self, n: int) -> list[Level]:
        s, lv = self.sign, self.levels
        return [(s * k, lv[s * k]) for k in self.keys[:n]]

    def __iter__(self) -> Iterator[Level]:
        s, lv = self.sign, self.levels
        for k in self.keys:
            yield s * k, lv[s * k]


class L2Book:
    """Bids and asks of one instrument; ``last_update_id`` is the id of the last applied change."""

    __slots__ = ("asks", "bids", "last_update_id")

    def __init__(self) -> None:
        self.bids = _Side(-1)
        self.asks = _Side(1)
        self.last_update_id = 0

    def load(self, bids: Iterable[Level], asks: Iterable[Level], update_id: int = 0) -> None:
        self.bids.clear()
        self.asks.clear()
        for p, q in bids:
            self.bids.set(p, q)
        for p, q in asks:
            self.asks.set(p, q)
        self.last_update_id = update_id

    def apply_snapshot(self, snap: BookSnapshot) -> None:
        self.load(snap.bids, snap.asks, snap.last_update_id)

    def apply_diff(self, diff: DepthDiff) -> None:
        for p, q in diff.bids:
            self.bids.set(p, q)
        for p, q in diff.asks:
            self.asks.set(p, q)
        self.last_update_id = diff.last_id

    def set_level(self, side: str, price: int, qty: int) -> None:
        """``side`` is ``"bid"`` or ``"ask"``; ``qty`` 0 removes the level."""
        (self.bids if side == "bid" else self.asks).set(price, qty)

    def best_bid(self) -> Level | None:
        return self.bids.best()

    def best_ask(self) -> Level | None:
        return self.asks.best()

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` levels of each side, best first."""
        return self.bids.top(n), self.asks.top(n)

    @property
    def empty(self) -> bool:
        return not self.bids.keys and not self.asks.keys

    @property
    def crossed(self) -> bool:
        b, a = self.bids.best(), self.asks.best()
        return b is not None and a is not None and b[0] >= a[0]
