"""Recorded market data as one time-ordered columnar stream: what every backtest run replays.

Readers (:mod:`fastmm.backtest.readers`) turn a capture into a :class:`MarketData` once; each run then
only slices and filters numpy arrays, so a sweep of many configurations pays for JSON parsing once
(the sweep's workers inherit the arrays through ``fork``).

The stream starts at the depth snapshot (the first moment a full book exists) and holds three kinds of
rows, in receive order (ties keep file order):

* ``DEPTH``: a level's new absolute size: ``a`` = side (1 bid, 2 ask), ``b`` = price, ``c`` = size;
* ``TRADE``: a market trade: ``a`` = the taker's side (1 buy, 2 sell), ``b`` = price, ``c`` = size;
* ``TOP``:   best bid and ask: ``a`` = bid, ``b`` = ask, ``c`` = bid size, ``d`` = ask size.

Prices and sizes are exact integers of 1e-8 (sizes already converted to the base asset, see
:class:`SizeUnit`); ``t`` is the capture's local receive time in ns, kept monotonic (a row stamped
earlier than the row before it, such as the diffs released by the snapshot, takes the earlier row's
time). The exchange's own clock is not used: in the Binance capture it runs 1.27 s ahead of the local
one and bookTicker has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from fastmm.units import E8, DataError

DEPTH, TRADE, TOP = 0, 1, 2
_DERIVED_TOP = 3         # a top computed from the depth book; dropped when the data has real tops
BID, ASK = 1, 2          # = Side.BUY / Side.SELL for resting orders; for trades, the taker's side


@dataclass(frozen=True, slots=True)
class SizeUnit:
    """How a venue counts size: ``base`` (BTC), ``contract:<BTC per contract>`` (linear contracts) or
    ``inverse:<quote per contract>`` (inverse contracts: BTC = contracts x value / price)."""

    kind: str = "base"
    value: Decimal = Decimal(1)

    @classmethod
    def parse(cls, text: str) -> SizeUnit:
        kind, _, raw = text.partition(":")
        if kind == "base" and not raw:
            return cls()
        if kind in ("contract", "inverse") and raw:
            try:
                v = Decimal(raw)
            except InvalidOperation:
                v = Decimal(0)
            if v.is_finite() and v > 0:
                return cls(kind, v)
        raise DataError(f"size unit {text!r}: expected base, contract:<base per contract> or "
                        f"inverse:<quote per contract>")

    def to_base_e8(self, qty_e8: int, price_e8: int) -> int:
        """A size in the venue's unit (1e-8 units of it) -> base asset in 1e-8, rounded down."""
        if self.kind == "base":
            return qty_e8
        if self.kind == "contract":
            return int(qty_e8 * self.value)
        if price_e8 <= 0:
            return 0
        # contracts x value (quote) / price (quote per base), all in 1e-8: qty_e8 * value / price_e8 * 1e8
        return int(Decimal(qty_e8) * self.value * E8 / price_e8)

    def __str__(self) -> str:
        return "base" if self.kind == "base" else f"{self.kind}:{self.value}"


@dataclass(frozen=True, slots=True)
class MarketData:
    """One instrument's replayable market data (see the module docstring for the row layout)."""

    source: str
    fmt: str
    symbol: str
    start_ns: int
    snap_bids: np.ndarray     # (n, 2) int64 price, size; best first
    snap_asks: np.ndarray
    kind: np.ndarray          # int8
    t: np.ndarray             # int64, non-decreasing
    a: np.ndarray             # int64
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    lines: int = 0            # input lines or frames read
    duplicates: int = 0       # repeated frames skipped (same sequence number again)

    def __post_init__(self) -> None:
        n = len(self.t)
        if not all(len(x) == n for x in (self.kind, self.a, self.b, self.c, self.d)):
            raise DataError("market data columns differ in length")
        if n and np.any(np.diff(self.t) < 0):
            raise DataError("market data times go backwards")

    @property
    def end_ns(self) -> int:
        return int(self.t[-1]) if len(self.t) else self.start_ns

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def counts(self) -> dict[str, int]:
        k = self.kind
        return {"depth_rows": int(np.count_nonzero(k == DEPTH)), "trades": int(np.count_nonzero(k == TRADE)),
                "tops": int(np.count_nonzero(k == TOP))}

    def describe(self) -> dict[str, object]:
        return {"source": self.source, "format": self.fmt, "symbol": self.symbol, "lines": self.lines,
                "start_ns": self.start_ns, "end_ns": self.end_ns, "duration_s": round(self.duration_s, 3),
                "snapshot_levels": [len(self.snap_bids), len(self.snap_asks)], "duplicates": self.duplicates,
                **self.counts()}

    def head(self, seconds: float) -> MarketData:
        """The first ``seconds`` of the stream (tests and quick looks)."""
        end = self.start_ns + int(seconds * 1e9)
        n = int(np.searchsorted(self.t, end, side="right"))
        return MarketData(self.source, self.fmt, self.symbol, self.start_ns, self.snap_bids, self.snap_asks,
                          self.kind[:n], self.t[:n], self.a[:n], self.b[:n], self.c[:n], self.d[:n],
                          self.lines, self.duplicates)


