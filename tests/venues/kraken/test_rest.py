"""Kraken REST client: the official signing vector, nonces across restarts, the rate model, typed errors,
and bad answers from a misbehaving server; calls against the Kraken simulator over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from fastmm.config import Secret
from fastmm.sim.kraken import KrakenSettings
from fastmm.sim.kraken_server import KrakenSimServer
from fastmm.venues.kraken.rest import KrakenRest
from fastmm.venues.kraken.rest_codec import (
    BadAnswer,
    InsufficientFunds,
    InvalidKey,
    InvalidNonce,
    KrakenError,
    NonceStore,
    OrderRateLimited,
    PairInfo,
    RateModel,
    ServiceUnavailable,
    api_sign,
    error_of,
    parse_answer,
)

SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
KEY = "test-key"


def test_official_signing_vector() -> None:
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert api_sign(SECRET, "/0/private/AddOrder", 1616492376594, body) == (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==")
    assert api_sign(SECRET, "/0/private/AddOrder", 1616492376594, body.replace("1.25", "1.26")) != (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==")


def test_nonce_strictly_increases_and_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "kraken.nonce"
    n = NonceStore(path)
    a = n.next(1000)
    b = n.next(1000)          # same microsecond: still increases
    c = n.next(5)             # clock stepped back: still increases
    assert a == 1000 and b == 1001 and c == 1002
    again = NonceStore(path)  # a restart
    assert again.next(0) == 1003
    path.write_text("garbage")
    with pytest.raises(ValueError, match="corrupt"):
        NonceStore(path)


def test_rate_model_waits_before_the_limit() -> None:
    r = RateModel("starter", "starter")
    now = 0
    for _ in range(14):
        assert r.wait_s("Balance", now) == 0
        r.spend("Balance", now)
    assert r.wait_s("Balance", now) > 0            # the 15th would reach the limit of 15
    assert r.wait_s("Balance", now + 10**10) == 0  # 10 s later it has decayed
    for _ in range(58):
        r.spend("AddOrder", now)
    assert r.wait_s("AddOrder", now) > 0
    assert r.costs("CancelOrder", 3.0) == (0.0, 8.0) and r.costs("CancelOrder", 400) == (0.0, 0.0)


def test_error_strings_map_to_types_and_bad_answers_are_typed() -> None:
    assert isinstance(error_of("EOrder:Insufficient funds"), InsufficientFunds)
    assert isinstance(error_of("EAPI:Invalid nonce"), InvalidNonce)
    assert isinstance(error_of("EService:Unavailable"), ServiceUnavailable)
    assert type(error_of("EFoo:Bar")) is KrakenError
    with pytest.raises(BadAnswer, match="empty"):
        parse_answer(200, b"")
    with pytest.raises(BadAnswer, match="not JSON"):
        parse_answer(502, b"<html><body>Bad Gateway</body></html>")
    with pytest.raises(BadAnswer, match="no error list"):
        parse_answer(200, b'{"result": {}}')
    assert parse_answer(200, b'{"error": [], "result": {"x": 1}, "extra": true}') == {"x": 1}


def with_sim(settings: KrakenSettings, body) -> object:
    async def go() -> object:
        server = KrakenSimServer.from_capture(settings=settings, max_lines=3000)
        port = await server.start("127.0.0.1", 0)
        try:
            return await body(f"http://127.0.0.1:{port}", server)
        finally:
            await server.stop()
    return asyncio.run(asyncio.wait_for(go(), 60))


@contextlib.asynccontextmanager
async def http_server(handler) -> AsyncIterator[int]:
    """A plain aiohttp server on 127.0.0.1 answering every path with ``handler``; yields its port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


def client(url: str, tmp_path: Path, key: str = KEY, **kw) -> KrakenRest:
    return KrakenRest(url, Secret(key), Secret(SECRET), NonceStore(tmp_path / "n"), backoff_s=0.01, seed=1, **kw)


