"""The firm-wide cap as room per side (fastmm.core.firm_limit) and the quote engine taking it."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from fastmm.config import Config, InventoryConfig, QuotingConfig
from fastmm.core.firm_limit import FirmView, firm_room, view_from_record
from fastmm.core.trading_core import TradingCore
from fastmm.shm.records import FIRM

LOT = 10_000            # 0.0001 BTC in 1e-8
BTC = 100_000_000
S = 1_000_000_000
T0 = 1_700_000_000 * S


def test_room_is_the_cap_less_the_firm_position_on_each_side() -> None:
    view = FirmView(others_position_e8=3 * BTC, others_live=2, current=True)
    # own +1 BTC, others +3: firm +4 under a cap of 5: 1 BTC more may be bought, 9 sold
    assert firm_room(10_000, LOT, 5 * BTC, view, False) == (10_000, 90_000)
    # firm over the cap: nothing more on the buy side, whatever the own position
    assert firm_room(30_000, LOT, 5 * BTC, view, False) == (0, 110_000)
    short = FirmView(-6 * BTC, 1, True)
    assert firm_room(0, LOT, 5 * BTC, short, False) == (110_000, 0)
    assert firm_room(0, LOT, 0, view, False) is None               # no cap configured


def test_without_a_current_view_own_limits_or_only_reducing() -> None:
    stale = FirmView(0, 0, current=False)
    assert firm_room(2_500, LOT, 5 * BTC, stale, False) is None
    assert firm_room(2_500, LOT, 5 * BTC, None, False) is None
    assert firm_room(2_500, LOT, 5 * BTC, stale, True) == (0, 2_500)
    assert firm_room(-700, LOT, 5 * BTC, None, True) == (700, 0)
    assert firm_room(0, LOT, 0, None, True) == (0, 0)


def test_view_from_the_shared_memory_record_ages_out() -> None:
    rec = np.zeros(1, FIRM)[0]
    rec["redis_up"], rec["t_ok"], rec["others_position_e8"], rec["others_live"] = 1, 10 * S, -5, 1
    assert view_from_record(rec, 12 * S, 3 * S) == FirmView(-5, 1, True)
    assert not view_from_record(rec, 14 * S, 3 * S).current
    rec["redis_up"] = 0
    assert not view_from_record(rec, 10 * S, 3 * S).current


def _core() -> TradingCore:
    cfg = Config(quoting=QuotingConfig(levels=3, base_size_btc=Decimal("0.1"), size_decay=1.0),
                 inventory=InventoryConfig())
    return TradingCore(cfg, cl_ord_prefix="f", rate_guard_ms=0)


def _sides(core: TradingCore, now: int) -> tuple[int, int]:
    bids, asks = core.engine.desired(now)
    return sum(q for _, q in bids), sum(q for _, q in asks)


def test_quote_engine_takes_the_smaller_of_own_and_firm_room() -> None:
    c = _core()
    c.engine.resume()
    c.on_price(T0, 100_000.0, 0.9, False)
    full = _sides(c, T0)
    assert full == (3000, 3000)                       # 3 levels of 0.1 BTC each side
    c.engine.firm_room = (1500, 10**9)               # the firm may buy only 0.15 BTC more
    bid, ask = _sides(c, T0)
    assert bid <= 1500 and ask == 3000
    c.engine.firm_room = (0, 0)                      # Redis down, stop opening, flat: nothing
    assert _sides(c, T0) == (0, 0)
    c.engine.firm_room = None
    assert _sides(c, T0) == full
