"""PnLTracker: FIFO matching, fees per venue and liquidity, partial fills, statistics, events, identity."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.config import FeesConfig, InstrumentConfig, PnlConfig
from fastmm.core.money import FeeRate, MoneyScale, div_round, from_units, to_units
from fastmm.core.pnl import PnlChange, PnlSummary, PnLTracker
from fastmm.core.types import HedgeFilled, Liquidity, OrderFilled, Side, Venue
from fastmm.instrument import Instrument

INSTR = Instrument.from_config(InstrumentConfig())
SCALE = MoneyScale(INSTR)
S = 1_000_000_000
T0 = 1_700_000_000 * S


def tracker(**kw: object) -> PnLTracker:
    return PnLTracker(PnlConfig(), FeesConfig(), INSTR, **kw)  # type: ignore[arg-type]


def fill(side: Side, px_pyusd: str, lots: int, liq: Liquidity = Liquidity.MAKER, fee: str | None = None,
         exec_id: str = "e") -> OrderFilled:
    return OrderFilled("c1", exec_id, side, INSTR.price_to_ticks(px_pyusd), lots, 0, liq,
                       None if fee is None else Decimal(fee))


def test_money_helpers() -> None:
    assert SCALE.tick_lot == 5000 and SCALE.lot_per_pyusd == 10_000
    assert to_units("1.00000001") == 100_000_001 and from_units(-150) == Decimal("-0.0000015")
    assert div_round(5, 2) == 2 and div_round(7, 2) == 4 and div_round(-5, 2) == -2 and div_round(6, 4) == 2
    assert FeeRate(10).fee(to_units(15075)) == to_units("15.075")
    assert FeeRate("-0.5").fee(to_units(1000)) == to_units("-0.05")
    assert SCALE.mark_per_lot(100000.12346) == 1_000_001_235  # rounded once, to 1e-4 PYUSD/BTC


def test_fifo_realized_on_a_long_then_short() -> None:
    p = tracker()
    p.on_truex_fill(T0, fill(Side.BUY, "100000", 1000))
    p.on_truex_fill(T0, fill(Side.BUY, "100100", 1000))
    p.on_truex_fill(T0, fill(Side.SELL, "100500", 1500))
    # 0.1 BTC x 500 + 0.05 BTC x 400 = 70 PYUSD; the open 0.05 BTC entered at 100100
    assert from_units(p.realized_units) == Decimal(70)
    assert p.position_lots == 500 and p.avg_entry() == Decimal("100100")
    p.on_truex_fill(T0, fill(Side.SELL, "100000", 1000))  # closes 500 at -100, opens a short of 500
    assert from_units(p.realized_units) == Decimal(65)
    assert p.position_lots == -500 and p.avg_entry() == Decimal("100000")
    p.on_truex_fill(T0, fill(Side.BUY, "99000", 500))  # short covered 1000 lower: +50
    assert from_units(p.realized_units) == Decimal(115) and p.position_lots == 0
    assert p.unrealized_units == 0


def test_partial_fills_equal_one_fill() -> None:
    a, b = tracker(), tracker()
    a.on_truex_fill(T0, fill(Side.BUY, "100000", 1000, Liquidity.TAKER))
    for _ in range(4):
        b.on_truex_fill(T0, fill(Side.BUY, "100000", 250, Liquidity.TAKER))
    a.on_mark(T0, 100_123.0)
    b.on_mark(T0, 100_123.0)
    assert (a.realized_units, a.unrealized_units, a.fees_units, a.cash_units) == \
           (b.realized_units, b.unrealized_units, b.fees_units, b.cash_units)
    assert from_units(a.unrealized_units) == Decimal("12.3")


def test_fees_per_venue_and_liquidity_and_venue_fee_wins() -> None:
    p = tracker()
    p.on_truex_fill(T0, fill(Side.BUY, "100000", 1000, Liquidity.MAKER))  # maker 0 bps
    assert p.fees_units == 0
    p.on_truex_fill(T0, fill(Side.SELL, "100500", 1500, Liquidity.TAKER))  # 10 bps of 15075
    assert from_units(p.fees_units) == Decimal("15.075")
    p.on_truex_fill(T0, fill(Side.SELL, "100500", 1000, Liquidity.TAKER, fee="0.12345678"))  # MiscFeeAmt
    assert from_units(p.fees_units) == Decimal("15.19845678")
    p.on_hedge_fill(T0, HedgeFilled("k1", Side.BUY, 1000, Decimal("100000.1"), Liquidity.TAKER))  # 26 bps
    assert from_units(p.fees_units - to_units("15.19845678")) == Decimal("26.000026")
    p.on_hedge_fill(T0, HedgeFilled("k2", Side.BUY, 1000, Decimal("100000"), Liquidity.MAKER))  # 16 bps
    s = p.summary(T0)
    assert s.fees_by_venue == {"truex": Decimal("15.19845678"), "kraken": Decimal("42.000026")}
    assert s.trades == 5 and s.trades_by_venue == {"truex": 3, "kraken": 2}
    assert s.volume_lots == 5500


def test_spread_capture_and_markouts() -> None:
    p = tracker()
    p.on_mark(T0, 100_000.0)
    p.on_truex_fill(T0, fill(Side.BUY, "99990", 1000))  # 10 under the mid: +1 bps capture
    p.on_truex_fill(T0, fill(Side.SELL, "100020", 1000))  # 20 over: +2 bps
    p.on_mark(T0 + S // 2, 100_050.0)
    p.on_mark(T0 + S, 100_010.0)  # 1 s: buy +20, sell +10
    p.on_mark(T0 + 5 * S + 1, 99_990.0)  # 5 s: buy 0, sell +30
    s = p.summary(T0 + 6 * S)
    assert s.avg_spread_capture_bps == pytest.approx((10 / 99_990 + 20 / 100_020) * 1e4 / 2)
    m1, m5, m30 = s.markouts
    assert (m1.horizon_s, m1.fills, m1.volume_lots) == (1.0, 2, 2000)
    assert m1.avg_pyusd == Decimal(15)
    assert m1.avg_bps == pytest.approx((20 / 99_990 + 10 / 100_020) * 1e4 / 2)
    assert m5.avg_pyusd == Decimal(15) and m5.fills == 2
    assert m30.fills == 0 and m30.avg_bps is None
    # hedge fills never enter capture or markouts
    p.on_hedge_fill(T0 + 6 * S, HedgeFilled("h", Side.SELL, 500, Decimal("99000")))
    p.on_mark(T0 + 40 * S, 99_000.0)
    assert p.summary(T0 + 40 * S).markouts[2].fills == 2


def test_drawdown_and_significant_change_events() -> None:
    p = tracker()
    p.on_truex_fill(T0, fill(Side.BUY, "100000", 10_000))  # 1 BTC
    p.on_mark(T0, 100_050.0)  # +50
    assert p.events() == []
    p.on_mark(T0 + S, 100_150.0)  # +150: moved 150 >= 100 since the last event (0)
    ev = p.events()
    assert len(ev) == 1 and isinstance(ev[0], PnlChange) and ev[0].total == Decimal(150)
    p.on_mark(T0 + 2 * S, 100_100.0)  # +100, no event (50 from 150)
    p.on_mark(T0 + 3 * S, 99_900.0)  # -100: event, drawdown 250 from the peak 150
    ev = p.events()
    assert len(ev) == 1 and ev[0].total == Decimal(-100)
    p.on_mark(T0 + 4 * S, 100_000.0)
    assert from_units(p.max_drawdown_units) == Decimal(250)
    assert from_units(p.drawdown_units) == Decimal(150)


def test_summary_every_log_interval_from_on_timer() -> None:
    p = tracker()
    p.on_timer(T0)
    p.on_timer(T0 + 29 * S)
    assert p.events() == []
    p.on_timer(T0 + 30 * S)
    ev = p.events()
    assert len(ev) == 1 and isinstance(ev[0], PnlSummary) and ev[0].now_ns == T0 + 30 * S
    p.on_timer(T0 + 45 * S)
    assert p.events() == []
    p.on_timer(T0 + 200 * S)  # late timer: one summary, then every 30 s from now
    assert len(p.events()) == 1
    p.on_timer(T0 + 229 * S)
    assert p.events() == []


def test_sharpe_is_sampled_on_a_fixed_grid() -> None:
    p = tracker(sharpe_interval_s=1.0)
    p.on_truex_fill(T0, fill(Side.BUY, "100000", 10_000))  # 1 BTC: PnL follows the mark 1:1
    marks = [100_000.0, 100_010.0, 100_030.0, 100_040.0, 100_070.0]  # increments 10, 20, 10, 30
    for i, m in enumerate(marks):
        p.on_mark(T0 + i * S + S // 2, m)
    p.on_timer(T0 + 5 * S)
    incs = [0.0, 10.0, 20.0, 10.0, 30.0]  # grid points 1..5 s see the totals held since the last mark
    mean = sum(incs) / len(incs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in incs) / (len(incs) - 1))
    s = p.summary(T0 + 5 * S)
    assert s.sharpe_samples == 5
    assert s.sharpe == pytest.approx(mean / sd * math.sqrt(365 * 86400))
    assert tracker().summary(T0).sharpe is None


def test_bad_inputs_are_ignored_not_raised() -> None:
    p = tracker()
    p.on_truex_fill(T0, fill(Side.BUY, "100000", 1000, Liquidity.TAKER, fee="NaN"))  # rate applies instead
    assert from_units(p.fees_units) == Decimal(10)
    p = tracker()
    p.on_mark(T0, float("nan"))
    p.on_mark(T0, -5.0)
    p.on_fill(T0, Venue.TRUEX, Side.BUY, 0, 10, Liquidity.MAKER)
    assert p.mark is None and p.position_lots == 0 and p.trades[Venue.TRUEX] == 0


def _fifo_reference(fills: list[tuple[int, int, int]]) -> int:
    """Realized PnL of (sign, qty, px) fills by an independent, lot-by-lot FIFO."""
    book: list[list[int]] = []  # [sign, px] one entry per lot
    realized = 0
    for sign, qty, px in fills:
        for _ in range(qty):
            if book and book[0][0] != sign:
                s0, p0 = book.pop(0)
                realized += (px - p0) * s0
            else:
                book.append([sign, px])
    return realized


fill_st = st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 40),
                    st.integers(199_000, 201_000), st.sampled_from([Venue.TRUEX, Venue.KRAKEN]),
                    st.sampled_from([Liquidity.MAKER, Liquidity.TAKER]),
                    st.one_of(st.none(), st.integers(-500, 5000)), st.floats(99_000.0, 101_000.0))


@settings(max_examples=150, deadline=None)
@given(st.lists(fill_st, min_size=1, max_size=40))
def test_property_cash_plus_inventory_equals_realized_plus_unrealized_less_fees(fills: list) -> None:
    p = tracker()
    ref: list[tuple[int, int, int]] = []
    t = T0
    for side, qty, ticks, venue, liq, fee, mid in fills:
        t += S // 3
        px = SCALE.px_per_lot(ticks)
        p.on_fill(t, venue, side, qty, px, liq, fee)
        ref.append((side.sign, qty, px))
        p.on_mark(t, mid)
        mark = p.mark
        assert mark is not None
        assert p.cash_units + p.position_lots * mark == p.realized_units + p.unrealized_units - p.fees_units
    assert p.realized_units == _fifo_reference(ref)
    assert p.position_lots == sum(s * q for s, q, _ in ref)