def test_calls_against_the_simulator(tmp_path: Path) -> None:
    async def body(url: str, server: KrakenSimServer) -> None:
        async with client(url, tmp_path) as k:
            pair = PairInfo.from_asset_pairs(await k.public("AssetPairs", {"pair": "XBTUSD"}), "XBTUSD")
            assert pair.altname == "XBTUSD" and pair.key == "XXBTZUSD" and pair.tick_e8 == 10_000_000
            bal = await k.balance()
            assert "ZUSD" in bal and "XXBT" in bal
            placed = await k.add_order({"pair": "XBTUSD", "type": "buy", "ordertype": "limit",
                                        "price": "10000.0", "volume": "0.01"})
            assert placed.txid and not placed.adopted
            opened = await k.private("OpenOrders", {"cl_ord_id": placed.cl_ord_id})
            assert placed.txid in opened["open"]
            found = await k.find_order(placed.cl_ord_id)
            assert found is not None and found[0] == placed.txid
            await k.private("CancelOrder", {"txid": placed.txid}, order_age_s=1.0)
            found = await k.find_order(placed.cl_ord_id)       # now among the closed orders
            assert found is not None and found[0] == placed.txid and found[1]["status"] == "canceled"
            assert await k.find_order("00000000-0000-4000-8000-000000000000") is None
            with pytest.raises(InsufficientFunds):
                await k.add_order({"pair": "XBTUSD", "type": "sell", "ordertype": "market", "volume": "1000"})
        async with client(url, tmp_path, key="nobody") as bad:
            with pytest.raises(InvalidKey):
                await bad.private("AddOrder", {"pair": "XBTUSD"})
    with_sim(KrakenSettings(keys={KEY: SECRET}, speed=0), body)


def test_unavailable_reads_are_retried_then_reported(tmp_path: Path) -> None:
    async def body(url: str, server: KrakenSimServer) -> None:
        async with client(url, tmp_path, retries=2) as k:
            with pytest.raises(ServiceUnavailable, match="gave up after 3 attempts"):
                await k.balance()
            assert k.errors["EService:Unavailable"] == 3
    with_sim(KrakenSettings(keys={KEY: SECRET}, speed=0, unavailable=True), body)


def test_trading_counter_is_respected_not_discovered(tmp_path: Path) -> None:
    async def body(url: str, server: KrakenSimServer) -> None:
        async with client(url, tmp_path) as k:
            for _ in range(62):   # more than the starter threshold of 60 within a second
                await k.add_order({"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "10000.0",
                                   "volume": "0.0001"})
            assert "EOrder:Rate limit exceeded" not in k.errors
    with_sim(KrakenSettings(keys={KEY: SECRET}, speed=0, balances={"ZUSD": __import__("decimal").Decimal(10**7)}),
             body)


def test_bad_answers_from_a_broken_server(tmp_path: Path) -> None:
    answers = [web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html"),
               web.Response(status=200, body=b""),
               web.Response(status=200, text='{"error": [], "result": {"ZUSD": "1.0"}, "new_field": 7}',
                            content_type="application/json")]

    async def handler(request: web.Request) -> web.Response:
        return answers.pop(0)

    async def go() -> dict:
        async with http_server(handler) as port, client(f"http://127.0.0.1:{port}", tmp_path) as k:
            return await k.balance()
    assert asyncio.run(asyncio.wait_for(go(), 30)) == {"ZUSD": "1.0"}


def test_stalled_server_times_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await release.wait()          # a 30 s stall, ended when the test is done with it
        return web.Response(text="{}")

    async def go() -> None:
        async with http_server(handler) as port:
            try:
                async with client(f"http://127.0.0.1:{port}", tmp_path, timeout_s=0.3, retries=1) as k:
                    with pytest.raises(ServiceUnavailable, match="gave up after 2 attempts: timed out"):
                        await k.balance()
            finally:
                release.set()         # before the server's cleanup, which waits for the handler
    asyncio.run(asyncio.wait_for(go(), 30))
    # The retry says why (a TimeoutError has no text: it used to log as "failed ()").
    assert any("Balance failed (timed out); retry 1" in r.getMessage() for r in caplog.records), caplog.text


def test_order_rate_limited_type() -> None:
    assert isinstance(error_of("EOrder:Rate limit exceeded"), OrderRateLimited)


def test_invalid_nonce_jumps_ahead_and_retries(tmp_path: Path) -> None:
    async def body(url: str, server: KrakenSimServer) -> None:
        async with client(url, tmp_path) as k:
            await k.balance()
            # Another client with the same key used a much higher nonce (e.g. a clock ahead).
            server.core.accounts[KEY].last_nonce = k.nonces.last + 5_000_000     # 5 s ahead
            bal = await k.balance()               # EAPI:Invalid nonce, then nonces further ahead each time
            assert "ZUSD" in bal and 1 <= k.errors.get("EAPI:Invalid nonce", 0) <= 3
    with_sim(KrakenSettings(keys={KEY: SECRET}, speed=0), body)
