"""Readers of recorded market data into :class:`~fastmm.backtest.market.MarketData`, by format.

Two formats are understood, told apart by their first line:

* **Binance raw capture** (``../shared/data``): ``<local receive ns> <raw JSON>`` lines in plain or gzip
  files (a folder is read file by file in name order). Combined-stream envelopes
  (``{"stream": ..., "data": ...}``) and bare payloads both work, for spot and USD-M/COIN-M futures:
  depth diffs (``depthUpdate``; spot ids ``U``/``u``, futures add ``pu``), trades (``trade``, only
  ``X == "MARKET"`` when present, and ``aggTrade``), ``bookTicker``, and the REST depth snapshot line
  (``lastUpdateId``). Sizes are in the instrument's own unit (see :class:`SizeUnit`). Diffs follow the
  update-id rule of each market, with the syncs the simulators replay by (spot:
  :class:`fastmm.data.binance.DepthSync`; futures: :class:`fastmm.data.binance.FuturesDepthSync`); a gap
  is an error naming the line.
* **Coinbase Advanced Trade frames** (``fastmm.data.coinbase_frames``): JSONL ``{"t_ns", "frame"}``, each
  frame decoded by the live codec (:class:`fastmm.venues.coinbase.codec.CoinbaseFeed`): its sequence
  check, its ``l2_data`` book and parser, its ``market_trades`` (side is the maker's). What the live
  feed counts and drops is an error here, but for frames a recording may hold that say nothing about
  the book (other channels, venue errors, updates before the first snapshot). A ``sequence_num`` gap is
  an error: the book after it cannot be trusted; a frame seen again is skipped and counted.

Without a bookTicker stream the top of book is derived from the rebuilt depth book. Anything else
(another file format, a partial-depth stream, an unknown event type) raises :class:`DataError` with the
file, line and reason: a backtest on silently misread data is worse than none.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson

from fastmm.backtest.market import ASK, BID, MarketData, SizeUnit, StreamBuilder
from fastmm.data.binance import DepthSync, FuturesDepthSync, SequenceGap, e8_values, levels_e8
from fastmm.data.book import L2Book
from fastmm.data.events import BookSnapshot, DepthDiff
from fastmm.logs import OnceLogger
from fastmm.units import DataError
from fastmm.venues.coinbase import codec as cb_codec
from fastmm.venues.events import Resubscribe

log = logging.getLogger(__name__)

BINANCE = "binance-raw"
COINBASE = "coinbase-frames"

# Binance payloads that carry nothing the book or the queue model needs: skipped, counted.
_BINANCE_SKIP = frozenset({"markPriceUpdate", "kline", "24hrTicker", "24hrMiniTicker", "forceOrder",
                           "indexPriceUpdate", "continuous_kline", "compositeIndex"})


_SUFFIXES = (".gz", ".jsonl", ".txt", ".log")


def data_files(path: str | Path) -> list[Path]:
    """A file, or a folder's ``*.gz``, ``*.jsonl`` and ``*.txt`` files in name order."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in _SUFFIXES)
        if not files:
            raise DataError(f"{p}: no data files (.gz, .jsonl, .txt) in the folder")
        return files
    if not p.exists():
        raise DataError(f"{p}: not found")
    return [p]


def _lines(files: list[Path]) -> Iterator[tuple[Path, int, bytes]]:
    for f in files:
        opener = gzip.open if f.suffix == ".gz" else open
        try:
            with opener(f, "rb") as fh:
                for n, line in enumerate(fh, 1):
                    yield f, n, line
        except (OSError, EOFError) as e:
            raise DataError(f"{f.name}: cannot read: {e}") from None


