"""The quoter's position publish never raises (issue 16: a 1e11 BTC fill booked by an older version
raised OverflowError in publish_position and froze the position channel): absurd values are clamped."""

from __future__ import annotations

import os
from pathlib import Path

from fastmm.config import Config
from fastmm.core.types import OrderFilled, Side
from fastmm.journal import Journal
from fastmm.procs.quoter import Quoter
from fastmm.shm import LatestValue, unlink_instance
from fastmm.shm.records import POSITION


def test_publish_clamps_absurd_values_to_int64(tmp_path: Path) -> None:
    instance = f"qpos{os.getpid()}"
    ch = LatestValue.create(instance, "position", POSITION)
    try:
        with Journal(tmp_path / "j.jsonl") as j:
            q = Quoter(Config(), None, j, {}, None, None, ch)
            huge = OrderFilled("old", "x", Side.BUY, 120_000, 10**15, 0)   # 1e11 BTC, as recovery once booked
            q.core.inventory.on_truex_fill(huge.side, huge.last_px_ticks, huge.last_qty_lots)
            q.core.pnl.on_truex_fill(0, huge)
            q.core.pnl.on_mark(0, 1e6)
            q.publish_position(1)
            assert ch.read() > 0
            r = ch.rx[0]
            assert int(r["position_lots"]) == 10**15
            assert int(r["unrealized_e8"]) in ((1 << 63) - 1, -((1 << 63) - 1))
            q.publish_position(2)                                         # and again: not frozen
            assert ch.read() > 0 and int(ch.rx[0]["t_pub"]) == 2
    finally:
        ch.close()
        unlink_instance(instance)
