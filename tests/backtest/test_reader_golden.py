"""The readers' output over every recording in the shared data, pinned: the backtest reads recordings
through the live codecs (Binance depth sync, Coinbase codec), and that must not change one row.

Each case is read whole and reduced to a digest of every column plus its counts. The digests were taken
from the readers before they moved onto the live codecs. Besides the recordings as they are (tops from
bookTicker), two cases drop the bookTicker lines (tops derived from the rebuilt book, spot and futures)
and one turns the spot capture into Coinbase Advanced Trade frames (the Coinbase codec's path).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import orjson
import pytest

from fastmm.backtest.market import MarketData
from fastmm.backtest.readers import load_market_data
from fastmm.data.binance import read_capture, read_lines, replay
from fastmm.data.events import BookSnapshot, DepthDiff, Trade
from fastmm.data.paths import data_dir
from fastmm.units import format_e8

HEAD_LINES = 20_000

# case -> (digest of every column, lines, depth rows, trades, tops)
EXPECTED: dict[str, tuple[str, int, int, int, int]] = {
    'binance-spot-btcusdt-20240808': ('5d9c5f534196cf8068113ebd39fae936', 99574, 298094, 19903, 73171),
    'binance-spot-ethusdt-20240808': ('4ee1dd9f428b5a7e713bde179e2a56a6', 79744, 272752, 14515, 58755),
    'binance-usdm-btcusdt-20240808': ('cc234b4921697f3d433f94be9ee7901b', 93954, 443262, 21308, 66046),
    'binance-usdm-ethusdt-20240808': ('454a1b9e192523cb0fd913eea81aa5ce', 74655, 428411, 14075, 53960),
    'spot-btcusdt-derived-tops': ('da5ced1d390d20dc1ddd777b530b288e', 5571, 56156, 3588, 1980),
    'usdm-btcusdt-derived-tops': ('5042befb7a323ac211509b379204f0d8', 4623, 95651, 3019, 1595),
    'spot-btcusdt-as-coinbase-frames': ('16b000741807720034592c315186386f', 5569, 56156, 3588, 1980),
}


def digest(md: MarketData) -> tuple[str, int, int, int, int]:
    h = hashlib.sha256()
    for col in ("snap_bids", "snap_asks", "kind", "t", "a", "b", "c", "d"):
        h.update(np.ascontiguousarray(getattr(md, col), dtype=np.int64).tobytes())
    h.update(f"{md.fmt} {md.symbol} {md.start_ns} {md.duplicates}".encode())
    c = md.counts()
    return h.hexdigest()[:32], md.lines, c["depth_rows"], c["trades"], c["tops"]


def _recording(name: str) -> Path:
    p = data_dir() / name
    if not p.is_dir():
        pytest.skip(f"{p} not found (set FASTMM_DATA_DIR)")
    return p


def _without_tickers(src: Path, dst: Path) -> Path:
    kept = [line for _, line in zip(range(HEAD_LINES), read_lines(src), strict=False) if b"bookTicker" not in line]
    with gzip.open(dst, "wb") as f:
        f.write(b"".join(kept))
    return dst


def _as_coinbase_frames(src: Path, dst: Path) -> Path:
    """The Binance capture as the Advanced Trade frames a Coinbase recorder writes."""
    frames: list[bytes] = []
    seq = 0
    t_last = 0

    def frame(t: int, channel: str, events: list) -> None:
        nonlocal seq, t_last
        t_last = max(t_last, t)
        msg = {"channel": channel, "client_id": "", "timestamp": "2024-08-08T23:54:14.000000000Z",
               "sequence_num": seq, "events": events}
        frames.append(orjson.dumps({"t_ns": t_last, "frame": orjson.dumps(msg).decode()}))
        seq += 1

    def updates(bids: tuple, asks: tuple) -> list[dict]:
        return ([{"side": "bid", "price_level": format_e8(p), "new_quantity": format_e8(q)} for p, q in bids]
                + [{"side": "offer", "price_level": format_e8(p), "new_quantity": format_e8(q)}
                   for p, q in asks])

    for ev in replay(read_capture(src)):
        if isinstance(ev, BookSnapshot | DepthDiff):
            kind = "snapshot" if isinstance(ev, BookSnapshot) else "update"
            frame(ev.recv_ns, "l2_data", [{"type": kind, "product_id": "BTC-USD",
                                           "updates": updates(ev.bids, ev.asks)}])
        elif isinstance(ev, Trade):
            frame(ev.recv_ns, "market_trades", [{"type": "update", "trades": [
                {"trade_id": str(ev.trade_id), "product_id": "BTC-USD", "price": format_e8(ev.price),
                 "size": format_e8(ev.qty), "side": "BUY" if ev.buyer_is_maker else "SELL",
                 "time": "2024-08-08T23:54:14.000000000Z"}]}])
    dst.write_bytes(b"\n".join(frames) + b"\n")
    return dst


CASES = ["binance-spot-btcusdt-20240808", "binance-spot-ethusdt-20240808", "binance-usdm-btcusdt-20240808",
         "binance-usdm-ethusdt-20240808", "spot-btcusdt-derived-tops", "usdm-btcusdt-derived-tops",
         "spot-btcusdt-as-coinbase-frames"]


def read_case(case: str, tmp: Path) -> MarketData:
    if case.startswith("binance-"):
        return load_market_data(_recording(case))
    if case == "spot-btcusdt-derived-tops":
        return load_market_data(_without_tickers(_recording("binance-spot-btcusdt-20240808"), tmp / "s.gz"))
    if case == "usdm-btcusdt-derived-tops":
        return load_market_data(_without_tickers(_recording("binance-usdm-btcusdt-20240808"), tmp / "f.gz"))
    spot = _without_tickers(_recording("binance-spot-btcusdt-20240808"), tmp / "s.gz")
    return load_market_data(_as_coinbase_frames(spot, tmp / "cb.jsonl"))


@pytest.mark.parametrize("case", CASES)
def test_reader_output_is_unchanged(case: str, tmp_path: Path) -> None:
    assert digest(read_case(case, tmp_path)) == EXPECTED[case]


if __name__ == "__main__":     # print the table above (after a deliberate change of the readers' output)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for c in CASES:
            print(f"    {c!r}: {digest(read_case(c, Path(d)))!r},")
