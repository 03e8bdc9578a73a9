"""The TrueX REST client against the simulator's REST endpoints (same signature check) on loopback."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from truex_venue import CLIENT_ID, INSTRUMENT, USER, Venue

from fastmm.event_loop import run
from fastmm.venues.truex.codec import BUY, SELL
from fastmm.venues.truex.rest import TruexRest
from fastmm.venues.truex.rest_codec import Pacer, TruexRestError, parse_order, parse_trade


def test_client_orders_trades_and_cancel_through_the_simulator() -> None:
    async def main() -> None:
        async with Venue() as v, v.rest() as rest:
            info = await rest.get_client()
            assert info.id == CLIENT_ID and info.cancel_on_disconnect is False
            await v.place("b1", BUY, 20, 119_990)
            await v.place("s1", SELL, 30, 120_010)
            active = sorted(await rest.active_orders(), key=lambda o: o.cl_ord_id)
            assert [(o.cl_ord_id, o.side, o.price_ticks, o.qty_lots, o.leaves_lots, o.live) for o in active] == [
                ("b1", "1", 119_990, 20, 20, True), ("s1", "2", 120_010, 30, 30, True)]
            v.sim.exchange.take("1", 10, v.sim.clock())      # an outside buyer lifts 10 lots of s1
            v.sim.flush()
            await v.until(lambda: any(r.exec_type == "F" for r in v.reports()))
            fix_fill = next(r for r in v.reports() if r.exec_type == "F")
            (trade,) = await rest.trades(0)
            assert (trade.order_id, trade.price_ticks, trade.qty_lots, trade.liquidity) == (
                fix_fill.order_id, 120_010, 10, 1)
            assert trade.match_id == fix_fill.trd_match_id != ""    # the same fill seen both ways
            s1 = await rest.order_status("s1", "client")
            assert s1.leaves_lots == 20 and s1.live
            await rest.cancel(active[0].order_id)
            await v.until(lambda: any(r.exec_type == "4" and r.order_id == active[0].order_id
                                      for r in v.reports()))
            assert [o.cl_ord_id for o in await rest.active_orders()] == ["s1"]
            assert await rest.trades(trade.timestamp_ns + 1) == []
            with pytest.raises(TruexRestError, match=r"Order not found.*\(HTTP 404\)"):
                await rest.cancel("no-such-order")
            assert v.rest_sim.auth_failures == 0

    run(main())


def test_wrong_secret_and_unreachable_venue_are_clear_errors() -> None:
    async def main() -> None:
        async with Venue() as v:
            async with v.rest(secret="not-the-secret") as bad:
                with pytest.raises(TruexRestError, match=r"GET /client: Invalid signature \(HTTP 401\)"):
                    await bad.get_client()
            async with v.rest(key="other-key") as bad:
                with pytest.raises(TruexRestError, match="Invalid API key"):
                    await bad.active_orders()
            async with v.rest(wall_s=lambda: 1_000_000) as stale:
                with pytest.raises(TruexRestError, match="Invalid timestamp"):
                    await stale.get_client()
            assert v.rest_sim.auth_failures == 3
        async with TruexRest("http://127.0.0.1:9", USER, "k", "s", INSTRUMENT, timeout_s=2) as down:
            with pytest.raises(TruexRestError, match="GET /client: ClientConnectorError"):
                await down.get_client()
        with pytest.raises(TruexRestError, match="FASTMM_TRUEX_API_KEY_ID"):
            TruexRest("http://127.0.0.1:9", USER, "", "", INSTRUMENT)

    run(main())


def test_requests_are_paced() -> None:
    async def main() -> None:
        async with Venue() as v, v.rest(min_interval_s=0.1) as rest:
            await asyncio.gather(*(rest.get_client() for _ in range(5)))
            times = [t for m, p, t in v.rest_sim.requests if p.endswith("/client")]
            assert len(times) == 5
            # 5 requests at most one per 0.1 s: at least 0.4 s from the first to the last (0.35 s at the
            # venue, leaving room for the first one's arrival to be late on a busy machine)
            assert times[-1] - times[0] >= 0.35, times

    run(main())


def test_cancel_on_disconnect_is_set_and_the_venue_cancels_when_the_socket_drops() -> None:
    async def main() -> None:
        async with Venue() as v, v.rest() as rest:
            info = await rest.set_cancel_on_disconnect(True)
            assert info.cancel_on_disconnect is True
            await v.place("c1", BUY, 5, 119_980)
            assert len(await rest.active_orders()) == 1
            assert v.ini is not None and v.ini.conn is not None
            v.ini.conn.abort()                   # as a kill -9 would: no Logout, the socket just goes
            await v.until(lambda: not v.sim.exchange.engine.live_orders())
            assert await rest.active_orders() == []
            await v.until(lambda: v.ini is not None and v.ini.logged_on)      # reconnects and logs on
            assert (await rest.get_client()).cancel_on_disconnect is True

    run(main())


def test_records_off_the_grid_or_incomplete_are_errors_not_guesses() -> None:
    good = {"order_id": "O1", "trade_price": "60000.5", "trade_qty": "0.0012", "trade_fee_rate": "0.001",
            "liq_flag": "TAKER", "match_id": "M1", "timestamp": "1700000000000000000"}
    t = parse_trade(INSTRUMENT, good)
    assert (t.price_ticks, t.qty_lots, t.liquidity, t.fee_rate) == (120_001, 12, 2, Decimal("0.001"))
    for bad in ({"trade_price": "60000.25"}, {"trade_qty": "-0.0012"}, {"liq_flag": "BOTH"}, {"match_id": None}):
        with pytest.raises(TruexRestError):
            parse_trade(INSTRUMENT, {**good, **bad})
    order = {"id": "O1", "external_id": "c1", "status": "ACTIVE",
             "order_info": {"side": "SELL", "qty": "0.0010", "price": "60001.0", "client_id": "X"}, "leaves_qty": "0.0004"}
    o = parse_order(INSTRUMENT, order)
    assert (o.side, o.price_ticks, o.qty_lots, o.leaves_lots) == ("2", 120_002, 10, 4)
    with pytest.raises(TruexRestError, match="unknown side"):
        parse_order(INSTRUMENT, {**order, "order_info": {**order["order_info"], "side": "HOLD"}})


def test_pacer() -> None:
    p = Pacer(100)
    assert p.wait_ns(5) == 0
    p.sent(10)
    assert (p.wait_ns(50), p.wait_ns(110), p.wait_ns(200)) == (60, 0, 0)
