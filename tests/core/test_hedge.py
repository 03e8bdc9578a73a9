"""HedgePlanner: threshold, sizes, limit then market, and never a second hedge before confirmation."""

from __future__ import annotations

from fastmm.core.hedge import CancelHedge, HedgePhase, HedgePlanner, PlaceLimit, PlaceMarket

S = 1_000_000_000
E8 = 100_000_000
BID, ASK = 60_000 * E8, 60_001 * E8


def planner(**kw) -> HedgePlanner:
    args = dict(threshold_lots=20_000, min_e8=100_000, max_e8=E8, limit_timeout_ns=5 * S, lot_e8=10_000)
    args.update(kw)
    return HedgePlanner(**args)


def test_below_threshold_no_hedge_above_it_a_limit_sell_through_mid() -> None:
    p = planner()
    assert p.decide(20_000, 0, 0, BID, ASK, 0) is None           # 2 BTC: at the threshold
    a = p.decide(25_000, 0, 0, BID, ASK, 0)                       # 2.5 BTC long
    assert isinstance(a, PlaceLimit) and a.side == "sell" and a.volume_e8 == E8   # capped at 1 BTC
    mid = (BID + ASK) // 2
    assert a.price_e8 >= mid * 10002 // 10000 and a.price_e8 % 10_000_000 == 0
    b = planner().decide(-25_000, 0, 0, BID, ASK, 0)
    assert isinstance(b, PlaceLimit) and b.side == "buy" and b.price_e8 <= mid * 9998 // 10000


def test_no_second_hedge_while_one_is_in_flight_or_unconfirmed() -> None:
    p = planner()
    a = p.decide(25_000, 0, 0, BID, ASK, 0)
    assert isinstance(a, PlaceLimit)
    p.hedge.limit_txid = "OABC"
    assert p.decide(25_000, 0, 0, BID, ASK, 1 * S) is None        # still working
    p.hedge.limit_filled_e8 = E8
    p.hedge.limit_closed = True
    assert p.decide(25_000, 0, 0, BID, ASK, 2 * S) is None
    assert p.phase == HedgePhase.CONFIRM
    p.confirm_after(3)                                             # three fills published
    # The quoter has applied only 2 of them: the position (still 2.5 BTC) must not trigger a new hedge.
    assert p.decide(25_000, 2, 3, BID, ASK, 3 * S) is None and p.busy
    assert p.decide(15_000, 3, 3, BID, ASK, 4 * S) is None and not p.busy   # confirmed, now below


def test_limit_times_out_then_market_for_the_rest() -> None:
    p = planner()
    p.decide(25_000, 0, 0, BID, ASK, 0)
    p.hedge.limit_txid = "OABC"
    p.hedge.limit_filled_e8 = 30_000_000
    c = p.decide(25_000, 0, 0, BID, ASK, 5 * S)
    assert isinstance(c, CancelHedge) and c.txid == "OABC" and p.phase == HedgePhase.CANCELING
    assert p.decide(25_000, 0, 0, BID, ASK, 6 * S) is None        # waiting for the cancel's outcome
    p.hedge.limit_closed = True
    m = p.decide(25_000, 0, 0, BID, ASK, 6 * S)
    assert isinstance(m, PlaceMarket) and m.volume_e8 == 70_000_000 and m.side == "sell"
    p.hedge.market_closed = True
    p.decide(25_000, 0, 0, BID, ASK, 7 * S)
    assert p.phase == HedgePhase.CONFIRM


def test_flatten_ignores_threshold_but_not_minimum() -> None:
    p = planner(flatten=True)
    a = p.decide(5_000, 0, 0, BID, ASK, 0)
    assert isinstance(a, PlaceLimit) and a.volume_e8 == 50_000_000
    q = planner(flatten=True)
    assert q.decide(5, 0, 0, BID, ASK, 0) is None                  # 0.0005 BTC < min 0.001


def test_no_price_no_hedge() -> None:
    assert planner().decide(25_000, 0, 0, 0, 0, 0) is None
    assert planner().decide(25_000, 0, 0, ASK, BID, 0) is None    # crossed reference
