"""Streaming reader of the Binance spot capture (``<recv ns> <raw json>`` lines in gzip files).

:func:`read_capture` yields typed events in file order (the receive order). :class:`DepthSync` is the
update-id rule of the data README as a sans-I/O state machine: diffs that arrive before the snapshot are
buffered, diffs with ``u <= lastUpdateId`` are dropped, the first applied diff must have
``U <= lastUpdateId + 1 <= u`` and every later one ``U == previous u + 1``; anything else is a gap.
:class:`FuturesDepthSync` is the futures rule (``pu`` chains the diffs). Both are what every consumer of
a Binance recording syncs its book with: the simulators' replay here, the backtest's reader
(:mod:`fastmm.backtest.readers`), which also parses levels with :func:`levels_e8`.
:func:`replay` combines the two into the stream a simulator or backtest consumes: trades and tickers as
they come, the snapshot, then exactly the diffs that apply to it, in order.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

import orjson

from fastmm.data.events import BookSnapshot, BookTicker, DepthDiff, Event, Level, Trade
from fastmm.data.paths import binance_capture_dir
from fastmm.units import DataError, parse_e8


class SequenceGap(DataError):
    """Depth diffs whose update ids do not continue the book: the book must be rebuilt."""


# Binance prints every price and size with exactly 8 decimals: a whole list of them is checked with one
# regular expression, then each is an int of its digits (four times faster than parsing one by one).
_FIXED8 = re.compile(r"\d+\.\d{8}(?:,\d+\.\d{8})*")


def e8_values(texts: list[str]) -> list[int]:
    """Decimal strings -> exact 1e-8 integers (the fast path when all have 8 decimals)."""
    try:
        if texts and _FIXED8.fullmatch(",".join(texts)):
            return [int(x[:-9] + x[-8:]) for x in texts]
        return [parse_e8(x) for x in texts]
    except TypeError:
        raise DataError(f"not decimal strings: {texts!r:.60}") from None


def levels_e8(raw: object) -> list[tuple[int, int]]:
    """``[[price, qty], ...]`` as Binance sends them -> exact 1e-8 integer pairs."""
    if not isinstance(raw, list):
        raise DataError(f"levels are not a list: {raw!r:.60}")
    try:
        flat = [x for p, q in raw for x in (p, q)]
    except (TypeError, ValueError) as e:
        raise DataError(f"bad level: {e}") from None
    v = e8_values(flat)
    return list(zip(v[::2], v[1::2], strict=True))


def _levels(raw: object) -> tuple[Level, ...]:
    return tuple(levels_e8(raw))


def parse_line(line: bytes) -> Event:
    """One capture line to one event; :class:`DataError` names what is wrong with a bad line."""
    sp = line.find(b" ")
    if sp <= 0:
        raise DataError("no '<recv ns> ' prefix")
    try:
        recv_ns = int(line[:sp])
        obj = orjson.loads(line[sp + 1:])
    except (ValueError, orjson.JSONDecodeError) as e:
        raise DataError(f"unreadable line: {e}") from None
    if not isinstance(obj, dict):
        raise DataError("JSON is not an object")
    try:
        stream = obj.get("stream")
        if stream is None:
            return BookSnapshot(recv_ns, int(obj["lastUpdateId"]), _levels(obj["bids"]), _levels(obj["asks"]))
        d = obj["data"]
        if stream.endswith("@bookTicker"):
            return BookTicker(recv_ns, int(d["u"]), parse_e8(d["b"]), parse_e8(d["B"]),
                              parse_e8(d["a"]), parse_e8(d["A"]))
        if stream.endswith("@trade"):
            return Trade(recv_ns, int(d["E"]), int(d["T"]), int(d["t"]), parse_e8(d["p"]), parse_e8(d["q"]),
                         bool(d["m"]))
        if "@depth" in stream:
            return DepthDiff(recv_ns, int(d["E"]), int(d["U"]), int(d["u"]), _levels(d["b"]), _levels(d["a"]))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"missing or bad field: {e!r}") from None
    raise DataError(f"unknown stream {stream!r}")


def capture_files(path: str | Path | None = None) -> list[Path]:
    """The capture's files in reading order: a folder's ``*.gz`` sorted by name, or one file."""
    p = Path(path) if path is not None else binance_capture_dir()
    if p.is_dir():
        files = sorted(p.glob("*.gz"))
        if not files:
            raise DataError(f"{p}: no .gz capture files")
        return files
    if not p.exists():
        raise DataError(f"{p}: capture not found (set FASTMM_DATA_DIR)")
    return [p]


def read_lines(path: str | Path | None = None) -> Iterator[bytes]:
    for f in capture_files(path):
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rb") as fh:
            yield from fh


def read_capture(path: str | Path | None = None, *, max_lines: int | None = None) -> Iterator[Event]:
    """Every event of the capture in file order; a bad line raises DataError with its line number."""
    for n, line in enumerate(read_lines(path), 1):
        if max_lines is not None and n > max_lines:
            return
        if not line.strip():
            continue
        try:
            yield parse_line(line)
        except DataError as e:
            raise DataError(f"line {n}: {e}") from None


class DepthSync:
    """The snapshot/diff update-id rule, fed events one at a time (no I/O, no clock)."""

    __slots__ = ("_buffer", "_first", "applied", "dropped", "last_id")

    def __init__(self) -> None:
        self.last_id: int | None = None  # last applied update id; None before a snapshot
        self._buffer: list[DepthDiff] = []
        self._first = True  # the next applied diff is the first after a snapshot
        self.applied = 0
        self.dropped = 0

    @property
    def synced(self) -> bool:
        return self.last_id is not None

    def on_snapshot(self, snap: BookSnapshot) -> list[DepthDiff]:
        """Start from ``snap``; returns the buffered diffs that now apply, in order."""
        self.last_id = snap.last_update_id
        self._first = True
        pending, self._buffer = self._buffer, []
        out: list[DepthDiff] = []
        for d in pending:
            if self._accept(d):
                out.append(d)
        return out

    def on_diff(self, diff: DepthDiff) -> bool:
        """True if ``diff`` applies now; False if buffered (no snapshot yet) or stale (dropped)."""
        if self.last_id is None:
            self._buffer.append(diff)
            return False
        return self._accept(diff)

    def _accept(self, d: DepthDiff) -> bool:
        last = self.last_id
        assert last is not None
        if d.last_id <= last:
            self.dropped += 1
            return False
        if self._first:
            if not d.first_id <= last + 1 <= d.last_id:
                raise SequenceGap(f"first diff U={d.first_id} u={d.last_id} does not cover {last + 1}")
            self._first = False
        elif d.first_id != last + 1:
            raise SequenceGap(f"diff U={d.first_id} after u={last}: {d.first_id - last - 1} ids missing")
        self.last_id = d.last_id
        self.applied += 1
        return True


P = TypeVar("P")


class FuturesDepthSync(Generic[P]):
    """Binance futures' update-id rule: drop diffs with ``u < lastUpdateId``; the first applied has
    ``U <= lastUpdateId <= u``; every later one has ``pu`` equal to the previous ``u``. The diffs' payloads
    (``P``) are the caller's: buffered before the snapshot and handed back by :meth:`on_snapshot`."""

    __slots__ = ("_buffer", "_first", "last_id")

    def __init__(self) -> None:
        self.last_id: int | None = None
        self._buffer: list[tuple[int, int, int, P]] = []
        self._first = True

    def on_snapshot(self, last_update_id: int) -> list[P]:
        self.last_id = last_update_id
        self._first = True
        pending, self._buffer = self._buffer, []
        return [payload for first, last, prev, payload in pending if self._accept(first, last, prev)]

    def on_diff(self, first: int, last: int, prev: int, payload: P) -> bool:
        if self.last_id is None:
            self._buffer.append((first, last, prev, payload))
            return False
        return self._accept(first, last, prev)

    def _accept(self, first: int, last: int, prev: int) -> bool:
        cur = self.last_id
        assert cur is not None
        if last < cur:
            return False
        if self._first:
            if not first <= cur <= last:
                raise SequenceGap(f"first futures diff U={first} u={last} does not cover {cur}")
            self._first = False
        elif prev != cur:
            raise SequenceGap(f"futures diff pu={prev} after u={cur}: update ids missing")
        self.last_id = last
        return True


def replay(events: Iterable[Event] | None = None) -> Iterator[Event]:
    """Events in book order: diffs only when they apply to the snapshot; a gap raises SequenceGap."""
    sync = DepthSync()
    for ev in read_capture() if events is None else events:
        if isinstance(ev, DepthDiff):
            if sync.on_diff(ev):
                yield ev
        elif isinstance(ev, BookSnapshot):
            released = sync.on_snapshot(ev)
            yield ev
            yield from released
        else:
            yield ev
