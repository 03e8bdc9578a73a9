"""Kraken REST simulator core with a driven clock: exact rate counters, fills against the replayed
reference (book moving through a resting order, recorded takers, thinning), dead-man switch, seeds."""

from __future__ import annotations

import itertools
import urllib.parse
from decimal import Decimal
from typing import Any

import pytest

from fastmm.data.events import BookSnapshot, DepthDiff, Event, Trade
from fastmm.sim.kraken import DecayCounter, KrakenSettings, KrakenSim, cancel_penalty, kraken_signature

SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
P = 10**8
S = 10**9
T0 = 1_700_000_000 * S
FORM = "application/x-www-form-urlencoded"


def events() -> list[Event]:
    return [
        BookSnapshot(0, 100, ((60_000 * P, P), (59_999 * P, P)), ((60_001 * P, P), (60_002 * P, 2 * P))),
        Trade(1 * S, 0, 0, 1, 60_000 * P, P // 2, True),  # taker sold 0.5 at 60000
        DepthDiff(2 * S, 0, 101, 101, (), ((60_001 * P, 0), (59_990 * P, P))),  # ask drops to 59990
        Trade(3 * S, 0, 0, 2, 60_010 * P, P, False),  # taker bought 1 at 60010
    ]


class Client:
    def __init__(self, sim: KrakenSim, key: str = "k") -> None:
        self.sim, self.key = sim, key
        self.nonces = itertools.count(1)

    def __call__(self, method: str, now: int, **params: Any) -> dict[str, Any]:
        nonce = str(next(self.nonces))
        body = urllib.parse.urlencode({"nonce": nonce, **params}).encode()
        sign = kraken_signature(SECRET, f"/0/private/{method}", nonce, body)
        return self.sim.handle_private(method, self.key, sign, body, FORM, now)


def make(**kw: Any) -> tuple[KrakenSim, Client]:
    s = KrakenSettings(keys={"k": SECRET, "other": SECRET}, speed=1.0, **kw)
    sim = KrakenSim(events(), s)
    sim.advance(T0)  # replay starts: data time 0 = T0
    return sim, Client(sim)


def test_decay_counter_is_exact() -> None:
    c = DecayCounter(15, 330)
    for _ in range(15):
        assert not c.would_exceed(1, 0)
        c.add(1, 0)
    assert c.would_exceed(1, 0)
    assert c.count == 15
    assert c.would_exceed(1, 3 * S - 1) and not c.would_exceed(1, 3_030_303_031)  # 1/0.33 s later
    assert c.level(100 * S) == 0
    assert [cancel_penalty(a * S) for a in (0, 5, 9, 10, 14, 15, 44, 45, 89, 90, 299, 300)] == [
        8, 6, 6, 5, 5, 4, 4, 2, 2, 1, 1, 0]


def test_trading_counter_add_and_cancel_penalties() -> None:
    sim, call = make()
    order = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000", "volume": "0.001",
             "validate": "true"}
    for _ in range(60):
        assert call("AddOrder", T0, **order)["error"] == []
    assert call("AddOrder", T0, **order) == {"error": ["EOrder:Rate limit exceeded"]}  # 61 > 60
    assert call("AddOrder", T0 + S, **order) == {"error": ["EOrder:Rate limit exceeded"]}  # 61 - 1 + 1
    assert call("AddOrder", T0 + 3 * S, **order)["error"] == []  # 61 - 3 + 1 = 59
    # AddOrder does not touch the call counter; other calls do (starter max 15)
    assert sim.accounts["k"].calls.count == 0
    # cancelling a young order costs +8 on the trading counter
    sim2, call2 = make()
    live = dict(order, validate="false")
    txid = call2("AddOrder", T0, **live)["result"]["txid"][0]
    assert sim2.accounts["k"].trading.count == 1
    call2("CancelOrder", T0 + 2 * S, txid=txid)
    assert sim2.accounts["k"].trading.count == Decimal(8)  # 1 - 2 s decay (floored at 0) + 8
    txid = call2("AddOrder", T0 + 2 * S, **live)["result"]["txid"][0]
    call2("CancelOrder", T0 + 52 * S, txid=txid)
    assert sim2.accounts["k"].trading.count == Decimal(2)  # aged 50 s: +2


