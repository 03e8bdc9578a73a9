"""Journal records: each kind round-trips through its line; first-format lines still read; the fold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.core.types import Side
from fastmm.journal import Journal, read_journal, read_records
from fastmm.journal.records import (
    KINDS,
    RECORDS,
    Ack,
    BadReport,
    Cancel,
    Canceled,
    CancelReject,
    Fill,
    Hedge,
    HedgeAck,
    HedgeFill,
    HedgeReject,
    Mark,
    Note,
    Order,
    Phase,
    Pnl,
    Reconcile,
    Record,
    RecordError,
    Recovery,
    Reject,
    Replace,
    Replaced,
    Risk,
    Session,
    from_dict,
    make,
    to_e8,
)
from fastmm.journal.replay import Booking, HedgerFold, OrderFold
from fastmm.units import format_e8

T = 1_700_000_000_000_000_000
ONE_OF_EACH: list[Record] = [
    Order(t_ns=T, cl_ord_id="a1", side=Side.BUY, price_ticks=120_000, qty_lots=50),
    Cancel(t_ns=T, cl_ord_id="c1", orig_cl_ord_id="a1", side=Side.SELL, source="cancel-orders"),
    Replace(t_ns=T, cl_ord_id="r1", orig_cl_ord_id="a1", side=Side.BUY, price_ticks=120_001, qty_lots=40),
    Ack(t_ns=T, cl_ord_id="a1", order_id="X1"),
    Reject(t_ns=T, cl_ord_id="z", text="throttled", business_reason=9),
    CancelReject(t_ns=T, cl_ord_id="c1", orig_cl_ord_id="a1", reason=1, text="unknown", ord_status="8"),
    Canceled(t_ns=T, cl_ord_id="c1", orig_cl_ord_id="a1"),
    Replaced(t_ns=T, cl_ord_id="r1", orig_cl_ord_id="a1", price_ticks=120_001, qty_lots=40),
    Fill(t_ns=T, cl_ord_id="a1", exec_id="E1", side=Side.SELL, px_ticks=120_000, qty_lots=5, leaves_lots=45,
         liquidity=1, fee_e8=1_234_567, match_id="M1", order_id="X1"),
    BadReport(t_ns=T, cl_ord_id="a1", exec_id="E9", side=Side.BUY, px_ticks=1, qty_lots=10**15,
              problem="over-fill"),
    Hedge(t_ns=T, cl_ord_id="h1l", hedge_id=1, side=Side.SELL, volume_e8=300_000, price_e8=6_700_000_000_000),
    HedgeAck(t_ns=T, cl_ord_id="h1l", final=True, status="closed"),
    HedgeReject(t_ns=T, cl_ord_id="h2l", reason="EOrder:Insufficient funds"),
    HedgeFill(t_ns=T, cl_ord_id="h1l", exec_id="TX1:200000", side=Side.SELL, qty_lots=20,
              price_e8=6_700_000_000_000, fee_e8=34_840_000, vol_exec_e8=200_000, cost_e8=13_400_000_000,
              fee_cum_e8=34_840_000, carry_e8=0),
    HedgeFill(t_ns=T, source="quoter", exec_id="TX1:200000", side=Side.SELL, qty_lots=20,
              price_e8=6_700_000_000_000, fee_e8=34_840_000),
    Risk(t_ns=T, source="hedger", detail="alert"),
    Phase(t_ns=T, source="supervisor", phase="QUOTING", previous="MD_SUBSCRIBED", detail="why"),
    Session(t_ns=T, session="oe", event="logged_on", next_sender=2, next_target=3),
    Recovery(t_ns=T, detail="x"),
    Note(t_ns=T, detail="started feed", extra={"pid": 42}),
    Mark(t_ns=T, fair_mid_e8=6_000_025_000_000),
    Reconcile(t_ns=T, extra={"unknown_canceled": 0, "fills_booked": 1}),
    Pnl(t_ns=T, position_lots=-3, realized_e8=5, unrealized_e8=-7, fees_e8=11, fair_mid_e8=6_000_000_000_000),
]


def test_every_kind_has_a_record_class_and_an_example() -> None:
    assert {r.KIND for r in ONE_OF_EACH} == KINDS == set(RECORDS)


@pytest.mark.parametrize("rec", ONE_OF_EACH, ids=lambda r: f"{r.KIND}-{r.source or 'own'}")
def test_each_kind_round_trips_through_its_line(rec: Record) -> None:
    line = rec.to_line(7)
    d = orjson.loads(line)
    assert d["v"] == 2 and d["seq"] == 7 and d["kind"] == rec.KIND
    assert all(v not in ("1", "2", "buy", "sell") for k, v in d.items() if k == "side")   # one spelling
    back = Record.from_line(line)
    assert type(back) is type(rec) and back == dataclasses.replace(rec, seq=7)
    # the first format's layout of it reads back to the same record, too (the hedger's first-format line
    # had no per-fill fee: the hedger fold derives it from the cumulative one)
    if isinstance(back, HedgeFill) and back.vol_exec_e8 is not None:
        back = dataclasses.replace(back, fee_e8=None)
    assert from_dict({**rec.legacy(), "seq": 7}) == back


def test_first_format_lines_are_read_with_their_names_and_sides() -> None:
    fill = from_dict({"seq": 3, "t_ns": T, "kind": "fill", "cl_ord_id": "a1", "exec_id": "E1", "side": "1",
                      "px_ticks": 120000, "qty_lots": 5, "leaves_lots": 0, "liquidity": 2, "fee": "0.01",
                      "match_id": "", "order_id": "X1"})
    assert fill == Fill(t_ns=T, seq=3, cl_ord_id="a1", exec_id="E1", side=Side.BUY, px_ticks=120_000,
                        qty_lots=5, liquidity=2, fee_e8=1_000_000, order_id="X1")
    quoter = from_dict({"kind": "hedge_fill", "t_ns": T, "exec_id": "K1", "side": "BUY", "qty_lots": 5,
                        "price": "60001.5", "fee": "0.78", "source": "quoter", "recovered": True})
    assert quoter == HedgeFill(t_ns=T, source="quoter", exec_id="K1", side=Side.BUY, qty_lots=5,
                               price_e8=6_000_150_000_000, fee_e8=78_000_000, recovered=True)
    hedger = from_dict({"kind": "hedge_fill", "t_ns": T, "cl_ord_id": "h1m", "exec_id": "TX1:5000", "lots": 0,
                        "vol_exec_e8": 5000, "cost": "3.35", "fee": "0.00871", "carry_e8": 5000,
                        "price": "67000.00000000"})
    assert hedger == HedgeFill(t_ns=T, cl_ord_id="h1m", exec_id="TX1:5000", side=None, qty_lots=0,
                               price_e8=6_700_000_000_000, fee_e8=None, vol_exec_e8=5000, cost_e8=335_000_000,
                               fee_cum_e8=871_000, carry_e8=5000)
    hedge = from_dict({"kind": "hedge", "t_ns": T, "cl_ord_id": "h1m", "hedge_id": 1, "side": "sell",
                       "volume_e8": 300_000, "price_e8": 0})
    assert isinstance(hedge, Hedge) and hedge.side == Side.SELL
    note = from_dict({"kind": "note", "t_ns": T, "detail": "a died", "exit": -9, "source": "supervisor"})
    assert note == Note(t_ns=T, detail="a died", source="supervisor", extra={"exit": -9})


@pytest.mark.parametrize("bad", [
    {"kind": "fill", "t_ns": T, "cl_ord_id": "a1", "exec_id": "e"},                     # no side, price...
    {"kind": "fill", "t_ns": T, "cl_ord_id": "a1", "exec_id": "e", "side": "1", "px_ticks": "x", "qty_lots": 1},
    {"kind": "fill", "t_ns": T, "cl_ord_id": "a1", "exec_id": "e", "side": "1", "px_ticks": 1, "qty_lots": 1,
     "fee": "not a number"},
    {"kind": "hedge_fill", "t_ns": T, "exec_id": "h", "side": "SELL", "qty_lots": 5, "price": "NaN",
     "source": "quoter"},
    {"kind": "order", "t_ns": T, "cl_ord_id": None, "side": None, "price_ticks": "?", "qty_lots": []},
    {"kind": "nonsense", "t_ns": T},
    {"kind": "mark", "t_ns": "yesterday", "fair_mid_e8": 1},
    [1, 2],
])
def test_what_is_not_a_record_says_so(bad: object) -> None:
    with pytest.raises(RecordError):
        from_dict(bad)


def test_the_writer_writes_typed_records_and_readers_get_both_views(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as j:
        j.append("fill", T, cl_ord_id="a1", exec_id="E0", side="2", px_ticks=1, qty_lots=1, fee="0.5")  # old
        for rec in ONE_OF_EACH:
            j.write(rec)
        j.write(make("phase", T, "supervisor", phase="STOPPED", previous="STOPPING", command_id=4, pid=1))
    recs = list(read_records(path))
    assert [r.seq for r in recs] == list(range(1, len(ONE_OF_EACH) + 3))
    assert recs[0] == Fill(t_ns=T, seq=1, cl_ord_id="a1", exec_id="E0", side=Side.SELL, px_ticks=1, qty_lots=1,
                           fee_e8=50_000_000)
    assert recs[-1] == Phase(t_ns=T, seq=len(recs), source="supervisor", phase="STOPPED", previous="STOPPING",
                             command_id=4, extra={"pid": 1})
    legacy = list(read_journal(path))
    assert [d["kind"] for d in legacy] == [r.KIND for r in recs]
    fill = legacy[ONE_OF_EACH.index(ONE_OF_EACH[8]) + 1]
    assert (fill["side"], fill["fee"]) == ("2", "0.01234567")
    quoter = next(d for d in legacy if d["kind"] == "hedge_fill" and d.get("source") == "quoter")
    assert (quoter["side"], quoter["qty_lots"], quoter["price"], quoter["fee"]) == ("SELL", 20, "67000", "0.3484")


def test_amounts_are_exact_integers() -> None:
    assert to_e8("0.00000001") == 1 and to_e8("67000") == 6_700_000_000_000 and to_e8("0.000000005") == 0
    assert to_e8("0.000000015") == 2      # half-even past the 8th decimal
    assert format_e8(1_000_000) == "0.01" and format_e8(-150_000_000) == "-1.5" and format_e8(0) == "0"
    with pytest.raises(RecordError):
        to_e8("inf")


# -- the fold -----------------------------------------------------------------------------------------------
def test_fold_live_orders_terms_and_fills() -> None:
    fold = OrderFold().apply_all([
        Order(t_ns=1, cl_ord_id="a1", side=Side.BUY, price_ticks=1000, qty_lots=50),
        Order(t_ns=1, cl_ord_id="a2", side=Side.SELL, price_ticks=1010, qty_lots=50),
        Order(t_ns=1, cl_ord_id="a3", side=Side.SELL, price_ticks=1011, qty_lots=40),
        Fill(t_ns=2, cl_ord_id="a1", exec_id="e1", side=Side.BUY, px_ticks=1000, qty_lots=20, leaves_lots=30),
        Cancel(t_ns=3, cl_ord_id="c1", orig_cl_ord_id="a3", side=Side.SELL),
        Canceled(t_ns=4, cl_ord_id="c1", orig_cl_ord_id="a3"),
        Replace(t_ns=5, cl_ord_id="a4", orig_cl_ord_id="a2", side=Side.SELL, price_ticks=1012, qty_lots=50),
    ])
    assert fold.possibly_live == {"a1": Side.BUY, "a2": Side.SELL, "a4": Side.SELL}
    assert fold.working == {"a1": (Side.BUY, 1000), "a4": (Side.SELL, 1012)}   # the replace moved it
    assert fold.terms["a1"] == (1000, 50, 20) and fold.position_lots == 20
    terms = fold.order_terms("a2")
    assert terms is not None and terms.alt_price_ticks == 1012
    dup = Fill(t_ns=6, cl_ord_id="a1", exec_id="e1", side=Side.BUY, px_ticks=1000, qty_lots=20, leaves_lots=30)
    assert fold.apply(dup) == Booking.DUPLICATE and fold.position_lots == 20
    fold.apply(CancelReject(t_ns=7, cl_ord_id="a4", orig_cl_ord_id="a2", reason=0, ord_status="0"))
    assert fold.working == {"a1": (Side.BUY, 1000), "a2": (Side.SELL, 1010)}   # refused: back where it was
    # a cancel the venue refuses because it does not know the order (or the order is over): not live
    fold.apply(CancelReject(t_ns=8, cl_ord_id="c9", orig_cl_ord_id="a1", reason=1, ord_status="8"))
    assert "a1" not in fold.possibly_live and "a1" not in fold.working


def test_fold_books_only_what_the_check_allows() -> None:
    fold = OrderFold(check_fill=lambda f, terms: None if terms is not None else "never sent",
                     check_hedge_fill=lambda h: "absurd" if h.qty_lots > 100 else None)
    assert fold.apply(Fill(t_ns=1, cl_ord_id="x", exec_id="e", side=Side.BUY, px_ticks=1, qty_lots=1)) == \
        Booking.REFUSED and fold.problem == "never sent"
    huge = HedgeFill(t_ns=1, source="quoter", exec_id="h", side=Side.SELL, qty_lots=1000, price_e8=1)
    assert fold.apply(huge) == Booking.REFUSED
    ok = HedgeFill(t_ns=1, source="quoter", exec_id="h2", side=Side.SELL, qty_lots=5, price_e8=1)
    assert fold.apply(ok) == Booking.BOOKED and fold.position_lots == -5 and fold.hedge_fills == 1
    own = HedgeFill(t_ns=1, exec_id="h3", side=Side.SELL, qty_lots=5, price_e8=1, vol_exec_e8=5)
    assert fold.apply(own) == Booking.NOTHING, "the hedger's own line is not a booking"


_ids = st.sampled_from([f"o{i}" for i in range(6)])
_side = st.sampled_from([Side.BUY, Side.SELL])
_records = st.one_of(
    st.builds(lambda c, s, p, q: Order(t_ns=1, cl_ord_id=c, side=s, price_ticks=p, qty_lots=q),
              _ids, _side, st.integers(1, 100), st.integers(1, 50)),
    st.builds(lambda c, o, s, p, q: Replace(t_ns=1, cl_ord_id=c, orig_cl_ord_id=o, side=s, price_ticks=p,
                                            qty_lots=q), _ids, _ids, _side, st.integers(1, 100), st.integers(1, 50)),
    st.builds(lambda c, o: Canceled(t_ns=1, cl_ord_id=c, orig_cl_ord_id=o), _ids, _ids),
    st.builds(lambda c, o: Replaced(t_ns=1, cl_ord_id=c, orig_cl_ord_id=o), _ids, _ids),
    st.builds(lambda c: Reject(t_ns=1, cl_ord_id=c), _ids),
    st.builds(lambda c, o, r: CancelReject(t_ns=1, cl_ord_id=c, orig_cl_ord_id=o, reason=r), _ids, _ids,
              st.sampled_from([0, 1])),
    st.builds(lambda c, e, s, q, lv: Fill(t_ns=1, cl_ord_id=c, exec_id=e, side=s, px_ticks=10, qty_lots=q,
                                          leaves_lots=lv), _ids, st.sampled_from(["e1", "e2", "e3", "e4"]),
              _side, st.integers(1, 9), st.integers(0, 3)),
    st.builds(lambda e, s, q: HedgeFill(t_ns=1, source="quoter", exec_id=e, side=s, qty_lots=q, price_e8=1),
              st.sampled_from(["k1", "k2", "e1"]), _side, st.integers(1, 9)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_records, max_size=40))
def test_fold_properties(recs: list[Record]) -> None:
    fold = OrderFold().apply_all(recs)
    # every ExecID booked once, and the position is exactly the signed sum of those first bookings
    first: dict[str, Record] = {}
    for r in recs:
        if isinstance(r, Fill) or (isinstance(r, HedgeFill) and r.exec_id not in first):
            first.setdefault(r.exec_id, r)
    want = sum(r.qty_lots * (1 if r.side == Side.BUY else -1) for r in first.values())  # type: ignore[attr-defined]
    assert fold.position_lots == want
    assert fold.truex_fills + fold.hedge_fills == len(first)
    # an order is possibly live only if it was requested, and a request with no later end stays live
    requested = {r.cl_ord_id for r in recs if isinstance(r, Order | Replace)}
    assert set(fold.possibly_live) <= requested
    assert set(fold.working) <= requested
    last_request = {r.cl_ord_id: i for i, r in enumerate(recs) if isinstance(r, Order | Replace)}
    for cl, i in last_request.items():
        later = recs[i + 1:]
        ended = any((isinstance(r, Canceled) and cl in (r.cl_ord_id, r.orig_cl_ord_id))
                    or (isinstance(r, Replaced) and r.orig_cl_ord_id == cl)
                    or (isinstance(r, Reject) and r.cl_ord_id == cl)
                    or (isinstance(r, CancelReject) and r.orig_cl_ord_id == cl and r.reason == 1)
                    or isinstance(r, Fill) for r in later)
        if not ended:
            assert cl in fold.possibly_live
    # the fold is the same whichever format the records were written in
    again = OrderFold().apply_all(from_dict({**r.legacy()}) for r in recs)
    assert (again.possibly_live, again.working, again.position_lots, again.exec_ids) == \
        (fold.possibly_live, fold.working, fold.position_lots, fold.exec_ids)


def test_hedger_fold_fills_in_sides_and_per_fill_fees_of_old_lines() -> None:
    old = [from_dict(d) for d in (
        {"kind": "hedge", "t_ns": 1, "cl_ord_id": "h1m", "hedge_id": 4, "side": "sell", "volume_e8": 300_000,
         "price_e8": 0},
        {"kind": "hedge_fill", "t_ns": 2, "cl_ord_id": "h1m", "exec_id": "TX1:5000", "lots": 0,
         "vol_exec_e8": 5000, "cost": "3.35", "fee": "0.00871", "carry_e8": 5000, "price": "67000"},
        {"kind": "hedge_fill", "t_ns": 3, "cl_ord_id": "h1m", "exec_id": "TX1:200000", "lots": 20,
         "vol_exec_e8": 200000, "cost": "134.00", "fee": "0.34840", "carry_e8": 5000, "price": "67000"},
        {"kind": "hedge_ack", "t_ns": 4, "cl_ord_id": "h1m", "final": True, "status": "closed"},
    )]
    fold = HedgerFold().apply_all(old)
    assert fold.next_id == 5 and fold.open_orders == {} and fold.done == {"h1m"}
    assert fold.published == {"TX1:200000"} and fold.carry_e8 == {"h1m": 5000}
    [f] = fold.fills
    assert (f.side, f.qty_lots, f.price_e8, f.fee_e8) == (Side.SELL, 20, 6_700_000_000_000, 33_969_000)
    # the same fills written in the current format fold to the same state
    new = HedgerFold().apply_all(Record.from_line(r.to_line()) for r in [*old[:1], *fold.fills])
    assert new.fills[0].fee_e8 == f.fee_e8 and new.published == fold.published
