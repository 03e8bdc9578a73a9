"""The PriceAggregator inside the core: reference tops and the TrueX top in, one computation per event,
the same decisions as the aggregator driven from outside; and the facade shells use instead of the
parts' internals."""

from __future__ import annotations

import random

from fastmm.config import Config, QuotingConfig
from fastmm.core.price_aggregator import PriceAggregator
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import CancelOrder, NewOrder, OrderAccepted, Side
from fastmm.units import E8

S = 1_000_000_000
MS = 1_000_000
T0 = 1_000 * S
MID_E8 = 100_000 * E8


def _counting(core: TradingCore) -> list[int]:
    """Counts the aggregator's computations: each of its entry points computes once (the compiled twin's
    compute step is C, not a method a test can wrap)."""
    calls: list[int] = []
    agg = core.aggregator
    update, on_timer = agg.update, agg.on_timer

    def counted_update(source: str, bid: int, ask: int, t_recv: int, now_ns: int, stale: bool = False) -> object:
        calls.append(now_ns)
        return update(source, bid, ask, t_recv, now_ns, stale)

    def counted_timer(now_ns: int) -> object:
        calls.append(now_ns)
        return on_timer(now_ns)

    agg.update = counted_update  # type: ignore[method-assign]
    agg.on_timer = counted_timer  # type: ignore[method-assign]
    return calls


def _accept(core: TradingCore, actions: list, now: int) -> None:
    for a in actions:
        if isinstance(a, NewOrder):
            core.on_order_event(OrderAccepted(a.cl_ord_id, "X" + a.cl_ord_id), now)


def test_decisions_equal_the_aggregator_driven_from_outside() -> None:
    inside = TradingCore.from_config(Config(), cl_ord_prefix="a")
    outside = TradingCore.from_config(Config(), cl_ord_prefix="a")
    agg = PriceAggregator.from_config(Config())
    rng = random.Random(7)
    mid = MID_E8
    names = ("coinbase", "kraken")
    for i in range(3000):
        now = T0 + i * 7 * MS
        mid += rng.choice((-1, 0, 1)) * 25_000_000
        name = names[i % 2]
        bid, ask = mid - 5 * E8, mid + 5 * E8
        bb, ba = bid // (E8 // 2) - 4, ask // (E8 // 2) + 4
        want = []
        fair = agg.update(name, bid, ask, now - 300_000, now)
        if fair is not None or i % 5 == 0:
            f = agg.current(now)
            want = outside.on_price(now, f.mid, f.confidence, not f.has_price, bb, ba)
        changed = inside.on_reference(now, name, bid, ask, now - 300_000)
        got = []
        if changed or i % 5 == 0:
            inside.on_truex_top(bb, ba)
            got = inside.decide(now)
        assert got == want, i
        _accept(inside, got, now)
        _accept(outside, want, now)
        if i % 50 == 49:
            t = now + 3 * MS
            f = agg.on_timer(t)
            want = outside.on_price(t, f.mid, f.confidence, not f.has_price, bb, ba) if f else []
            assert inside.on_timer(t) == want + outside.on_timer(t), i
    assert inside.fair == agg.last and inside.live_orders == outside.live_orders > 0


def test_the_aggregator_computes_once_per_event() -> None:
    core = TradingCore.from_config(Config(quoting=QuotingConfig(model="ladder", levels=5)))   # the PRD ladder
    calls = _counting(core)
    core.stop(T0)
    core.resume(T0)
    assert calls == [T0]                            # resume: one decision on the aged price
    assert core.on_reference(T0 + 1, "coinbase", MID_E8 - E8, MID_E8 + E8, T0 + 1)
    assert core.on_reference(T0 + 1, "kraken", MID_E8 - E8, MID_E8 + E8, T0 + 1)
    core.on_truex_top(199_990, 200_010)
    actions = core.decide(T0 + 1)                   # one event, two sources: no computation of its own
    assert calls == [T0, T0 + 1, T0 + 1] and len(actions) == 8     # the rate limit: 8 a second
    core.on_truex_top(199_992, 200_010)
    core.decide(T0 + 2)                             # TrueX alone: the sources age once
    core.on_timer(T0 + 3)
    assert calls == [T0, T0 + 1, T0 + 1, T0 + 2, T0 + 3]
    assert core.fair.mid_e8 == MID_E8 and core.fair.sources == ("coinbase", "kraken")


def test_a_reference_that_goes_stale_pulls_the_quotes_on_the_timer() -> None:
    core = TradingCore.from_config(Config(quoting=QuotingConfig(model="ladder", levels=5)), cl_ord_prefix="p")
    core.on_reference(T0, "coinbase", MID_E8 - E8, MID_E8 + E8, T0)
    quotes = core.decide(T0)
    _accept(core, quotes, T0)
    assert core.live_orders == len(quotes) == 8      # the rate limit: 8 a second
    assert core.on_timer(T0 + 500 * MS) == []       # still fresh (kraken never came: one source is enough)
    pulled = core.on_timer(T0 + 2_001 * MS)         # coinbase older than its stale_after_ms
    assert core.fair.mid_e8 == 0
    assert pulled and all(isinstance(a, CancelOrder) for a in pulled)


def test_the_facade_answers_what_shells_asked_the_engine() -> None:
    core = TradingCore.from_config(Config(), cl_ord_prefix="f")
    core.on_reference(T0, "coinbase", MID_E8 - E8, MID_E8 + E8, T0)
    actions = core.decide(T0)
    _accept(core, actions, T0)
    bids = [a.price_ticks for a in actions if isinstance(a, NewOrder) and a.side == Side.BUY]
    asks = [a.price_ticks for a in actions if isinstance(a, NewOrder) and a.side == Side.SELL]
    assert core.best_quotes() == (max(bids), min(asks)) and core.live_orders == len(actions)
    core.adopt_order("old1", Side.SELL, 250_000, 10, 3, T0)
    o = core.order("old1")
    assert o is not None and (o.side, o.price, o.leaves) == (Side.SELL, 250_000, 7)
    assert core.live_orders == len(actions) + 1
    assert core.next_cl_ord_id().startswith("f") and core.next_cl_ord_id() != core.next_cl_ord_id()
    core.preload_sent([T0 - i * MS for i in range(8)])   # the per-second budget (8) used by a previous run
    assert not core.try_acquire_message(T0 + MS)
    assert core.try_acquire_message(T0 + 2 * S)


def test_no_fair_price_yet_pulls_quietly_and_a_bad_mid_is_logged_once(caplog) -> None:
    import logging
    import math

    core = TradingCore.from_config(Config(), cl_ord_prefix="n")
    with caplog.at_level(logging.WARNING):
        assert core.decide(T0) == []                   # a TrueX top before any reference: nothing to quote
        assert core.pnl.mark is None or core.pnl.mark == 0
    assert not [r for r in caplog.records if "not a positive finite" in r.getMessage()]
    with caplog.at_level(logging.WARNING):
        core.on_price(T0 + S, math.nan, 1.0, False)   # a fresh price that is not a number: said, once
        core.on_price(T0 + 2 * S, math.nan, 1.0, False)
    said = [r for r in caplog.records if "not a positive finite" in r.getMessage()]
    assert len([r for r in said if "quote engine" in r.getMessage()]) == 1
    assert len([r for r in said if r.getMessage().startswith("pnl")]) == 1
