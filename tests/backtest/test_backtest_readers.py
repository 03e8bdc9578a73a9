"""Readers: the Binance capture, futures streams in contracts, Coinbase frames, and clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest

from fastmm.backtest.market import ASK, BID, DEPTH, TOP, TRADE, MarketData, SizeUnit
from fastmm.backtest.readers import BINANCE, COINBASE, load_market_data, sniff
from fastmm.data.binance import read_capture, replay
from fastmm.data.book import L2Book
from fastmm.data.events import BookSnapshot, BookTicker, DepthDiff, Trade
from fastmm.data.paths import binance_capture_dir
from fastmm.units import DataError

T0 = 1_700_000_000_000_000_000
TIME = "2023-02-09T20:32:50.714964855Z"    # a trade's venue time (the live codec reads it)


def write_lines(path: Path, lines: list[str], gz: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def binance_line(t: int, stream: str | None, data: dict) -> str:
    payload = data if stream is None else {"stream": stream, "data": data}
    return f"{t} {orjson.dumps(payload).decode()}"


def test_the_capture_slice_matches_the_reference_reader(capture_slice: MarketData) -> None:
    md = capture_slice
    assert md.fmt == f"{BINANCE}/spot" and md.symbol == "btcusdt" and md.lines == 15_000
    # the same events as fastmm.data's own reader, from the snapshot on, in the same order
    ref = list(replay(read_capture(binance_capture_dir(), max_lines=15_000)))
    start = next(i for i, e in enumerate(ref) if isinstance(e, BookSnapshot))
    snap = ref[start]
    assert md.start_ns == snap.recv_ns and len(md.snap_bids) == len(snap.bids)
    depth = [(1, p, q) for e in ref[start:] if isinstance(e, DepthDiff) for p, q in e.bids]
    depth_a = [(2, p, q) for e in ref[start:] if isinstance(e, DepthDiff) for p, q in e.asks]
    rows = md.kind == DEPTH
    assert len(depth) + len(depth_a) == int(rows.sum())
    trades = [e for e in ref[start:] if isinstance(e, Trade)]
    tr = md.kind == TRADE
    assert [(e.price, e.qty, ASK if e.buyer_is_maker else BID) for e in trades] == list(
        zip(md.b[tr].tolist(), md.c[tr].tolist(), md.a[tr].tolist(), strict=True))
    tickers = [e for e in ref[start:] if isinstance(e, BookTicker)]
    assert int((md.kind == TOP).sum()) == len(tickers)
    assert np.all(np.diff(md.t) >= 0)


def spot_lines(with_ticker: bool = True) -> list[str]:
    lines = [
        binance_line(T0, "btcusdt@depth@100ms", {"e": "depthUpdate", "E": 1, "U": 5, "u": 9,
                                                   "b": [["100.00", "9.0"]], "a": []}),     # before: dropped
        binance_line(T0 + 1, None, {"lastUpdateId": 10, "bids": [["100.00", "1.0"], ["99.50", "2.0"]],
                                    "asks": [["101.00", "1.5"]]}),
        binance_line(T0 + 2, "btcusdt@depth@100ms", {"e": "depthUpdate", "E": 1, "U": 9, "u": 12,
                                                       "b": [["100.50", "0.5"]], "a": [["101.00", "0"]]}),
        binance_line(T0 + 3, "btcusdt@trade", {"e": "trade", "E": 1, "T": 1, "t": 1, "p": "100.50",
                                                 "q": "0.1", "m": True}),
        binance_line(T0 + 4, "btcusdt@depth@100ms", {"e": "depthUpdate", "E": 1, "U": 13, "u": 13,
                                                       "b": [], "a": [["101.50", "3"]]}),
    ]
    if with_ticker:
        lines.insert(3, binance_line(T0 + 2, "btcusdt@bookTicker",
                                     {"u": 12, "s": "BTCUSDT", "b": "100.50", "B": "0.5", "a": "101.50", "A": "3"}))
    return lines


def test_spot_capture_without_book_ticker_derives_tops_from_the_book(tmp_path: Path) -> None:
    md = load_market_data(write_lines(tmp_path / "c.gz", spot_lines(with_ticker=False), gz=True))
    tops = md.kind == TOP
    # snapshot 100/101; diff: bid 100.50, ask 101 gone (no ask left); then ask 101.50
    assert list(zip(md.a[tops].tolist(), md.b[tops].tolist(), strict=True)) == [
        (10_000_000_000, 10_100_000_000), (10_050_000_000, 10_150_000_000)]
    assert md.counts() == {"depth_rows": 3, "trades": 1, "tops": 2}
    book = L2Book()
    book.load([tuple(r) for r in md.snap_bids.tolist()], [tuple(r) for r in md.snap_asks.tolist()])
    for i in np.flatnonzero(md.kind == DEPTH):
        book.set_level("bid" if md.a[i] == BID else "ask", int(md.b[i]), int(md.c[i]))
    assert book.best_bid() == (10_050_000_000, 50_000_000) and book.best_ask() == (10_150_000_000, 300_000_000)


def test_spot_capture_with_book_ticker_uses_it(tmp_path: Path) -> None:
    md = load_market_data(write_lines(tmp_path / "c.txt", spot_lines(with_ticker=True)))
    tops = md.kind == TOP
    assert md.counts()["tops"] == 1 and int(md.a[tops][0]) == 10_050_000_000


def test_futures_streams_in_contracts(tmp_path: Path) -> None:
    # COIN-M: 100 USD per contract; aggTrade, bookTicker with "e", diffs chained by "pu"; a markPrice line
    lines = [
        binance_line(T0, None, {"lastUpdateId": 100, "E": 1, "T": 1, "bids": [["50000.0", "10"]],
                                "asks": [["50001.0", "20"]]}),
        binance_line(T0 + 1, "btcusd_perp@depth@0ms", {"e": "depthUpdate", "E": 1, "T": 1, "U": 95, "u": 101,
                                                         "pu": 94, "b": [["50000.0", "30"]], "a": []}),
        binance_line(T0 + 2, "btcusd_perp@depth@0ms", {"e": "depthUpdate", "E": 1, "T": 1, "U": 102, "u": 105,
                                                         "pu": 101, "b": [], "a": [["50001.0", "5"]]}),
        binance_line(T0 + 3, "btcusd_perp@aggTrade", {"e": "aggTrade", "E": 1, "a": 1, "p": "50000.0",
                                                        "q": "2", "f": 1, "l": 1, "T": 1, "m": False}),
        binance_line(T0 + 4, "btcusd_perp@bookTicker", {"e": "bookTicker", "u": 105, "s": "BTCUSD_PERP",
                                                          "b": "50000.0", "B": "30", "a": "50001.0", "A": "5",
                                                          "T": 1, "E": 1}),
        binance_line(T0 + 5, "btcusd_perp@markPrice", {"e": "markPriceUpdate", "E": 1, "p": "50000.5"}),
    ]
    md = load_market_data(write_lines(tmp_path / "f.txt", lines), size_unit="inverse:100")
    assert md.fmt == f"{BINANCE}/futures"
    # 10 contracts x 100 USD / 50000 = 0.02 BTC
    assert md.snap_bids.tolist() == [[5_000_000_000_000, 2_000_000]]
    d = md.kind == DEPTH
    assert md.c[d].tolist() == [6_000_000, 5 * 100 * 10**8 // 50_001]
    tr = md.kind == TRADE
    assert md.a[tr].tolist() == [BID] and md.c[tr].tolist() == [400_000]   # a buyer took 2 contracts
    lin = load_market_data(write_lines(tmp_path / "f2.txt", lines), size_unit=SizeUnit.parse("contract:0.001"))
    assert lin.snap_bids.tolist() == [[5_000_000_000_000, 1_000_000]]   # 10 x 0.001 BTC


@pytest.mark.parametrize(("line", "match"), [
    (binance_line(T0 + 2, "btcusdt@depth20@100ms", {"lastUpdateId": 11, "bids": [], "asks": []}), "partial book"),
    (binance_line(T0 + 2, "btcusdt@kline_1m", {"e": "somethingElse"}), "unknown Binance event"),
    (binance_line(T0 + 2, "btcusdt@depth", {"e": "depthUpdate", "E": 1, "U": 20, "u": 22, "b": [], "a": []}),
     "gap"),
    (binance_line(T0 + 2, "btcusdt@trade", {"e": "trade", "p": "1.0"}), "missing or bad field"),
    (f"{T0 + 2} {{not json", "unreadable line"),
    (binance_line(T0 + 2, "btcusdt@trade", {"e": "trade", "p": "1.0", "q": "-1", "m": True}), "trade with"),
])
def test_bad_binance_lines_are_clear_errors_naming_the_line(tmp_path: Path, line: str, match: str) -> None:
    lines = [*spot_lines()[1:3], line]
    with pytest.raises(DataError, match=match) as e:
        load_market_data(write_lines(tmp_path / "bad.txt", lines))
    assert "bad.txt:3" in str(e.value)


def test_unknown_formats_and_missing_data_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unrecognised market data format"):
        load_market_data(write_lines(tmp_path / "x.txt", ["time,price,size", "1,2,3"]))
    with pytest.raises(DataError, match="not found"):
        load_market_data(tmp_path / "missing.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no data files"):
        load_market_data(tmp_path / "empty")
    with pytest.raises(DataError, match="no depth snapshot"):
        load_market_data(write_lines(tmp_path / "nosnap.txt", [spot_lines()[2]]))
    with pytest.raises(DataError, match="size unit"):
        SizeUnit.parse("lots:3")


def cb(seq: int, channel: str, events: list) -> str:
    return orjson.dumps({"channel": channel, "client_id": "", "timestamp": "2023-02-09T20:32:50.714964855Z",
                         "sequence_num": seq, "events": events}).decode()


def frames_file(path: Path, frames: list[str]) -> Path:
    return write_lines(path, [orjson.dumps({"t_ns": T0 + i, "frame": f}).decode() for i, f in enumerate(frames)])


def coinbase_frames() -> list[str]:
    return [
        orjson.dumps({"channel": "subscriptions", "sequence_num": 0, "events": []}).decode(),
        cb(1, "l2_data", [{"type": "snapshot", "product_id": "BTC-USD", "updates": [
            {"side": "bid", "event_time": "x", "price_level": "100.00", "new_quantity": "1.5"},
            {"side": "offer", "event_time": "x", "price_level": "101.00", "new_quantity": "2"}]}]),
        cb(2, "market_trades", [{"type": "snapshot", "trades": [
            {"trade_id": "1", "product_id": "BTC-USD", "price": "99", "size": "1", "side": "BUY", "time": TIME}]}]),
        cb(3, "market_trades", [{"type": "update", "trades": [
            {"trade_id": "2", "product_id": "BTC-USD", "price": "100.00", "size": "0.25", "side": "BUY",
             "time": TIME}]}]),
        cb(4, "l2_data", [{"type": "update", "product_id": "BTC-USD", "updates": [
            {"side": "bid", "event_time": "x", "price_level": "100.00", "new_quantity": "1.25"},
            {"side": "bid", "event_time": "x", "price_level": "100.50", "new_quantity": "0.1"}]}]),
        cb(5, "heartbeats", [{"current_time": "x", "heartbeat_counter": "3"}]),
    ]


def test_coinbase_frames(tmp_path: Path) -> None:
    p = frames_file(tmp_path / "cb.jsonl", coinbase_frames())
    assert sniff(p) == COINBASE
    md = load_market_data(p)
    assert md.fmt == COINBASE and md.symbol == "BTC-USD"
    assert md.snap_bids.tolist() == [[10_000_000_000, 150_000_000]]
    tr = md.kind == TRADE
    # the snapshot's trade is history; the update's BUY maker means a seller took it
    assert list(zip(md.a[tr].tolist(), md.b[tr].tolist(), md.c[tr].tolist(), strict=True)) == [
        (ASK, 10_000_000_000, 25_000_000)]
    tops = md.kind == TOP
    assert list(zip(md.a[tops].tolist(), md.b[tops].tolist(), strict=True)) == [
        (10_000_000_000, 10_100_000_000), (10_050_000_000, 10_100_000_000)]
    assert md.counts()["depth_rows"] == 2


def test_coinbase_sequence_gap_and_bad_frames_are_errors(tmp_path: Path) -> None:
    frames = coinbase_frames()
    gap = frames[:3] + frames[4:]
    with pytest.raises(DataError, match="sequence_num 4, expected 3") as e:
        load_market_data(frames_file(tmp_path / "gap.jsonl", gap))
    assert "gap.jsonl:4" in str(e.value)
    bad = [*frames[:2], cb(2, "l2_data", [{"type": "update", "updates": [
        {"side": "sideways", "price_level": "1", "new_quantity": "1"}]}])]
    with pytest.raises(DataError, match="bad l2_data message: side 'sideways'"):
        load_market_data(frames_file(tmp_path / "bad.jsonl", bad))
    with pytest.raises(DataError, match="not a Coinbase frame record"):
        load_market_data(write_lines(tmp_path / "odd.jsonl", ['{"t_ns": 1, "frame": "x"}', '{"t_ns": 2}']))


def test_coinbase_frames_of_the_capture_read_like_the_capture_itself(tmp_path: Path) -> None:
    """The capture slice as Advanced Trade frames (l2_data + market_trades) and as a Binance capture
    without bookTicker give the same depth rows, trades and (book-derived) tops."""
    from fastmm.backtest.engine import run_backtest
    from fastmm.data.binance import read_lines
    from fastmm.units import format_e8

    raw = [line for n, line in zip(range(8000), read_lines(binance_capture_dir()), strict=False)
           if b"@bookTicker" not in line]
    (tmp_path / "bn.txt").write_bytes(b"".join(raw))
    frames: list[str] = []
    seq = 0
    t_last = 0

    def frame(t: int, channel: str, events: list) -> None:
        nonlocal seq, t_last
        t_last = max(t_last, t)
        frames.append(orjson.dumps({"t_ns": t_last, "frame": cb(seq, channel, events)}).decode())
        seq += 1

    def updates(bids: tuple, asks: tuple) -> list[dict]:
        return ([{"side": "bid", "event_time": "x", "price_level": format_e8(p), "new_quantity": format_e8(q)}
                 for p, q in bids]
                + [{"side": "offer", "event_time": "x", "price_level": format_e8(p), "new_quantity": format_e8(q)}
                   for p, q in asks])

    for ev in replay(read_capture(tmp_path / "bn.txt")):
        if isinstance(ev, BookSnapshot):
            frame(ev.recv_ns, "l2_data", [{"type": "snapshot", "product_id": "BTC-USD",
                                           "updates": updates(ev.bids, ev.asks)}])
        elif isinstance(ev, DepthDiff):
            frame(ev.recv_ns, "l2_data", [{"type": "update", "product_id": "BTC-USD",
                                           "updates": updates(ev.bids, ev.asks)}])
        elif isinstance(ev, Trade):
            maker = "BUY" if ev.buyer_is_maker else "SELL"
            frame(ev.recv_ns, "market_trades", [{"type": "update", "trades": [
                {"trade_id": str(ev.trade_id), "product_id": "BTC-USD", "price": format_e8(ev.price),
                 "size": format_e8(ev.qty), "side": maker, "time": TIME}]}])
    (tmp_path / "cb.jsonl").write_text("\n".join(frames) + "\n")
    a = load_market_data(tmp_path / "bn.txt")
    b = load_market_data(tmp_path / "cb.jsonl")
    assert a.fmt.startswith(BINANCE) and b.fmt == COINBASE
    assert a.counts() == b.counts() and a.counts()["tops"] > 30
    for col in ("kind", "t", "a", "b", "c", "d", "snap_bids", "snap_asks"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
    # and a backtest runs on it the same way
    from bt_helpers import active_config

    ra, rb = run_backtest(active_config(), a), run_backtest(active_config(), b)
    assert ra.fills and ra.fills == rb.fills


def quiet_book_frames(seconds: int = 12) -> list[str]:
    """A snapshot, then an update every 0.5 s that changes only a level behind the touch."""
    lvl = [{"side": "bid", "event_time": "x", "price_level": "60000.00", "new_quantity": "1"},
           {"side": "offer", "event_time": "x", "price_level": "60000.50", "new_quantity": "1"}]
    out = [orjson.dumps({"t_ns": T0, "frame": cb(0, "l2_data", [
        {"type": "snapshot", "product_id": "BTC-USD", "updates": lvl}])}).decode()]
    for i in range(1, 2 * seconds + 1):
        deep = [{"side": "bid", "event_time": "x", "price_level": "59990.00", "new_quantity": str(i)}]
        out.append(orjson.dumps({"t_ns": T0 + i * 500_000_000, "frame": cb(i, "l2_data", [
            {"type": "update", "product_id": "BTC-USD", "updates": deep}])}).decode())
    return out


def test_a_quiet_coinbase_book_still_gives_tops_and_the_backtest_never_sees_it_stale(tmp_path: Path) -> None:
    from fastmm.backtest.engine import run_backtest
    from fastmm.config import Config

    p = write_lines(tmp_path / "quiet.jsonl", quiet_book_frames())
    md = load_market_data(p)
    tops = md.t[md.kind == TOP]
    assert len(tops) == 25 and int(np.diff(tops).max()) == 500_000_000
    res = run_backtest(Config(), md)
    assert not [e for e in res.risk_events if "Trip" in e], res.risk_events
    assert res.series["mid"][-1] > 0          # the fair price never went away


def test_binance_derived_tops_come_with_every_diff_even_when_the_touch_does_not_move(tmp_path: Path) -> None:
    lines = [binance_line(T0, None, {"lastUpdateId": 10, "bids": [["100.00000000", "1.00000000"]],
                                     "asks": [["101.00000000", "1.00000000"]]})]
    for i in range(1, 9):
        lines.append(binance_line(T0 + i * 1_000_000_000, "btcusdt@depth@100ms", {
            "e": "depthUpdate", "E": 1, "U": 10 + i, "u": 10 + i, "b": [["99.00000000", f"{i}.00000000"]],
            "a": []}))
    md = load_market_data(write_lines(tmp_path / "q.txt", lines))
    assert int((md.kind == TOP).sum()) == 9      # the snapshot's and one per diff


def test_a_coin_m_recording_without_a_size_unit_is_a_clear_error(tmp_path: Path) -> None:
    lines = [
        binance_line(T0, None, {"lastUpdateId": 100, "bids": [["50000.0", "10"]], "asks": [["50001.0", "20"]]}),
        binance_line(T0 + 1, "btcusd_perp@depth@0ms", {"e": "depthUpdate", "E": 1, "U": 95, "u": 101, "pu": 94,
                                                         "b": [["50000.0", "30"]], "a": []}),
    ]
    p = write_lines(tmp_path / "coinm.txt", lines)
    with pytest.raises(DataError, match=r"COIN-M .*--size-unit inverse:100"):
        load_market_data(p)
    assert load_market_data(p, size_unit="inverse:100").snap_bids.tolist() == [[5_000_000_000_000, 2_000_000]]
    # USD-M quarterlies are linear in the base asset: no unit needed
    usdm = [lines[0], lines[1].replace("btcusd_perp", "btcusdt_240927")]
    assert load_market_data(write_lines(tmp_path / "usdm.txt", usdm)).fmt == f"{BINANCE}/futures"


def test_a_duplicated_coinbase_frame_is_skipped_and_reported_as_a_duplicate(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    frames = coinbase_frames()
    dup = [*frames[:4], frames[3], *frames[4:]]          # market_trades seq 3 twice
    md = load_market_data(frames_file(tmp_path / "dup.jsonl", dup))
    assert md.duplicates == 1 and md.describe()["duplicates"] == 1
    assert int((md.kind == TRADE).sum()) == 1            # the trade is booked once
    assert any("duplicated frame" in r.getMessage() for r in caplog.records)
    assert not any("lost" in r.getMessage() for r in caplog.records)
