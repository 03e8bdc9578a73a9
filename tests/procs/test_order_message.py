"""order_message: what the quoter journals and sends for each action, in one place."""

from __future__ import annotations

import orjson
import pytest

from fastmm.config import Config
from fastmm.core.types import CancelOrder, NewOrder, ReplaceOrder, Side
from fastmm.instrument import Instrument
from fastmm.journal.records import Cancel, Order, Record, Replace
from fastmm.procs.order_journal import order_message
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