def after(md: MarketData, t_ns: int) -> MarketData:
    """The stream from ``t_ns`` on, starting from the book as it stood then (the snapshot with every
    depth row before ``t_ns`` applied): the second half of a walk-forward split."""
    i = int(np.searchsorted(md.t, t_ns, side="left"))
    bids = {int(p): int(q) for p, q in md.snap_bids}
    asks = {int(p): int(q) for p, q in md.snap_asks}
    dk = md.kind[:i] == DEPTH
    for side, p, q in zip(md.a[:i][dk].tolist(), md.b[:i][dk].tolist(), md.c[:i][dk].tolist(), strict=True):
        book = bids if side == BID else asks
        if q > 0:
            book[p] = q
        else:
            book.pop(p, None)
    i64 = np.int64
    sb = np.array(sorted(bids.items(), reverse=True), dtype=i64).reshape(-1, 2)
    sa = np.array(sorted(asks.items()), dtype=i64).reshape(-1, 2)
    start = int(t_ns) if i < len(md.t) else md.end_ns
    return MarketData(md.source, md.fmt, md.symbol, start, sb, sa,
                      md.kind[i:], md.t[i:], md.a[i:], md.b[i:], md.c[i:], md.d[i:], md.lines, md.duplicates)


class StreamBuilder:
    """Collects rows in arrival order and makes the arrays; times are clamped to be monotonic."""

    __slots__ = ("_a", "_b", "_c", "_d", "_k", "_last_t", "_t", "snap_asks", "snap_bids", "start_ns", "unit")

    def __init__(self, unit: SizeUnit | None = None) -> None:
        self.unit = unit or SizeUnit()
        self._k: list[int] = []
        self._t: list[int] = []
        self._a: list[int] = []
        self._b: list[int] = []
        self._c: list[int] = []
        self._d: list[int] = []
        self._last_t = 0
        self.start_ns: int | None = None
        self.snap_bids: list[tuple[int, int]] = []
        self.snap_asks: list[tuple[int, int]] = []

    @property
    def started(self) -> bool:
        return self.start_ns is not None

    def _time(self, t: int) -> int:
        if t < self._last_t:
            return self._last_t
        self._last_t = t
        return t

    def snapshot(self, t: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """The starting book; the stream begins here (rows before it are not replayable)."""
        conv = self.unit.to_base_e8
        self.start_ns = self._time(t)
        self.snap_bids = sorted(((p, conv(q, p)) for p, q in bids if q > 0), reverse=True)
        self.snap_asks = sorted((p, conv(q, p)) for p, q in asks if q > 0)

    def levels(self, t: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        t = self._time(t)
        n = len(bids) + len(asks)
        if not n:
            return
        rows = bids + asks
        self._k.extend([DEPTH] * n)
        self._t.extend([t] * n)
        self._a.extend([BID] * len(bids) + [ASK] * len(asks))
        self._b.extend([p for p, _ in rows])
        if self.unit.kind == "base":
            self._c.extend([q for _, q in rows])
        else:
            conv = self.unit.to_base_e8
            self._c.extend([conv(q, p) for p, q in rows])
        self._d.extend([0] * n)

    def trade(self, t: int, taker_side: int, price: int, qty: int) -> None:
        self._k.append(TRADE)
        self._t.append(self._time(t))
        self._a.append(taker_side)
        self._b.append(price)
        self._c.append(self.unit.to_base_e8(qty, price))
        self._d.append(0)

    def top(self, t: int, bid: int, ask: int, bid_qty: int, ask_qty: int, derived: bool = False) -> None:
        """Best bid and ask; ``derived`` ones (from the depth book) give way to recorded ones."""
        conv = self.unit.to_base_e8
        self._k.append(_DERIVED_TOP if derived else TOP)
        self._t.append(self._time(t))
        self._a.append(bid)
        self._b.append(ask)
        self._c.append(conv(bid_qty, bid))
        self._d.append(conv(ask_qty, ask))

    def build(self, source: str, fmt: str, symbol: str, lines: int, *, duplicates: int = 0) -> MarketData:
        if self.start_ns is None:
            raise DataError(f"{source}: no depth snapshot found: the book cannot be rebuilt")
        i64 = np.int64
        kind = np.array(self._k, dtype=np.int8)
        cols = [np.array(x, dtype=i64) for x in (self._t, self._a, self._b, self._c, self._d)]
        derived = kind == _DERIVED_TOP
        if derived.any():
            if np.any(kind == TOP):
                keep = ~derived
                kind = kind[keep]
                cols = [x[keep] for x in cols]
            else:
                kind[derived] = TOP

        def levels(rows: list[tuple[int, int]]) -> np.ndarray:
            return np.array(rows, dtype=i64).reshape(-1, 2)

        t, a, b, c, d = cols
        return MarketData(source, fmt, symbol, self.start_ns, levels(self.snap_bids), levels(self.snap_asks),
                          kind, t, a, b, c, d, lines, duplicates)