def sniff(path: str | Path) -> str:
    """The format of the data at ``path`` from its first non-empty line."""
    files = data_files(path)
    for f, n, line in _lines(files):
        s = line.strip()
        if not s:
            continue
        head = s[:40]
        sp = s.find(b" ")
        if sp > 0 and s[:sp].isdigit() and s[sp + 1:sp + 2] == b"{":
            return BINANCE
        if s[:1] == b"{":
            try:
                obj = orjson.loads(s)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict) and "t_ns" in obj and "frame" in obj:
                return COINBASE
        raise DataError(f"{f.name}:{n}: unrecognised market data format (starts {head!r}); expected "
                        f"Binance raw capture lines '<recv ns> <json>' or Coinbase JSONL "
                        f"{{\"t_ns\": ..., \"frame\": ...}}")
    raise DataError(f"{path}: no data in the file(s)")


def load_market_data(path: str | Path, *, size_unit: SizeUnit | str = "base", symbol: str = "",
                     max_lines: int | None = None) -> MarketData:
    """Read ``path`` (file or folder) in whichever supported format it is."""
    unit = SizeUnit.parse(size_unit) if isinstance(size_unit, str) else size_unit
    fmt = sniff(path)
    if fmt == BINANCE:
        return read_binance(path, unit=unit, symbol=symbol, max_lines=max_lines)
    return read_coinbase_frames(path, unit=unit, product=symbol, max_lines=max_lines)


# ---------------------------------------------------------------------------------------------------
# Binance
# ---------------------------------------------------------------------------------------------------
# A depth diff's raw bid and ask levels, as decoded (levels_e8 checks their shape).
_RawDiff = tuple[object, object]


class _BinanceState:
    """Update-id sync, pre-snapshot buffering and (without bookTicker) tops from the rebuilt book."""

    def __init__(self, out: StreamBuilder, symbol: str, derive_tops: bool) -> None:
        self.out = out
        self.symbol = symbol.lower()
        self.spot = DepthSync()
        self.futures: FuturesDepthSync[_RawDiff] = FuturesDepthSync()
        self.pending: dict[int, _RawDiff] = {}   # spot diffs buffered before the snapshot
        self.market = ""              # "spot" or "futures", from the first diff
        self.derive = derive_tops
        self.book: L2Book | None = None
        self.skipped = 0
        self.seen: set[str] = set()

    def check_symbol(self, name: str) -> bool:
        name = name.lower()
        if name not in self.seen:
            self.seen.add(name)
            check_coin_m(name, self.out.unit)
        if not self.symbol:
            self.symbol = name
        return name == self.symbol

    def snapshot(self, t: int, obj: dict) -> None:
        if self.out.started:
            raise DataError("a second depth snapshot in one capture is not supported")
        bids, asks = levels_e8(obj["bids"]), levels_e8(obj["asks"])
        last_id = int(obj["lastUpdateId"])
        self.out.snapshot(t, bids, asks)
        if self.derive:
            self.book = L2Book()
            self.book.load(bids, asks, last_id)
            self.derive_top(t)
        # the market (spot or futures) shows in the diffs; both syncs learn the snapshot, one has buffered
        snap = BookSnapshot(t, last_id, (), ())
        released = [self.pending[d.last_id] for d in self.spot.on_snapshot(snap)]
        released += self.futures.on_snapshot(last_id)
        self.pending.clear()
        for payload in released:
            self.apply(t, payload)

    def diff(self, t: int, d: dict) -> None:
        first, last = int(d["U"]), int(d["u"])
        payload = (d["b"], d["a"])
        if "pu" in d:
            self.market = self.market or "futures"
            ok = self.futures.on_diff(first, last, int(d["pu"]), payload)
        else:
            self.market = self.market or "spot"
            ok = self.spot.on_diff(DepthDiff(t, 0, first, last, (), ()))
            if not ok and not self.spot.synced:
                self.pending[last] = payload
        if ok:
            self.apply(t, payload)

    def apply(self, t: int, payload: _RawDiff) -> None:
        raw_bids, raw_asks = payload
        bids, asks = levels_e8(raw_bids), levels_e8(raw_asks)
        self.out.levels(t, bids, asks)
        book = self.book
        if book is not None:
            for p, q in bids:
                book.bids.set(p, q)
            for p, q in asks:
                book.asks.set(p, q)
            self.derive_top(t)

    def derive_top(self, t: int) -> None:
        assert self.book is not None
        bb, ba = self.book.best_bid(), self.book.best_ask()
        if bb is None or ba is None:
            return
        # every applied diff gives a top, moved or not: a quiet book is not a stale one (the engine ages a
        # reference by the receive time of its last top)
        self.out.top(t, bb[0], ba[0], bb[1], ba[1], derived=True)

    def ticker(self, t: int, data: dict) -> None:
        self.book = None      # recorded tops win; stop rebuilding the whole book for them
        if self.out.started:
            b, a, bq, aq = e8_values([data["b"], data["a"], data["B"], data["A"]])
            self.out.top(t, b, a, bq, aq)


