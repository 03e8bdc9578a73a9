"""QuoteEngine and TradingCore: quoting, pulling, reprice threshold, rate limit, limits, kill switch."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fastmm.config import Config, QuotingConfig, RiskConfig
from fastmm.core.reconcile import MOVE, NEW
from fastmm.core.risk import RiskTrip, TripReason
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import (
    CancelOrder,
    HedgeFilled,
    NewOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    ReplaceOrder,
    Side,
)

MS = 1_000_000
S = 1000 * MS
T0 = 1_700_000_000 * S
MID = 100_000.0


def core(**quoting: object) -> TradingCore:
    # rate windows of exactly 1 s (no jitter guard) keep the timing in these tests simple
    quoting = {"model": "ladder", "levels": 5, **quoting}     # the PRD ladder (the shipped default is "edge")
    return TradingCore(Config(quoting=QuotingConfig(**quoting)), cl_ord_prefix="t",  # type: ignore[arg-type]
                       rate_guard_ms=0)


def ack_all(c: TradingCore, actions: list, now: int) -> list:
    """Answer every action as the venue would with no fills; returns the follow-up actions."""
    out = []
    for a in actions:
        if isinstance(a, NewOrder):
            out += c.on_order_event(OrderAccepted(a.cl_ord_id, "X" + a.cl_ord_id), now)
        elif isinstance(a, CancelOrder):
            out += c.on_order_event(OrderCanceled(a.cl_ord_id, a.orig_cl_ord_id), now)
        elif isinstance(a, ReplaceOrder):
            o = c.engine.tracker.get(a.orig_cl_ord_id)
            assert o is not None
            from fastmm.core.types import OrderReplaced
            out += c.on_order_event(OrderReplaced(a.cl_ord_id, a.orig_cl_ord_id, a.price_ticks, a.qty_lots,
                                                  a.qty_lots - o.cum), now)
    return out


def quoted(c: TradingCore, mid: float = MID, t: int = T0) -> int:
    """Bring the engine to a full, acknowledged ladder; returns the time reached."""
    acts = c.on_price(t, mid, 0.9, False)
    while acts:
        acts = ack_all(c, acts, t)
        t += S
        acts += c.on_timer(t) + c.on_price(t, mid, 0.9, False)
    return t


def book(c: TradingCore) -> tuple[list[int], list[int]]:
    w = c.engine.working()
    return (sorted((p for s, p, _, _ in w if s == Side.BUY), reverse=True),
            sorted(p for s, p, _, _ in w if s == Side.SELL))


def test_first_quote_is_rate_limited_and_completed_by_the_timer() -> None:
    c = core()
    acts = c.on_price(T0, MID, 0.9, False)
    assert len(acts) == 8 and all(isinstance(a, NewOrder) for a in acts)  # 8 messages per second
    assert [a.price_ticks for a in acts[:2]] == [199_500, 200_500]
    assert all(len(a.cl_ord_id) <= 18 for a in acts)
    ack_all(c, acts, T0)
    assert c.on_timer(T0 + 500 * MS) == []
    rest = c.on_timer(T0 + S)
    assert [(a.side, a.price_ticks, a.qty_lots) for a in rest] == [(Side.BUY, 199_496, 409),
                                                                   (Side.SELL, 200_504, 409)]


def test_small_moves_cause_no_churn_and_big_moves_replace() -> None:
    c = core()
    t = quoted(c)
    assert c.on_price(t + 1, MID + 0.1, 0.9, False) == []  # a fifth of a tick
    assert c.on_price(t + 2, MID + 0.25, 0.9, False) == []  # asks one tick up: within the threshold
    assert c.on_price(t + 2, MID - 0.25, 0.9, False) == []  # bids one tick down
    acts = c.on_price(t + 3, MID + 5.0, 0.9, False)  # 10 ticks
    assert acts and all(isinstance(a, ReplaceOrder) for a in acts)
    assert len(acts) == 8  # rate limited; the rest after acks and the next second
    ack_all(c, acts, t + 3)
    acts = c.on_timer(t + 3 + S)
    ack_all(c, acts, t + 3 + S)
    bids, asks = book(c)
    # mid 200010 ticks, half-spread 500.025 ticks: bid floor(199509.975), ask ceil(200510.025)
    assert bids[0] == 199_509 and asks[0] == 200_511 and len(bids) == len(asks) == 5


@pytest.mark.parametrize(("conf", "stale", "mid", "reason"), [
    (0.29, False, MID, "low confidence"),
    (float("nan"), False, MID, "low confidence"),
    (0.9, True, MID, "reference stale"),
    (0.9, False, float("nan"), "no valid fair mid"),
    (0.9, False, -1.0, "no valid fair mid"),
])
def test_quotes_pulled(conf: float, stale: bool, mid: float, reason: str) -> None:
    c = core()
    t = quoted(c)
    acts = c.on_price(t, mid, conf, stale)
    # all ten at once: a pull may use TrueX's whole budget (10/s), not only the quoting budget (8/s)
    assert len(acts) == 10 and all(isinstance(a, CancelOrder) for a in acts)
    assert c.engine.pull_reason == reason
    ack_all(c, acts, t)
    assert c.engine.working() == []
    # back to normal: quotes return
    assert len(c.on_price(t + 2 * S, MID, 0.9, False)) == 8


def test_no_price_input_pulls_quotes_on_the_timer() -> None:
    c = core()
    t = quoted(c)
    assert c.on_timer(t + 500 * MS) == []
    acts = c.on_timer(t + 1001 * MS)
    assert acts and all(isinstance(a, CancelOrder) for a in acts)
    assert c.engine.pull_reason == "no price input"


def test_post_only_clamps_to_the_truex_book() -> None:
    c = core(levels=2)
    acts = c.on_price(T0, MID, 0.9, False, best_bid=199_000, best_ask=199_400)
    bids = [a.price_ticks for a in acts if a.side == Side.BUY]
    assert bids == [199_399, 199_398] and all(a.post_only for a in acts)


def test_inventory_limit_pulls_the_accumulating_side_and_skews() -> None:
    c = core()
    t = quoted(c)
    # a bid filled in full, then 4.9 BTC more bought (a fill can never exceed its order, so the rest
    # comes from a hedge-venue buy): 5 BTC at the limit: no more bids; asks skewed down by the full 3 ticks
    o = next(x for x in c.engine.tracker.working.values() if x.side == Side.BUY)
    acts = c.on_order_event(OrderFilled(o.cl_ord_id, "f1", Side.BUY, o.price, o.qty, 0), t)
    acts += c.on_hedge_fill(HedgeFilled("h0", Side.BUY, 50_000 - o.qty, Decimal(o.price) / 2, fee=Decimal(0)), t)
    assert c.inventory.position_lots == 50_000 and c.inventory.skew_ticks == pytest.approx(3.0)
    for _ in range(4):
        acts = ack_all(c, acts, t)
        t += S
        acts += c.on_timer(t) + c.on_price(t, MID, 0.9, False)
    bids, asks = book(c)
    assert bids == [] and asks[0] == 200_500 - 3
    sig = c.hedge_signal()
    assert sig is not None and sig.side == Side.SELL and sig.qty_lots == 10_000
    c.on_hedge_fill(HedgeFilled("h1", Side.SELL, 10_000, Decimal("100001")), t)
    c.on_hedge_fill(HedgeFilled("h1", Side.SELL, 10_000, Decimal("100001")), t)  # duplicate ignored
    assert c.inventory.position_lots == 40_000 and c.pnl.position_lots == 40_000


def test_kill_switch_cancels_everything_and_blocks_until_reset() -> None:
    c = core()
    t = quoted(c)
    c.risk.trip(t, TripReason.MANUAL, "test")
    acts = c.on_timer(t + 1)
    assert acts and all(isinstance(a, CancelOrder) for a in acts)
    ack_all(c, acts, t + 1)
    ack_all(c, c.on_timer(t + S + 1), t + S + 1)
    assert c.engine.working() == []
    assert c.on_price(t + S + 2, MID, 0.9, False) == []
    assert c.engine.pull_reason == "kill switch"
    assert any(isinstance(e, RiskTrip) for e in c.events())
    c.reset_risk(t + 3 * S, "ops")
    assert len(c.on_price(t + 3 * S, MID, 0.9, False)) == 8


def test_drawdown_trips_from_price_events() -> None:
    c = TradingCore(Config(quoting=QuotingConfig(model="ladder", levels=5)), cl_ord_prefix="t")
    c.on_price(T0, MID, 0.9, False)
    o = next(x for x in c.engine.tracker.working.values() if x.side == Side.BUY)
    c.on_order_event(OrderFilled(o.cl_ord_id, "f1", Side.BUY, o.price, 1000, 0), T0)  # 0.1 BTC
    c.on_price(T0 + 1, MID - 9_000.0, 0.9, False)  # 900 PYUSD down: under the 1000 limit
    assert not c.risk.tripped
    c.on_price(T0 + 2, MID - 11_000.0, 0.9, False)
    assert c.risk.tripped and c.risk.trip_info is not None
    assert c.risk.trip_info.reason == TripReason.DRAWDOWN


def test_a_reference_outage_pulls_the_quotes_never_trips_and_quoting_comes_back_by_itself() -> None:
    c = core()
    t = quoted(c)
    acts = c.on_price(t, 0.0, 0.0, True)             # every source gone: no price, stale
    assert len(acts) == 10 and all(isinstance(a, CancelOrder) for a in acts)
    ack_all(c, acts, t)
    for k in range(1, 121):                          # a minute of outage, far past risk.stale_data_ms
        assert c.on_timer(t + k * S // 2) == []
    assert not c.risk.tripped
    assert not [e for e in c.events() if isinstance(e, RiskTrip)]
    back = c.on_price(t + 61 * S, MID, 0.9, False)   # the reference is back, confident
    assert len(back) == 8 and all(isinstance(a, NewOrder) for a in back)


def test_silence_pulls_the_quotes_on_the_timer_after_stale_data_ms() -> None:
    c = TradingCore(Config(quoting=QuotingConfig(model="ladder", levels=5), risk=RiskConfig(stale_data_ms=1000)),
                    cl_ord_prefix="t", rate_guard_ms=0)
    t = quoted(c)
    assert c.on_timer(t + 1000 * MS) == []           # the last price is 1 s old: still quoting
    acts = c.on_timer(t + 1001 * MS)                 # no price event at all, only the timer
    assert len(acts) == 10 and all(isinstance(a, CancelOrder) for a in acts)
    assert c.engine.pull_reason == "no price input"
    assert not c.risk.tripped


def test_stop_halts_and_cancels() -> None:
    c = core()
    t = quoted(c)
    acts = c.stop(t)
    assert len(acts) == 10 and all(isinstance(a, CancelOrder) for a in acts)  # TrueX's budget, not ours
    assert c.engine.pull_reason == "halted"


def test_unanswered_request_gets_its_order_canceled() -> None:
    c = core(levels=1)
    acts = c.on_price(T0, MID, 0.9, False)
    assert len(acts) == 2
    assert c.on_timer(T0 + 4 * S) == []
    late = c.on_timer(T0 + 5 * S)
    assert sorted(a.orig_cl_ord_id for a in late if isinstance(a, CancelOrder)) == sorted(
        a.cl_ord_id for a in acts)


def test_an_out_of_band_intent_is_held_back() -> None:
    c = core()
    c.on_price(T0, MID, 0.9, False)
    eng = c.engine
    lo, hi = eng.band
    out = eng._emit([(NEW, None, 1, hi + 1, 1000), (NEW, None, 1, lo, 1000)], T0)
    assert out == []  # the bad one stops the rest of the prefix
    o = next(iter(eng.tracker.working.values()))
    assert eng._emit([(MOVE, o, int(o.side), lo, o.cum)], T0) == []  # nothing left to work


@pytest.mark.parametrize("model", ["avellaneda_stoikov", "glft"])
def test_model_based_spreads_quote_and_skew(model: str) -> None:
    c = core(model=model, model_skew_adj=1.0, model_grid=False)   # the closed forms' skew (the grid keeps
    # prices while the skew is under one step)
    for i in range(200):
        c.on_price(T0 + i * 100 * MS, MID + (1.0 if i % 2 else -1.0), 0.9, False)
        c.on_trade(T0 + i * 100 * MS, 200_000 + (i % 7) * 10)
    bids, asks = c.engine.desired(T0 + 20 * S)
    assert bids and asks and bids[0][0] < asks[0][0]
    c.inventory.on_truex_fill(Side.BUY, 200_000, 2000)
    bids2, asks2 = c.engine.desired(T0 + 20 * S)
    assert bids2[0][0] < bids[0][0] and asks2[0][0] < asks[0][0]  # long: both sides move down


def test_bad_events_are_logged_not_raised() -> None:
    c = core()
    t = quoted(c)
    assert c.on_order_event("garbage", t) == []  # type: ignore[arg-type]
    assert c.on_order_event(OrderAccepted("nobody"), t) == []
    assert len(c.engine.working()) == 10 and not c.risk.tripped
    # an impossible hedge fill is never booked; it trips the kill switch, which cancels every quote
    # (this changed with issue 16: such fills were ignored silently)
    acts = c.on_hedge_fill(HedgeFilled("h", Side.BUY, 10, Decimal("NaN")), t)
    assert acts and all(isinstance(a, CancelOrder) for a in acts)    # as the rate limit allows
    assert c.risk.trip_info is not None and c.risk.trip_info.reason == TripReason.BAD_REPORT
    assert c.on_hedge_fill(HedgeFilled("h", Side.BUY, 0, Decimal(1)), t) == []
    assert c.on_hedge_fill(HedgeFilled("h", Side.BUY, 10, "abc"), t) == []  # type: ignore[arg-type]
    assert c.inventory.position_lots == 0 and c.pnl.position_lots == 0 and c.refused == 3


def test_a_cancel_rejected_because_the_order_just_filled_does_not_count_toward_the_reject_kill_switch() -> None:
    from dataclasses import replace as dc_replace

    from fastmm.core.types import CancelRejected

    cfg = Config(quoting=QuotingConfig(model="ladder", levels=5))     # the PRD ladder
    cfg = dc_replace(cfg, risk=dc_replace(cfg.risk, max_reject_rate_per_min=3))
    c = TradingCore(cfg, cl_ord_prefix="t", rate_guard_ms=0)
    t = quoted(c)
    races = 0
    for o in list(c.engine.tracker.working.values())[:6]:
        # the order fills in full at the venue while our cancel is on its way: the fill arrives first,
        # then the venue's reject of the cancel ("unknown order", status filled)
        cxl = CancelOrder("cx" + o.cl_ord_id, o.cl_ord_id, o.side)
        c.engine.tracker.on_cancel(cxl, t)
        c.on_order_event(OrderFilled(o.cl_ord_id, "e" + o.cl_ord_id, o.side, o.price, o.leaves, 0), t)
        c.on_order_event(CancelRejected(cxl.cl_ord_id, o.cl_ord_id, "2", 1, "Unknown order"), t)
        races += 1
    assert races == 6 and c.engine.tracker.counts["fill_races"] == 6
    assert not c.risk.tripped
    # four real rejects (a live order's cancel refused) in the same minute do trip it
    live = next(iter(c.engine.tracker.working.values()))
    for i in range(4):
        c.on_order_event(CancelRejected(f"bad{i}", live.cl_ord_id, "0", 0, "Too late to cancel"), t)
    assert c.risk.tripped


def test_a_replace_never_crosses_the_last_truex_book_even_without_post_only() -> None:
    """TrueX's replace carries no ExecInst: a move that would cross the book becomes a cancel."""
    c = core(post_only=False, levels=2, reprice_threshold_ticks=0)
    t = quoted(c)
    bids, asks = book(c)
    assert bids and asks
    # the fair mid jumps 20 ticks up; TrueX's ask is 2 ticks above our best bid
    best_ask = bids[0] + 2
    acts = c.on_price(t + S, MID + 10.0, 0.9, False, bids[0] - 50, best_ask)
    moves = [a for a in acts if isinstance(a, ReplaceOrder)]
    assert all(a.price_ticks < best_ask for a in moves if a.side == Side.BUY)
    assert any(isinstance(a, CancelOrder) for a in acts)
    crossing_new = [a for a in acts if isinstance(a, NewOrder) and a.side == Side.BUY and a.price_ticks >= best_ask]
    assert crossing_new or not [a for a in acts if isinstance(a, NewOrder)]   # post_only off: new may take


def test_post_only_new_orders_never_cross_the_last_truex_book() -> None:
    c = core(levels=3)
    acts = c.on_price(T0, MID, 0.9, False, 199_000, 199_600)   # a book below our fair mid
    assert acts
    for a in acts:
        assert isinstance(a, NewOrder)
        assert (a.price_ticks < 199_600) if a.side == Side.BUY else (a.price_ticks > 199_000)
