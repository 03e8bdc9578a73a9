"""order_message: what the quoter journals and sends for each action, in one place."""

from __future__ import annotations

import string
from collections.abc import Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.config import Config
from fastmm.core.types import Action, CancelOrder, NewOrder, ReplaceOrder, Side
from fastmm.instrument import Instrument
from fastmm.journal.records import Cancel, Order, Record, Replace, line_of
from fastmm.procs.order_journal import order_entry, order_message
from fastmm.venues.truex.codec import TruexCodec

CODEC = TruexCodec(Instrument.from_config(Config().instrument), "C1")


def test_each_action_gives_its_journal_record_and_its_fix_message() -> None:
    rec, mt, body = order_message(CODEC, NewOrder("a1", Side.BUY, 200_000, 1_000), 11)
    assert (mt, body) == (b"D", CODEC.new_order_single("a1", "1", 1_000, 200_000))
    assert rec == Order(t_ns=11, cl_ord_id="a1", side=Side.BUY, price_ticks=200_000, qty_lots=1_000)
    rec, mt, body = order_message(CODEC, CancelOrder("c1", "a1", Side.SELL), 11, source="cancel-orders")
    assert (mt, body) == (b"F", CODEC.order_cancel_request("c1", "a1"))
    assert rec == Cancel(t_ns=11, source="cancel-orders", cl_ord_id="c1", orig_cl_ord_id="a1", side=Side.SELL)
    rec, mt, body = order_message(CODEC, ReplaceOrder("r1", "a1", Side.BUY, 200_001, 900), 11)
    assert (mt, body) == (b"G", CODEC.order_cancel_replace_request("r1", "a1", 900, 200_001))
    assert rec == Replace(t_ns=11, cl_ord_id="r1", orig_cl_ord_id="a1", side=Side.BUY, price_ticks=200_001,
                          qty_lots=900)
    assert orjson.loads(rec.to_line(7)) == {"v": 2, "seq": 7, "t_ns": 11, "kind": "replace", "cl_ord_id": "r1",
                                            "orig_cl_ord_id": "a1", "side": "BUY", "price_ticks": 200_001,
                                            "qty_lots": 900}
    assert Record.from_line(rec.to_line(7)) == Replace(t_ns=11, seq=7, cl_ord_id="r1", orig_cl_ord_id="a1",
                                                       side=Side.BUY, price_ticks=200_001, qty_lots=900)


def test_anything_else_is_refused() -> None:
    with pytest.raises(TypeError, match="not an order action"):
        order_message(CODEC, ("D", "a1"))  # type: ignore[arg-type]


# -- order_entry: the quoter's price path, order_message's record without the Record object ------------
_IDS = st.one_of(st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=18),
                 st.text(max_size=20))       # anything: quotes, backslashes, controls, non-ASCII, too long
_SIDES = st.one_of(st.sampled_from([Side.BUY, Side.SELL]), st.sampled_from([1, 2, None]))
_NUMS = st.one_of(st.integers(-3, 10**7), st.integers(2**62, 2**65), st.sampled_from([True, 1.5]))


def _actions() -> st.SearchStrategy[object]:
    return st.one_of(st.builds(NewOrder, _IDS, _SIDES, _NUMS, _NUMS),
                     st.builds(CancelOrder, _IDS, _IDS, _SIDES),
                     st.builds(ReplaceOrder, _IDS, _IDS, _SIDES, _NUMS, _NUMS))


def _outcome(f: Callable[[], tuple[bytes, bytes, bytes]]) -> object:
    try:
        return f()
    except Exception as e:       # the same error from both, by type and text
        return (type(e), str(e))


@settings(max_examples=3000, deadline=None)
@given(a=_actions(), t_ns=st.one_of(st.integers(0, 2**63 - 1), st.integers(2**63, 2**64)),
       seq=st.integers(1, 2**40))
def test_order_entry_gives_order_messages_line_and_bytes(a: Action, t_ns: int, seq: int) -> None:
    def reference() -> tuple[bytes, bytes, bytes]:
        rec, mt, body = order_message(CODEC, a, t_ns)
        return rec.to_line(seq), mt, body

    def fast() -> tuple[bytes, bytes, bytes]:
        tail, mt, body = order_entry(CODEC, a, t_ns)
        return line_of(seq, tail), mt, body

    assert _outcome(fast) == _outcome(reference)


def test_order_entry_takes_the_plain_path_for_the_engines_orders() -> None:
    a = ReplaceOrder("r1", "a1", Side.BUY, 200_001, 900)
    tail, mt, body = order_entry(CODEC, a, 11)
    rec, mt_ref, body_ref = order_message(CODEC, a, 11)
    assert (line_of(7, tail), mt, body) == (rec.to_line(7), mt_ref, body_ref)
    assert tail.startswith(b',"t_ns":11,"kind":"replace"')