def test_resting_orders_fill_from_recorded_takers_and_book_moves() -> None:
    sim, call = make()
    buy = call("AddOrder", T0, pair="XBTUSD", type="buy", ordertype="limit", price="60000.0", volume="0.8")
    sell = call("AddOrder", T0, pair="XBTUSD", type="sell", ordertype="limit", price="60005.0", volume="0.3")
    b, s = buy["result"]["txid"][0], sell["result"]["txid"][0]
    sim.advance(T0 + S)  # the taker sold 0.5 at 60000: our bid at 60000 gets 0.5 as maker
    o = sim.accounts["k"].orders[b]
    assert (o.filled, o.status) == (P // 2, "open")
    sim.advance(T0 + 2 * S)  # the ask drops to 59990, through our bid: the rest fills at our price
    assert (o.filled, o.status) == (80_000_000, "closed")
    cost = Decimal("0.8") * 60000
    assert o.cost == cost and o.fee == cost * Decimal("0.0016")
    sim.advance(T0 + 3 * S)  # a taker bought 1 at 60010: our ask at 60005 fills whole
    so = sim.accounts["k"].orders[s]
    assert (so.filled, so.status) == (30_000_000, "closed")
    bal = sim.accounts["k"].balances
    sold = Decimal("0.3") * 60005
    assert bal["XXBT"] == 2 + Decimal("0.8") - Decimal("0.3")
    assert bal["ZUSD"] == 100_000 - cost - cost * Decimal("0.0016") + sold - sold * Decimal("0.0016")
    q = call("QueryOrders", T0 + 3 * S, txid=b, trades="true")["result"][b]
    assert q["status"] == "closed" and len(q["trades"]) == 2 and q["price"] == "60000.00000"


def test_thinning_zero_means_takers_never_reach_us() -> None:
    sim, call = make(trade_fill_probability=0.0)
    txid = call("AddOrder", T0, pair="XBTUSD", type="buy", ordertype="limit", price="60000.0", volume="0.8")
    sim.advance(T0 + S)
    assert sim.accounts["k"].orders[txid["result"]["txid"][0]].filled == 0


def test_same_seed_same_ids_and_fills() -> None:
    def run(seed: int) -> list[Any]:
        sim, call = make(seed=seed, trade_fill_probability=0.5, trade_size_scale=0.5)
        ids = [call("AddOrder", T0, pair="XBTUSD", type="buy", ordertype="limit", price="60000.0",
                    volume="0.1")["result"]["txid"][0] for _ in range(3)]
        sim.advance(T0 + 10 * S)
        return ids + [(f.trade_id, f.volume) for f in sim.accounts["k"].fills]
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_speed_maps_replay_time() -> None:
    s = KrakenSettings(keys={"k": SECRET}, speed=2.0)
    sim = KrakenSim(events(), s)
    sim.advance(T0)
    assert sim.replayed == 1 and sim.next_wakeup_ns() == T0 + S // 2
    sim.advance(T0 + S // 2)
    assert sim.replayed == 2


def test_dead_man_switch_and_gtd_expiry() -> None:
    sim, call = make()
    txid = call("AddOrder", T0, pair="XBTUSD", type="buy", ordertype="limit", price="50000.0",
                volume="0.1")["result"]["txid"][0]
    gtd = call("AddOrder", T0, pair="XBTUSD", type="buy", ordertype="limit", price="50000.0", volume="0.1",
               timeinforce="GTD", expiretm="+5")["result"]["txid"][0]
    r = call("CancelAllOrdersAfter", T0, timeout="10")["result"]
    assert r == {"currentTime": "2023-11-14T22:13:20Z", "triggerTime": "2023-11-14T22:13:30Z"}
    sim.advance(T0 + 5 * S)
    assert sim.accounts["k"].orders[gtd].status == "expired"
    sim.advance(T0 + 10 * S - 1)
    assert sim.accounts["k"].orders[txid].status == "open"
    sim.advance(T0 + 10 * S)
    o = sim.accounts["k"].orders[txid]
    assert (o.status, o.reason) == ("canceled", "Dead man's switch")
    assert call("CancelAllOrdersAfter", T0 + 11 * S, timeout="0")["result"]["triggerTime"] == "0"
    assert call("CancelAllOrdersAfter", T0 + 11 * S, timeout="x")["error"] == ["EGeneral:Invalid arguments:timeout"]


def test_accounts_are_separate_per_key() -> None:
    sim, call = make()
    call("AddOrder", T0, pair="XBTUSD", type="buy", ordertype="market", volume="0.5")
    other = Client(sim, "other")
    assert other("Balance", T0)["result"] == {"XXBT": "2.0000000000", "ZUSD": "100000.0000"}
    assert call("Balance", T0)["result"]["XXBT"] == "2.5000000000"


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="not base64"):
        KrakenSettings(keys={"k": "***"})
    with pytest.raises(ValueError, match="tier"):
        KrakenSettings(tier="gold")
    with pytest.raises(ValueError, match="probability"):
        KrakenSettings(trade_fill_probability=2.0)
