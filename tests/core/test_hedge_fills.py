"""HedgeFills: a Kraken order's cumulative execution -> whole-lot fills, exec ids, carry; no I/O."""

from __future__ import annotations

import pytest

from fastmm.core.hedge_fills import HedgeFills, HedgeSlice, Refused

LOT = 10_000


def test_sub_lot_volume_is_carried_and_published_with_the_next_slice() -> None:
    hf = HedgeFills(LOT)
    first = hf.observe("h1l", "TX1", 300_000, 5_000, 335_000_000, 871_000, closed=False)
    assert isinstance(first, HedgeSlice)
    assert (first.exec_id, first.lots, first.carry_e8, first.publish) == ("TX1:5000", 0, 5_000, False)
    second = hf.observe("h1l", "TX1", 300_000, 200_000, 13_400_000_000, 34_840_000, closed=False)
    assert isinstance(second, HedgeSlice)
    assert (second.exec_id, second.lots, second.carry_e8, second.publish) == ("TX1:200000", 20, 0, True)
    assert second.price_e8 == 6_700_000_000_000 and second.fee_e8 == 33_969_000   # this slice's fee
    assert hf.count == 1
    assert hf.observe("h1l", "TX1", 300_000, 200_000, 13_400_000_000, 34_840_000, closed=False) is None


def test_the_final_remainder_is_rounded_to_the_nearest_lot() -> None:
    hf = HedgeFills(LOT)
    up = hf.observe("a", "T", 0, 16_000, 1_072_000_000, 0, closed=True)
    assert isinstance(up, HedgeSlice) and (up.lots, up.carry_e8) == (2, -4_000)
    down = HedgeFills(LOT).observe("b", "T", 0, 14_000, 938_000_000, 0, closed=True)
    assert isinstance(down, HedgeSlice) and (down.lots, down.carry_e8) == (1, 4_000)


def test_a_restart_carries_on_and_publishes_nothing_twice() -> None:
    hf = HedgeFills(LOT, executed={"h": (200_000, 13_400_000_000, 34_840_000)}, carry_e8={"h": 5_000},
                    published={"TX1:200000"})
    again = hf.observe("h", "TX1", 300_000, 200_000, 13_400_000_000, 34_840_000, closed=True)
    assert again is None
    more = hf.observe("h", "TX1", 300_000, 300_000, 20_110_000_000, 52_286_000, closed=False)
    assert isinstance(more, HedgeSlice)
    assert (more.lots, more.carry_e8, more.price_e8, more.fee_e8) == (10, 5_000, 6_710_000_000_000, 17_446_000)
    fresh = HedgeFills(LOT, published={"TX1:300000"})
    seen = fresh.observe("h", "TX1", 300_000, 300_000, 20_110_000_000, 52_286_000, closed=True)
    assert isinstance(seen, HedgeSlice) and seen.lots == 30 and not seen.publish


def test_a_lot_size_other_than_trueX_s_is_taken_from_the_instrument() -> None:
    hf = HedgeFills(100_000)      # a 0.001 BTC lot
    sl = hf.observe("h", "T", 0, 250_000, 1, 0, closed=False)
    assert isinstance(sl, HedgeSlice) and (sl.lots, sl.carry_e8) == (2, 50_000)
    with pytest.raises(ValueError):
        HedgeFills(0)


@pytest.mark.parametrize(("volume", "vol", "cost", "why"), [
    (300_000, 900_000, 60_000_000_000, "above the order volume"),
    (300_000, 100_000, -1, "absurd"),
])
def test_an_impossible_execution_is_refused_and_changes_nothing(volume: int, vol: int, cost: int,
                                                                why: str) -> None:
    hf = HedgeFills(LOT)
    out = hf.observe("h", "T", volume, vol, cost, 0, closed=False)
    assert isinstance(out, Refused) and why in out.problem
    assert hf.executed == {} and hf.count == 0


def test_vol_exec_going_back_is_refused() -> None:
    hf = HedgeFills(LOT)
    hf.observe("h", "T", 300_000, 100_000, 6_700_000_000, 0, closed=False)
    out = hf.observe("h", "T", 300_000, 50_000, 3_350_000_000, 0, closed=False)
    assert isinstance(out, Refused) and "went back" in out.problem
