"""The hedger's order bookkeeping (fastmm.procs.hedge_orders), without Kraken, ring or journal."""

from __future__ import annotations

import numpy as np

from fastmm.core.hedge_fills import Refused
from fastmm.core.types import Side
from fastmm.journal.records import Hedge, HedgeAck
from fastmm.journal.replay import HedgerFold
from fastmm.procs.hedge_orders import HedgeOrders, fill_ring_record, funds_shortfall
from fastmm.shm.records import FILL
from fastmm.venues.kraken.rest_codec import PairInfo

LOT = 10_000


def test_order_from_send_to_end_and_its_fills() -> None:
    o = HedgeOrders(LOT, HedgerFold())
    rec = o.sending("h1", 1, "sell", 25_000, 0, 5)
    assert isinstance(rec, Hedge) and rec.side == Side.SELL and o.open_orders == {"h1": rec}
    assert o.placed("h1", "TX1", False, 6) == HedgeAck(t_ns=6, cl_ord_id="h1", txid="TX1")
    fill, out = o.observe("h1", {"vol_exec": "0.00025", "cost": "25", "fee": "0.01", "status": "open"}, 7, 8)
    assert (fill.qty_lots, fill.carry_e8, fill.side, fill.exec_id) == (2, 5_000, Side.SELL, "TX1:25000")
    assert out is not None and out.order_id == "TX1" and not o.outbox     # the shell queues it, after the write
    assert o.observe("h1", {"vol_exec": "0.00025", "cost": "25", "fee": "0.01"}, 9, 9) is None
    assert isinstance(o.observe("h1", {"vol_exec": "0.5", "cost": "1", "fee": "0"}, 9, 9), Refused)
    end = o.final("h1", "closed", 10)
    assert end is not None and end.final and o.open_orders == {} and o.final("h1", "closed", 11) is None


def test_ring_record_and_funds() -> None:
    o = HedgeOrders(LOT, HedgerFold())
    o.sending("h2", 1, "buy", 10_000, 100_000 * 10**8, 1)
    _, out = o.observe("h2", {"vol_exec": "0.0001", "cost": "10", "fee": "0"}, 2, 3)
    assert out is not None
    tx = np.zeros(1, dtype=FILL)[0]
    fill_ring_record(tx, out, LOT, 4)
    assert (int(tx["side"]), int(tx["qty_e8"]), int(tx["t_pub"]), bytes(tx["exec_id"])) == (1, LOT, 4, b"h2:10000")
    assert funds_shortfall("sell", 10**8, 0, {"XXBT": "1"}) is None
    assert funds_shortfall("sell", 2 * 10**8, 0, {"XXBT": "1"}) is not None
    assert funds_shortfall("buy", 10**8, 100 * 10**8, {"ZUSD": "100"}) is not None     # the fee margin
    assert funds_shortfall("buy", 10**8, 100 * 10**8, {"ZUSD": "101"}) is None


def test_pair_order_params_at_its_precisions() -> None:
    pair = PairInfo("XBTUSD", "XXBTZUSD", 1, 8, 10**4, 10**7)
    assert pair.order_params("buy", 12_345, 6_543_210_000_000) == {
        "pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.00012345", "price": "65432.1"}
    assert pair.order_params("sell", 10**8) == {"pair": "XBTUSD", "type": "sell", "ordertype": "market",
                                                "volume": "1.00000000"}
