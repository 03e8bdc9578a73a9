"""TrueX simulator matching core: priority, fills and fees, and every TrueX rule it enforces."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.config import InstrumentConfig
from fastmm.instrument import Instrument
from fastmm.sim.truex_matching import (
    BIZ_THROTTLE,
    BUY,
    CXL_INVALID_PRICE_INCREMENT,
    CXL_PRICE_BAND,
    CXL_UNKNOWN_ORDER,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    BusinessReject,
    CancelReject,
    ExchangeRules,
    ExecReport,
    ExecType,
    MatchingEngine,
    OrdStatus,
)

INSTR = Instrument.from_config(InstrumentConfig())
REF = INSTR.price_to_ticks("60000")
MS = 1_000_000
CLIENT = "SIMCLIENT"


def engine(**rules: object) -> MatchingEngine:
    e = MatchingEngine(INSTR, ExchangeRules(**rules))  # type: ignore[arg-type]
    e.set_reference(REF)
    e.add_session("A")
    e.add_session("B")
    return e


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000_000_000

    def __call__(self, step_ms: int = 200) -> int:
        self.t += step_ms * MS
        return self.t


def new(e: MatchingEngine, clock: Clock, owner: str, cl: str, side: str, px: str | None, qty: str,
        tif: str = GTC, ord_type: str = LIMIT, **kw: object) -> list:
    return e.new_order(owner, cl, CLIENT, side, ord_type, px, qty, tif, clock(), **kw)  # type: ignore[arg-type]


def reports(events: list) -> list[tuple[str, str, str]]:
    return [(ev.owner, ev.cl_ord_id, ev.exec_type.value) for ev in events if isinstance(ev, ExecReport)]


def test_resting_orders_and_depth() -> None:
    e, c = engine(), Clock()
    assert reports(new(e, c, "A", "b1", BUY, "59990", "0.1")) == [("A", "b1", "0")]
    new(e, c, "A", "b2", BUY, "59990", "0.2")
    new(e, c, "A", "a1", SELL, "60010.5", "0.3")
    bids, asks = e.depth(5)
    assert bids == [(INSTR.price_to_ticks("59990"), 3000)]
    assert asks == [(INSTR.price_to_ticks("60010.5"), 3000)]
    assert {ch.price for ch in e.drain_level_changes()} == {119980, 120021}
    assert e.drain_level_changes() == []


def test_price_time_priority_fills_and_fees() -> None:
    e, c = engine(), Clock()
    new(e, c, "A", "first", SELL, "60000", "0.1")
    new(e, c, "A", "second", SELL, "60000", "0.12")
    ev = new(e, c, "B", "take", BUY, "60000", "0.15", tif=IOC)
    fills = [x for x in ev if isinstance(x, ExecReport) and x.exec_type == ExecType.TRADE]
    maker_fills = [f for f in fills if f.liquidity == 1]
    taker_fills = [f for f in fills if f.liquidity == 2]
    assert [(f.cl_ord_id, f.last_qty) for f in maker_fills] == [("first", 1000), ("second", 500)]
    assert [f.ord_status for f in maker_fills] == [OrdStatus.FILLED, OrdStatus.PARTIALLY_FILLED]
    assert sum(f.last_qty for f in taker_fills) == 1500
    assert taker_fills[-1].ord_status == OrdStatus.FILLED
    assert all(f.fee == 0 for f in maker_fills)  # maker 0 bps
    assert taker_fills[0].fee == Decimal("6.00000000")  # 0.1 BTC * 60000 * 10 bps
    assert len({f.exec_id for f in fills}) == len(fills)
    assert e.depth(1)[1] == [(REF, 700)]


def test_ioc_remainder_is_canceled_and_market_order_takes() -> None:
    e, c = engine(), Clock()
    new(e, c, "A", "s1", SELL, "60001", "0.1")
    ev = new(e, c, "B", "ioc", BUY, "60000", "0.1", tif=IOC)
    assert reports(ev) == [("B", "ioc", "0"), ("B", "ioc", "4")]
    ev = new(e, c, "B", "mkt", BUY, None, "0.2", ord_type=MARKET, tif=IOC)
    assert [r[2] for r in reports(ev)] == ["0", "F", "F", "4"]
    assert e.live_orders() == []


def test_cancel_and_unknown_cancel() -> None:
    e, c = engine(), Clock()
    new(e, c, "A", "b1", BUY, "59990", "0.1")
    ev = e.cancel("A", "c1", "b1", CLIENT, c())
    assert isinstance(ev[0], ExecReport) and ev[0].exec_type == ExecType.CANCELED
    assert ev[0].orig_cl_ord_id == "b1" and ev[0].leaves == 0
    ev = e.cancel("A", "c2", "b1", CLIENT, c())
    assert isinstance(ev[0], CancelReject) and ev[0].reason == CXL_UNKNOWN_ORDER
    assert ev[0].response_to == "1"
    assert e.depth(5) == ([], [])


def test_replace_rules_and_priority() -> None:
    e, c = engine(), Clock()
    new(e, c, "A", "x1", BUY, "59990", "0.2")
    new(e, c, "B", "y1", BUY, "59990", "0.2")
    ev = e.replace("A", "x2", "x1", CLIENT, "59990", "0.1", c())  # smaller: keeps priority
    assert isinstance(ev[0], ExecReport) and ev[0].exec_type == ExecType.REPLACED
    assert ev[0].cl_ord_id == "x2" and ev[0].orig_cl_ord_id == "x1"
    ev = new(e, c, "B", "hit", SELL, "59990", "0.1", tif=IOC)
    assert [f.cl_ord_id for f in ev if isinstance(f, ExecReport) and f.liquidity == 1] == ["x2"]
    bad = e.replace("B", "y2", "y1", CLIENT, "59990.25", "0.2", c())
    assert isinstance(bad[0], CancelReject) and bad[0].reason == CXL_INVALID_PRICE_INCREMENT
    far = e.replace("B", "y3", "y1", CLIENT, "50000", "0.2", c())
    assert isinstance(far[0], CancelReject) and far[0].reason == CXL_PRICE_BAND
    unknown = e.replace("B", "y4", "zz", CLIENT, "59990", "0.2", c())
    assert isinstance(unknown[0], CancelReject) and unknown[0].reason == CXL_UNKNOWN_ORDER
    assert unknown[0].response_to == "2"


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"px": "60000.25"}, "Invalid price increment"),
        ({"qty": "0.00005"}, "Invalid quantity increment"),
        ({"px": "62000"}, "Price exceeds current price band"),
        ({"px": "58000"}, "Price exceeds current price band"),
        ({"qty": "0.0001", "px": "5000"}, "Price exceeds current price band"),
        ({"cl": "this-id-is-longer-than-18"}, "Invalid ClOrdID"),
        ({"tif": "6"}, "Unsupported TimeInForce"),
    ],
)
def test_new_order_rejects(kwargs: dict[str, str], text: str) -> None:
    e, c = engine(), Clock()
    args = {"cl": "ok1", "px": "60000", "qty": "0.1", "tif": GTC} | kwargs
    ev = new(e, c, "A", args["cl"], BUY, args["px"], args["qty"], tif=args["tif"])
    assert len(ev) == 1 and isinstance(ev[0], ExecReport)
    assert ev[0].exec_type == ExecType.REJECTED and ev[0].text == text


def test_min_notional() -> None:
    e, c = engine(), Clock()
    e.set_reference(2)  # 1.00 PYUSD: 0.5 BTC at 1.00 = 0.5 PYUSD < 1
    ev = new(e, c, "A", "n1", BUY, "1", "0.5")
    assert ev[0].text == "Order notional below minimum"


def test_invalid_client_and_uuid_ids() -> None:
    e, c = engine(), Clock()
    ev = e.new_order("A", "x", "WRONG", BUY, LIMIT, "60000", "0.1", GTC, c())
    assert ev[0].text == "Invalid client" and ev[0].order_id == "NONE"
    uid = "3b241101-e2bb-4255-8caf-4136c566a962"
    assert reports(new(e, c, "A", uid, BUY, "60000", "0.1")) == [("A", uid, "0")]
    assert new(e, c, "A", uid.upper(), BUY, "60000", "0.2")[0].text == "Invalid ClOrdID"
    assert new(e, c, "A", uid, BUY, "60000", "0.3")[0].text == "Duplicate ClOrdID"


def test_duplicate_order_within_500ms() -> None:
    e, c = engine(), Clock()
    new(e, c, "A", "d1", BUY, "59990", "0.1")
    ev = e.new_order("A", "d2", CLIENT, BUY, LIMIT, "59990", "0.1", GTC, c.t + 100 * MS)
    assert ev[0].text == "Duplicate order"
    ev = e.new_order("A", "d3", CLIENT, BUY, LIMIT, "59990", "0.1", GTC, c.t + 600 * MS)
    assert ev[0].exec_type == ExecType.NEW


def test_post_only_rejects_a_crossing_order() -> None:
    e, c = engine(), Clock()
    new(e, c, "A", "s1", SELL, "60000", "0.1")
    ev = new(e, c, "B", "p1", BUY, "60000", "0.1", post_only=True)
    assert ev[0].text == "Post-only order would take liquidity"


def test_throttle_per_second_and_per_minute() -> None:
    e = engine()
    t0 = 10**12
    results = [e.new_order("A", f"t{i}", CLIENT, BUY, LIMIT, "59000", f"0.{i + 1:04d}", GTC, t0 + i * MS)
               for i in range(12)]
    rejected = [r[0] for r in results if isinstance(r[0], BusinessReject)]
    assert len(rejected) == 2 and all(r.reason == BIZ_THROTTLE and r.ref_msg_type == "D" for r in rejected)
    # one second later the window has room again
    ev = e.new_order("A", "later", CLIENT, BUY, LIMIT, "59000", "1", GTC, t0 + 1_001 * MS)
    assert isinstance(ev[0], ExecReport)
    e2 = engine(max_msgs_per_sec=1000, max_msgs_per_min=5)
    out = [e2.cancel("A", f"c{i}", "nope", CLIENT, t0 + i * MS)[0] for i in range(6)]
    assert isinstance(out[-1], BusinessReject) and out[-1].ref_msg_type == "F"


def test_replayed_taker_hits_resting_orders() -> None:
    e, c = engine(), Clock()
    new(e, c, "A", "b1", BUY, "59990", "0.1")
    assert e.take(SELL, 500, limit_ticks=INSTR.price_to_ticks("59995")) == []
    ev = e.take(SELL, 500)
    assert len(ev) == 1 and ev[0].cl_ord_id == "b1" and ev[0].last_qty == 500 and ev[0].liquidity == 1
    assert e.trades[-1] == (INSTR.price_to_ticks("59990"), 500, SELL)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(-20, 20), st.integers(1, 50),
                          st.sampled_from([GTC, IOC])), min_size=1, max_size=40))
def test_book_never_crossed_and_quantity_conserved(orders: list[tuple[str, int, int, str]]) -> None:
    e, c = engine(max_msgs_per_sec=10**6, max_msgs_per_min=10**6, duplicate_window_ns=0), Clock()
    submitted = 0
    filled = 0
    for i, (side, off, lots, tif) in enumerate(orders):
        px = INSTR.price_text(REF + off)
        ev = new(e, c, "A" if i % 2 else "B", f"o{i}", side, px, INSTR.qty_text(lots), tif=tif)
        if isinstance(ev[0], ExecReport) and ev[0].exec_type == ExecType.NEW:
            submitted += lots
        filled += sum(x.last_qty for x in ev if isinstance(x, ExecReport) and x.exec_type == ExecType.TRADE)
        bid, ask = e.best_bid(), e.best_ask()
        assert bid is None or ask is None or bid < ask
    resting = sum(o.leaves for o in e.live_orders())
    canceled_ioc = submitted - filled - resting  # each fill counted for maker and taker
    assert canceled_ioc >= 0
    assert filled % 2 == 0


@pytest.mark.parametrize("mode", ["reject", "take"])
def test_a_crossing_replace_of_a_post_only_order_follows_the_setting(mode: str) -> None:
    """TrueX's replace carries no ExecInst: whether the replaced order stays post-only is the venue's
    business; the simulator rejects it (default) or fills it as a taker, as ``crossing_replace`` says."""
    e, c = engine(crossing_replace=mode), Clock()
    new(e, c, "A", "s1", SELL, "60010", "0.1")
    new(e, c, "B", "p1", BUY, "60000", "0.1", post_only=True)
    ev = e.replace("B", "p2", "p1", CLIENT, "60010", "0.1", c())
    if mode == "reject":
        assert len(ev) == 1 and isinstance(ev[0], CancelReject)
        assert ev[0].text == "Post-only order would take liquidity"
        # the order rests unchanged at 60000; a passive replace still works
        ok = e.replace("B", "p3", "p1", CLIENT, "60005", "0.1", c())
        assert isinstance(ok[0], ExecReport) and ok[0].exec_type == ExecType.REPLACED
    else:
        fills = [x for x in ev if isinstance(x, ExecReport) and x.owner == "B" and x.exec_type == ExecType.TRADE]
        assert fills and fills[0].liquidity == 2      # taker
    # a replace of an order that was not post-only takes in either mode
    new(e, c, "B", "g1", BUY, "59990", "0.1")
    ev = e.replace("B", "g2", "g1", CLIENT, "60010", "0.1", c())
    assert not any(isinstance(x, CancelReject) for x in ev)
