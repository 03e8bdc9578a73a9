"""``fastmm sim --data FILE.jsonl``: recorded Coinbase frames drive every simulator, not only a Binance capture."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from fastmm.config import Config
from fastmm.data.events import BookSnapshot, DepthDiff, Trade
from fastmm.sim import venues as sim_venues
from fastmm.units import DataError

T0 = 1_700_000_000_000_000_000
SUB_L2 = '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}'


def frame(seq: int, channel: str, events: list) -> str:
    return orjson.dumps({"channel": channel, "client_id": "", "timestamp": "2023-02-09T20:32:50.714964855Z",
                         "sequence_num": seq, "events": events}).decode()


def lvl(side: str, px: str, qty: str) -> dict:
    return {"side": side, "event_time": "2023-02-09T20:32:50.714964855Z", "price_level": px,
            "new_quantity": qty}


def frames_file(path: Path) -> Path:
    frames = [
        frame(0, "l2_data", [{"type": "snapshot", "product_id": "BTC-USD", "updates": [
            lvl("bid", "60000.00", "1.5"), lvl("offer", "60001.00", "2")]}]),
        frame(1, "market_trades", [{"type": "update", "trades": [
            {"trade_id": "9", "product_id": "BTC-USD", "price": "60001.00", "size": "0.25", "side": "SELL",
             "time": "2023-02-09T20:32:50.8Z"}]}]),
        frame(2, "l2_data", [{"type": "update", "product_id": "BTC-USD", "updates": [
            lvl("bid", "60000.50", "0.1")]}]),
    ]
    path.write_text("".join(orjson.dumps({"t_ns": T0 + i * 1_000_000, "frame": f}).decode() + "\n"
                            for i, f in enumerate(frames)))
    return path


def test_frames_become_the_capture_events_the_truex_and_kraken_simulators_read(tmp_path: Path) -> None:
    evs = list(sim_venues.frame_events(frames_file(tmp_path / "f.jsonl"), "BTC-USD"))
    assert [type(e) for e in evs] == [BookSnapshot, Trade, DepthDiff]
    snap, tr, diff = evs
    assert snap.bids == ((6_000_000_000_000, 150_000_000),) and snap.last_update_id == 0
    assert (tr.price, tr.qty, tr.buyer_is_maker) == (6_000_100_000_000, 25_000_000, False)   # a buyer took it
    assert (diff.first_id, diff.last_id, diff.bids) == (1, 1, ((6_000_050_000_000, 10_000_000),))


def test_sim_on_a_frames_file_serves_its_book_on_every_venue(tmp_path: Path) -> None:
    cfg = Config()
    cfg = replace(cfg, sim=replace(cfg.sim, data_dir=str(frames_file(tmp_path / "f.jsonl")), speed=0.0))

    async def main() -> tuple[dict, int]:
        v = await sim_venues.start(cfg, ephemeral=True)
        try:
            async with connect(v.addresses["coinbase ws"]) as ws:
                await ws.send(SUB_L2)
                while True:
                    msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                    if msg.get("channel") == "l2_data":
                        break
            for _ in range(200):
                if v.truex.exchange.book.best_bid() is not None:
                    break
                await asyncio.sleep(0.01)
            bb = v.truex.exchange.book.best_bid()
            return msg, bb[0] if bb else 0
        finally:
            await v.stop()

    msg, truex_bid = asyncio.run(asyncio.wait_for(main(), 30))
    ev = msg["events"][0]
    assert ev["type"] == "snapshot" and {u["price_level"] for u in ev["updates"]} >= {"60000", "60001"}
    assert truex_bid >= 6_000_000_000_000     # the TrueX simulator's reference book came from the frames


def test_sim_on_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.jsonl"
    bad.write_text("hello\n")
    cfg = Config()
    with pytest.raises(DataError, match="unrecognised market data format"):
        sim_venues.build(replace(cfg, sim=replace(cfg.sim, data_dir=str(bad))), ephemeral=True)


def test_fastmm_sim_on_an_unreadable_file_prints_one_error_line(tmp_path: Path) -> None:
    from fastmm.cli import main

    bad = tmp_path / "x.jsonl"
    bad.write_text("hello\n")
    assert main(["sim", "--data", str(bad)]) == 2
