"""The analytics views, against numbers worked out by hand from the records written."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import psycopg
from db_journals import ship

from fastmm.journal import Journal

T0 = 1_764_748_800_000_000_000      # 2025-12-03 08:00:00 UTC
S = 1_000_000_000
TICK_E8 = 50_000_000                # 0.50 PYUSD


def test_views_compute_pnl_capture_markouts_ratio_latency_and_candles(tmp_path: Path, db: str) -> None:
    j = Journal(tmp_path / "alpha" / "journal.jsonl")
    mid = 180_000 * TICK_E8                          # 90,000.00
    j.append("mark", T0, fair_mid_e8=mid)
    j.append("pnl", T0, position_lots=0, realized_e8=0, unrealized_e8=0, fees_e8=0, fair_mid_e8=mid)
    j.append("order", T0 + S // 10, cl_ord_id="b1", side="1", price_ticks=179_990, qty_lots=100)   # 5 below
    j.append("order", T0 + S // 10, cl_ord_id="s1", side="2", price_ticks=180_010, qty_lots=100)
    j.append("replace", T0 + S // 5, cl_ord_id="s2", orig_cl_ord_id="s1", side="2", price_ticks=180_020,
             qty_lots=100)
    # the bid fills 400 ms after it was sent: bought 0.01 BTC at 89,995.00, mid 90,000.00
    j.append("fill", T0 + S // 2, cl_ord_id="b1", exec_id="E1", side="1", px_ticks=179_990, qty_lots=100,
             leaves_lots=0, liquidity=1, fee="0")
    j.append("mark", T0 + S + S // 2, fair_mid_e8=mid + 10 * TICK_E8)     # +5.00 a second later
    j.append("mark", T0 + 2 * S + S // 3, fair_mid_e8=mid - 4 * TICK_E8)
    j.append("pnl", T0 + 2 * S, position_lots=100, realized_e8=0, unrealized_e8=10 * 100_000_000 // 100,
             fees_e8=0, fair_mid_e8=mid + 10 * TICK_E8)
    j.append("pnl", T0 + 3600 * S + S, position_lots=100, realized_e8=0, unrealized_e8=-200_000_000,
             fees_e8=5, fair_mid_e8=mid)
    j.close()
    ship(tmp_path, db, "alpha")
    with psycopg.connect(db, password=os.environ["FASTMM_DB_PASSWORD"]) as c:
        row = c.execute("SELECT level_ticks, capture_e8, capture_bps, markout_1s_e8, markout_5s_e8, "
                        "markout_60s_e8 FROM fill_markouts").fetchone()
        # captured 5.00 on 0.01 BTC = 0.05 PYUSD; 1 s later the mid is 90,005: +10.00 x 0.01 = 0.10;
        # 5 s and 60 s later the last mark is 89,998: +3.00 x 0.01 = 0.03
        assert row[0] == 10
        assert row[1] == 5_000_000
        assert round(row[2], 4) == round(Decimal(5) * 10_000 / Decimal("89995"), 4)
        assert row[3:] == (10_000_000, 3_000_000, 3_000_000)
        lvl = c.execute("SELECT level_ticks, fills, qty_lots, capture_e8 FROM markouts_by_level").fetchall()
        assert lvl == [(10, 1, 100, 5_000_000)]
        fr = c.execute("SELECT orders, fills, quoted_lots, filled_lots, fill_ratio FROM fill_ratio").fetchone()
        assert fr[:4] == (3, 1, 300, 100) and round(fr[4], 4) == Decimal("0.3333")
        lat = c.execute("SELECT latency_ms FROM order_to_fill").fetchall()
        assert [float(x) for (x,) in lat] == [400.0]
        hours = c.execute("SELECT extract(hour FROM bucket AT TIME ZONE 'UTC'), total_e8, change_e8, "
                          "position_lots FROM pnl_hourly ORDER BY bucket").fetchall()
        assert [(int(h), t, ch, p) for h, t, ch, p in hours] == [(8, 10_000_000, 10_000_000, 100),
                                                                 (9, -200_000_005, -210_000_005, 100)]
        days = c.execute("SELECT total_e8, change_e8 FROM pnl_daily").fetchall()
        assert days == [(-200_000_005, -200_000_005)]
        c1s = c.execute("SELECT open_e8, high_e8, low_e8, close_e8, marks FROM candles_1s ORDER BY bucket").fetchall()
        assert c1s == [(mid, mid, mid, mid, 1), (mid + 10 * TICK_E8,) * 4 + (1,), (mid - 4 * TICK_E8,) * 4 + (1,)]
        c1m = c.execute("SELECT open_e8, high_e8, low_e8, close_e8, marks FROM candles_1m").fetchall()
        assert c1m == [(mid, mid + 10 * TICK_E8, mid - 4 * TICK_E8, mid - 4 * TICK_E8, 3)]