def is_coin_m(symbol: str) -> bool:
    """Binance COIN-M (inverse) futures: ``btcusd_perp``, ``ethusd_240927``; USD-M quarterlies end in
    ``usdt_<date>`` and are linear in the base asset."""
    head, sep, _ = symbol.lower().partition("_")
    return bool(sep) and head.endswith("usd")


def check_coin_m(symbol: str, unit: SizeUnit) -> None:
    """A COIN-M recording counts size in contracts of a fixed USD value: read as base units it would
    be off by orders of magnitude, so the size unit must be given."""
    if unit.kind == "base" and is_coin_m(symbol):
        raise DataError(f"{symbol} is a Binance COIN-M (inverse) contract: its sizes are contracts, not "
                        f"{symbol[:3].upper()}; give the size unit (--size-unit inverse:100 for BTC "
                        f"contracts of 100 USD, inverse:10 for the others)")


def read_binance(path: str | Path, *, unit: SizeUnit | None = None, symbol: str = "",
                 max_lines: int | None = None) -> MarketData:
    """A Binance raw capture (spot or futures) to market data; see the module docstring."""
    files = data_files(path)
    out = StreamBuilder(unit)
    # a capture with bookTicker lines gives tops directly (a look at its start decides; a late ticker
    # stream still wins, see StreamBuilder.top)
    st = _BinanceState(out, symbol, derive_tops=not _has_book_ticker(files))
    lines = 0
    loads = orjson.loads
    for f, n, line in _lines(files):
        if max_lines is not None and lines >= max_lines:
            break
        lines += 1
        sp = line.find(b" ")
        if sp <= 0:
            if not line.strip():
                continue
            raise DataError(f"{f.name}:{n}: no '<recv ns> ' prefix")
        try:
            t = int(line[:sp])
            obj = loads(line[sp + 1:])
        except (ValueError, orjson.JSONDecodeError) as e:
            raise DataError(f"{f.name}:{n}: unreadable line: {e}") from None
        try:
            _binance_line(st, t, obj)
        except SequenceGap as e:
            raise DataError(f"{f.name}:{n}: depth update ids have a gap ({e}); the book cannot be rebuilt "
                            f"past it") from None
        except DataError as e:
            raise DataError(f"{f.name}:{n}: {e}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"{f.name}:{n}: missing or bad field: {e!r}") from None
    if st.seen and st.symbol not in st.seen:
        have = ", ".join(sorted(st.seen))
        raise DataError(f"{path}: no data for symbol {symbol!r} (the capture has {have})")
    fmt = f"{BINANCE}/{st.market or 'spot'}"
    return out.build(str(path), fmt, st.symbol, lines)


def _has_book_ticker(files: list[Path], probe: int = 2000) -> bool:
    for i, (_, _, line) in enumerate(_lines(files[:1])):
        if i >= probe:
            break
        if b"bookTicker" in line or (b'"u":' in line and b'"B":' in line and b'"A":' in line):
            return True
    return False


def _binance_line(st: _BinanceState, t: int, obj: object) -> None:
    if not isinstance(obj, dict):
        raise DataError("JSON is not an object")
    stream = obj.get("stream")
    if stream is not None:
        data = obj["data"]
        if not isinstance(data, dict):
            raise DataError("stream data is not an object")
        name = str(stream).split("@", 1)[0]
        if not st.check_symbol(name):
            return
    else:
        data = obj
        if "lastUpdateId" in data and "bids" in data and "e" not in data:
            st.snapshot(t, data)
            return
        sym = data.get("s")
        if isinstance(sym, str) and not st.check_symbol(sym):
            return
    e = data.get("e")
    if e == "depthUpdate":
        st.diff(t, data)
    elif e == "trade" or e == "aggTrade":
        if data.get("X", "MARKET") != "MARKET":
            return
        price, qty = e8_values([data["p"], data["q"]])
        if price <= 0 or qty <= 0:
            raise DataError(f"trade with price {data['p']!r} size {data['q']!r}")
        if st.out.started:   # m: the buyer is the maker, so the taker sold
            st.out.trade(t, ASK if data["m"] else BID, price, qty)
    elif e == "bookTicker" or (e is None and "u" in data and "B" in data and "A" in data):
        st.ticker(t, data)
    elif e is None and "lastUpdateId" in data:
        raise DataError(f"partial book depth stream {stream!r} is not supported: record the diff stream "
                        f"(<symbol>@depth or @depth@100ms) and a REST snapshot")
    elif e in _BINANCE_SKIP:
        st.skipped += 1
    else:
        raise DataError(f"unknown Binance event {e!r} (stream {stream!r})")


# ---------------------------------------------------------------------------------------------------
# Coinbase Advanced Trade frames
# ---------------------------------------------------------------------------------------------------
_CB_IGNORED = frozenset({"heartbeats", "subscriptions", "ticker", "ticker_batch", "status", "candles"})


class _StrictBad(OnceLogger):
    """The codec's bad-input counter made strict: what the live feed would drop is an error, but for
    the reasons a recording holds harmlessly (see the module docstring)."""

    __slots__ = ("tolerated",)

    def __init__(self) -> None:
        super().__init__(log)
        self.tolerated: frozenset[str] = frozenset()

    def __call__(self, reason: str, detail: str = "") -> None:
        if reason not in self.tolerated:
            raise DataError(f"{reason}: {detail}" if detail else reason)
        self.counts[reason] += 1


_ALWAYS_TOLERATED = frozenset({cb_codec.SEQUENCE_BACKWARDS, cb_codec.UPDATE_BEFORE_SNAPSHOT})


class _CoinbaseReader:
    """Drives one :class:`CoinbaseFeed` over recorded frames and turns what it applies into rows."""

    def __init__(self, out: StreamBuilder, product: str) -> None:
        self.out = out
        self.bad = _StrictBad()
        self.feed = cb_codec.CoinbaseFeed(product, level_sink=self.on_levels, bad=self.bad)
        self.book = self.feed.book     # the book rows were last emitted from (a new snapshot replaces it)
        self.t = 0

    def on_levels(self, kind: str, changes: list[cb_codec.LevelChange]) -> None:
        out, book = self.out, self.feed.book
        bids = [(p, q) for is_bid, p, q in changes if is_bid]
        asks = [(p, q) for is_bid, p, q in changes if not is_bid]
        if kind == "snapshot":
            if not out.started:
                out.snapshot(self.t, bids, asks)
            else:   # a snapshot on a new connection: emit the difference as level changes
                old = self.book
                gone_b = [(p, 0) for p, _ in old.bids if p not in book.bids.levels]
                gone_a = [(p, 0) for p, _ in old.asks if p not in book.asks.levels]
                out.levels(self.t, gone_b + bids, gone_a + asks)
            self.book = book
        elif out.started:
            out.levels(self.t, bids, asks)
        else:
            return
        # a top for every book event, moved or not: a quiet book is not a stale one
        bb, ba = book.best_bid(), book.best_ask()
        if bb is not None and ba is not None:
            out.top(self.t, bb[0], ba[0], bb[1], ba[1])

    def on_message(self, t: int, msg: dict) -> int:
        """Feed one decoded frame; returns 1 when it was a duplicate (skipped), else 0."""
        feed = self.feed
        seq = msg.get("sequence_num")
        expected = feed.expected_seq
        if seq == 0 and expected not in (None, 0) and not isinstance(seq, bool):
            feed.connection_reset()     # numbering starts again: a new connection, as the live shell does
            expected = None
        channel = msg.get("channel")
        if not feed.product_id and channel == "l2_data":     # no product given: the first one in the book
            for ev in msg.get("events") or ():
                if isinstance(ev, dict) and ev.get("product_id"):
                    feed.product_id = ev["product_id"]
                    break
        if channel in _CB_IGNORED or msg.get("type") == "error":
            self.bad.tolerated = _ALWAYS_TOLERATED | {cb_codec.UNKNOWN_CHANNEL, cb_codec.VENUE_ERROR,
                                                      f"bad {channel} message"}
        self.t = t
        dup = feed.duplicates
        try:
            events = feed.on_message(msg, t)
        finally:
            self.bad.tolerated = _ALWAYS_TOLERATED
        if feed.duplicates != dup:
            return 1
        for ev in events:
            if isinstance(ev, cb_codec.MarketTrade):
                # trades from before the subscription are history; the side is the maker's: a BUY maker
                # means the taker sold
                if not ev.history and self.out.started:
                    self.out.trade(t, ASK if ev.maker_side == "BUY" else BID, ev.price_e8, ev.size_e8)
            elif isinstance(ev, Resubscribe):
                assert isinstance(seq, int) and expected is not None
                raise DataError(f"sequence_num {seq}, expected {expected}: {seq - expected} messages were "
                                f"lost and the book cannot be trusted past this line")
        return 0


def read_coinbase_frames(path: str | Path, *, unit: SizeUnit | None = None, product: str = "",
                         max_lines: int | None = None) -> MarketData:
    """Recorded Advanced Trade frames (JSONL ``{"t_ns", "frame"}``) to market data, through the live
    Coinbase codec (see the module docstring)."""
    files = data_files(path)
    out = StreamBuilder(unit)
    reader = _CoinbaseReader(out, product)
    duplicates = 0
    lines = 0
    loads = orjson.loads
    for f, n, line in _lines(files):
        if max_lines is not None and lines >= max_lines:
            break
        if not line.strip():
            continue
        lines += 1
        where = f"{f.name}:{n}"
        try:
            rec = loads(line)
            t, frame = rec["t_ns"], rec["frame"]
            if isinstance(t, bool) or not isinstance(t, int) or not isinstance(frame, str):
                raise DataError("t_ns must be an integer and frame a string")
            msg = loads(frame)
        except (orjson.JSONDecodeError, TypeError, KeyError) as e:
            raise DataError(f"{where}: not a Coinbase frame record: {e!r}") from None
        except DataError as e:
            raise DataError(f"{where}: {e}") from None
        if not isinstance(msg, dict):
            raise DataError(f"{where}: frame is not a JSON object")
        try:
            dup = reader.on_message(t, msg)
        except DataError as e:
            raise DataError(f"{where}: {e}") from None
        if dup:
            # a frame seen again (a recorder's retry, a resend): applying it twice would corrupt the book
            duplicates += 1
            if duplicates == 1:
                log.warning("%s: sequence_num %s again (expected %s): duplicated frame skipped",
                            where, msg.get("sequence_num"), reader.feed.expected_seq)
    if duplicates:
        log.warning("%s: %d duplicated frame(s) skipped", path, duplicates)
    return out.build(str(path), COINBASE, reader.feed.product_id, lines, duplicates=duplicates)
