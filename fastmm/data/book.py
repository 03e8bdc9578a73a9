"""A reference L2 book in integer E8 units: snapshot + absolute-size diffs, best levels in order.

Each side is a dict (price -> size) holding every level, plus a short sorted list of the best keys
(ascending, best *last*; asks stored negated). A replayed side grows to thousands of levels and most
changes land far from the top: those touch only the dict. Changes near the top move a few pointers in
a list of at most ``2 * TOP_KEPT`` keys. The list always holds exactly the levels at or better than its
floor; when deletions thin it below what a caller asks for, it is rebuilt from the dict (rare), and a
full-depth walk sorts on demand. Best price is O(1), top-N O(N), a change O(1) or O(TOP_KEPT).

The batch update loop lives here too, beside the representation it writes: :func:`apply_updates_py`
checks one event's level updates (dicts of ``side``, ``price_level``, ``new_quantity``: the shape of
Coinbase's ``l2_data`` updates, which the feed's codec hands over unparsed) and applies them all or none.
Its compiled twin, ``fastmm/data/_l2fast.pyx``, writes ``_Side``'s dict and key list directly, so a
change to that representation is made in this folder, to both twins at once; :data:`apply_updates` is
whichever runs (``COMPILED``; ``FASTMM_PURE=1`` forces the pure one).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from heapq import nlargest

from fastmm.data.events import BookSnapshot, DepthDiff, Level
from fastmm.speedups import compiled_twin

TOP_KEPT = 32
_NO_FLOOR = -(1 << 62)

LevelChange = tuple[bool, int, int]     # (is bid, price e8, new size e8; 0 removes)
# (cache, text, positive) -> e8 units: parses, checks and remembers one price (positive) or size text
TextParser = Callable[[dict[str, int], str, bool], int]


class _Side:
    __slots__ = ("floor", "kept", "levels", "sign", "top_keys")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # +1 for bids (keys are prices), -1 for asks (keys are -price)
        self.levels: dict[int, int] = {}
        self.top_keys: list[int] = []   # every key >= floor, ascending: the best level is last
        self.floor = _NO_FLOOR
        self.kept = TOP_KEPT            # grows to the deepest top(n) a caller asks for

    def set(self, price: int, qty: int) -> None:
        levels = self.levels
        if qty <= 0:
            if price in levels:
                del levels[price]
                k = self.sign * price
                if k >= self.floor:
                    keys = self.top_keys
                    del keys[bisect_left(keys, k)]
            return
        if price not in levels:
            k = self.sign * price
            if k >= self.floor:
                keys = self.top_keys
                insort(keys, k)
                if len(keys) > 2 * self.kept:
                    self.trim()
        levels[price] = qty

    def trim(self) -> None:
        """Forget the order of all but the best ``kept`` keys (they stay in ``levels``)."""
        keys = self.top_keys
        cut = len(keys) - self.kept
        if cut > 0:
            self.floor = keys[cut]
            del keys[:cut]

    def _ensure(self, n: int) -> list[int]:
        """The sorted best keys, holding at least ``n`` of them when the side has that many."""
        keys = self.top_keys
        if len(keys) < n and len(self.levels) > len(keys):
            s = self.sign
            if n > self.kept:
                self.kept = n
            keys = self.top_keys = sorted(nlargest(self.kept, (s * p for p in self.levels)))
            self.floor = keys[0] if len(self.levels) > len(keys) else _NO_FLOOR
        return keys

    def clear(self) -> None:
        self.levels.clear()
        self.top_keys.clear()
        self.floor = _NO_FLOOR

    def best(self) -> Level | None:
        keys = self.top_keys or self._ensure(1)
        if not keys:
            return None
        p = self.sign * keys[-1]
        return p, self.levels[p]

    def top(self, n: int) -> list[Level]:
        s, lv = self.sign, self.levels
        keys = self.top_keys if len(self.top_keys) >= n else self._ensure(n)
        return [(s * k, lv[s * k]) for k in keys[:-n - 1:-1]]

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels (Kraken's subscribed depth)."""
        if len(self.levels) > depth:
            keep = {p: self.levels[p] for p, _ in self.top(depth)}
            self.clear()
            for p, q in keep.items():
                self.set(p, q)

    def __len__(self) -> int:
        return len(self.levels)

    def __iter__(self) -> Iterator[Level]:
        lv = self.levels
        for p in sorted(lv, reverse=self.sign > 0):
            yield p, lv[p]


class L2Book:
    """Bids and asks of one instrument; ``last_update_id`` is the id of the last applied change."""

    __slots__ = ("asks", "bids", "last_update_id")

    def __init__(self) -> None:
        self.bids = _Side(1)
        self.asks = _Side(-1)
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
        return not self.bids.levels and not self.asks.levels

    @property
    def crossed(self) -> bool:
        b, a = self.bids.best(), self.asks.best()
        return b is not None and a is not None and b[0] >= a[0]


def apply_updates_py(updates: list, book: L2Book, prices: dict[str, int], sizes: dict[str, int],
                     cached: TextParser) -> int:
    """Check every update of one event, then apply them all to ``book`` in order: an error for any of
    them applies none (no half-applied message). Texts seen before are one dict lookup each (``prices``,
    ``sizes``; ``cached`` parses and remembers the others): this runs for every level change.
    ``_l2fast.apply_updates`` is its compiled twin."""
    bids, asks = book.bids.set, book.asks.set
    for is_bid, price, size in parse_updates(updates, prices, sizes, cached):
        (bids if is_bid else asks)(price, size)
    return len(updates)


def parse_updates(updates: list, prices: dict[str, int], sizes: dict[str, int],
                  cached: TextParser) -> list[LevelChange]:
    """The checked level changes of one event's updates, in order (nothing is applied)."""
    out: list[LevelChange] = []
    append = out.append
    for u in updates:
        side = u["side"]
        if side == "bid":
            is_bid = True
        elif side == "offer" or side == "ask":
            is_bid = False
        else:
            raise ValueError(f"side {side!r}")
        pt = u["price_level"]
        price = prices.get(pt) if pt.__class__ is str else None
        if price is None:
            price = cached(prices, pt, True)
        qt = u["new_quantity"]
        size = sizes.get(qt) if qt.__class__ is str else None
        if size is None:
            size = cached(sizes, qt, False)
        append((is_bid, price, size))
    return out


_compiled = compiled_twin("fastmm.data._l2fast", "apply_updates")    # None: the pure twin

apply_updates: Callable[[list, L2Book, dict[str, int], dict[str, int], TextParser], int] = (
    _compiled or apply_updates_py)
COMPILED = _compiled is not None
