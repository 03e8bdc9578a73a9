"""Binance capture reader: typed events, exact units, the update-id rule, bad lines, data path."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from fastmm.data import binance_capture_dir, data_dir
from fastmm.data.binance import DepthSync, SequenceGap, capture_files, parse_line, read_capture, replay
from fastmm.data.events import BookSnapshot, BookTicker, DepthDiff, Trade
from fastmm.units import DataError, format_e8, parse_e8

CAPTURE = binance_capture_dir()


def _line(recv: int, body: str) -> bytes:
    return f"{recv} {body}\n".encode()


def test_parse_each_kind_exactly() -> None:
    d = parse_line(_line(5, '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,'
                          '"s":"BTCUSDT","U":10,"u":12,"b":[["61737.63000000","0.00000000"]],'
                          '"a":[["61837.64000000","1.54698000"]]}}'))
    assert d == DepthDiff(5, 1723161255208, 10, 12, ((6173763000000, 0),), ((6183764000000, 154698000),))
    t = parse_line(_line(6, '{"stream":"btcusdt@trade","data":{"e":"trade","E":2,"s":"BTCUSDT",'
                          '"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1,"m":true,"M":true}}'))
    assert t == Trade(6, 2, 1, 3735683259, 6183763000000, 2000000, True)
    assert t.taker_side == "sell"
    b = parse_line(_line(7, '{"stream":"btcusdt@bookTicker","data":{"u":9,"s":"BTCUSDT","b":"1.00000000",'
                          '"B":"2.00000000","a":"3.00000000","A":"4.00000000"}}'))
    assert b == BookTicker(7, 9, 10**8, 2 * 10**8, 3 * 10**8, 4 * 10**8)
    s = parse_line(_line(8, '{"lastUpdateId":11,"bids":[["2.5","1"]],"asks":[["3","0.1"]]}'))
    assert s == BookSnapshot(8, 11, ((250000000, 10**8),), ((3 * 10**8, 10**7),))


@pytest.mark.parametrize("line", [
    b"", b"nospace", b"abc {}", b"5 not json", b"5 [1,2]", b'5 {"stream":"x@unknown","data":{}}',
    b'5 {"stream":"btcusdt@trade","data":{"p":"1"}}',
    b'5 {"stream":"btcusdt@depth","data":{"E":1,"U":1,"u":2,"b":[["1e5","1"]],"a":[]}}',
    b'5 {"stream":"btcusdt@depth","data":{"E":1,"U":1,"u":2,"b":5,"a":[]}}',
    b'5 {"lastUpdateId":"x","bids":[],"asks":[]}',
    b'5 {"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1.123456789","B":"1","a":"1","A":"1"}}',
    b'5 {"stream":7,"data":{}}',
])
def test_bad_lines_raise_data_error(line: bytes) -> None:
    with pytest.raises(DataError):
        parse_line(line)


def test_units_roundtrip_and_reject() -> None:
    assert parse_e8("61837.63000000") == 6183763000000
    assert parse_e8("0.1") == 10_000_000 and parse_e8("-1.5") == -150_000_000 and parse_e8("7") == 7 * 10**8
    assert format_e8(6183763000000) == "61837.63" and format_e8(10**8) == "1" and format_e8(0) == "0"
    assert format_e8(-150_000_000, 2) == "-1.50"
    for bad in ("", "-", ".", "1e5", " 1", "1_0", "1.123456789", "0x10", None):
        with pytest.raises(DataError):
            parse_e8(bad)  # type: ignore[arg-type]


def test_bad_line_in_file_names_line_number(tmp_path: Path) -> None:
    f = tmp_path / "cap.gz"
    with gzip.open(f, "wb") as fh:
        fh.write(_line(1, '{"lastUpdateId":1,"bids":[],"asks":[]}'))
        fh.write(b"2 {broken\n")
    it = read_capture(f)
    assert isinstance(next(it), BookSnapshot)
    with pytest.raises(DataError, match="line 2"):
        next(it)


def test_missing_capture_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        capture_files(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no \.gz"):
        capture_files(tmp_path)


def test_data_dir_from_env_and_default() -> None:
    assert data_dir({"FASTMM_DATA_DIR": "/x/y"}) == Path("/x/y")
    repo = Path(__file__).resolve().parents[2]
    assert data_dir({}) == (repo / ".." / "shared" / "data").resolve()
    assert data_dir({"FASTMM_DATA_DIR": "rel"}) == (repo / "rel").resolve()


def test_full_capture_counts_order_and_continuity() -> None:
    """The data README's numbers: 99,574 lines = 1 snapshot, 6,495 diffs, 19,904 trades, 73,174 tickers,
    in receive order, update ids without a gap across the two files."""
    files = capture_files(CAPTURE)
    assert [f.name for f in files] == ["btcusdt_20240808.gz", "btcusdt_20240809.gz"]
    counts = {BookSnapshot: 0, DepthDiff: 0, Trade: 0, BookTicker: 0}
    prev_recv = 0
    prev_u = None
    for ev in read_capture(CAPTURE):
        counts[type(ev)] += 1
        assert ev.recv_ns >= prev_recv
        prev_recv = ev.recv_ns
        if isinstance(ev, DepthDiff):
            if prev_u is not None:
                assert ev.first_id == prev_u + 1
            prev_u = ev.last_id
    assert counts == {BookSnapshot: 1, DepthDiff: 6495, Trade: 19904, BookTicker: 73174}


def test_replay_applies_exactly_the_diffs_after_the_snapshot() -> None:
    events = list(read_capture(CAPTURE, max_lines=2000))
    out = list(replay(events))
    i = next(k for k, e in enumerate(out) if isinstance(e, BookSnapshot))
    snap = out[i]
    diffs = [e for e in out if isinstance(e, DepthDiff)]
    assert all(out.index(d) > i for d in diffs)
    assert diffs[0].first_id <= snap.last_update_id + 1 <= diffs[0].last_id
    for a, b in itertools.pairwise(diffs):
        assert b.first_id == a.last_id + 1
    stale = [e for e in events if isinstance(e, DepthDiff) and e.last_id <= snap.last_update_id]
    assert stale and not set(stale) & set(diffs)
    assert len(diffs) + len(stale) == sum(isinstance(e, DepthDiff) for e in events)


def _diff(first: int, last: int) -> DepthDiff:
    return DepthDiff(0, 0, first, last, (), ())


def test_depth_sync_rules() -> None:
    s = DepthSync()
    assert not s.on_diff(_diff(1, 5)) and not s.on_diff(_diff(6, 9)) and not s.on_diff(_diff(10, 12))
    released = s.on_snapshot(BookSnapshot(0, 7, (), ()))
    assert [(d.first_id, d.last_id) for d in released] == [(6, 9), (10, 12)]
    assert s.dropped == 1
    assert s.on_diff(_diff(13, 20))
    with pytest.raises(SequenceGap, match="2 ids missing"):
        s.on_diff(_diff(23, 30))


def test_depth_sync_first_diff_must_cover_the_snapshot() -> None:
    s = DepthSync()
    s.on_snapshot(BookSnapshot(0, 100, (), ()))
    assert not s.on_diff(_diff(90, 100))  # stale
    with pytest.raises(SequenceGap, match="does not cover 101"):
        s.on_diff(_diff(105, 110))


def test_replay_raises_on_a_gap_in_the_stream() -> None:
    events = [BookSnapshot(0, 10, (), ()), _diff(9, 12), _diff(14, 15)]
    with pytest.raises(SequenceGap):
        list(replay(events))
