"""Kraken REST simulator through krakenex (a client that is not fastmm's) on 127.0.0.1: the official
signing vector, nonce, rate limits, orders, fills, balances, and bad input."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import krakenex
import pytest
import requests

from fastmm.data import binance_capture_dir
from fastmm.data.binance import read_capture
from fastmm.sim.kraken import KrakenSettings, kraken_signature
from fastmm.sim.kraken_server import KrakenSimServer

# Kraken's official worked example (venue facts section 3)
SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
VECTOR_BODY = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
VECTOR_SIGN = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
KEYS = {f"key{i}": SECRET for i in range(8)}


@contextmanager
def server(settings: KrakenSettings | None = None, max_lines: int = 3000) -> Iterator[tuple[KrakenSimServer, int]]:
    """The simulator on an ephemeral port in a thread of its own (krakenex is synchronous)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    srv = KrakenSimServer.from_capture(binance_capture_dir(), settings or KrakenSettings(keys=KEYS, speed=0),
                                       max_lines=max_lines)
    try:
        port = asyncio.run_coroutine_threadsafe(srv.start("127.0.0.1", 0), loop).result(10)
        yield srv, port
    finally:
        asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


_NONCES = itertools.count(1_700_000_000_000)


def client(port: int, key: str) -> krakenex.API:
    api = krakenex.API(key, SECRET)
    api.uri = f"http://127.0.0.1:{port}"
    api._nonce = _NONCES.__next__  # krakenex uses ms time; requests here come faster than 1 ms
    return api


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[KrakenSimServer, int]]:
    with server() as s:
        yield s


def test_official_vector_signature_and_krakenex_agree() -> None:
    assert kraken_signature(SECRET, "/0/private/AddOrder", "1616492376594", VECTOR_BODY) == VECTOR_SIGN
    data = dict(urllib.parse.parse_qsl(VECTOR_BODY))
    assert krakenex.API("k", SECRET)._sign(data, "/0/private/AddOrder") == VECTOR_SIGN


def test_official_vector_accepted_and_tampered_rejected(sim: tuple[KrakenSimServer, int]) -> None:
    _, port = sim
    url = f"http://127.0.0.1:{port}/0/private/AddOrder"
    headers = {"API-Key": "key0", "API-Sign": VECTOR_SIGN, "Content-Type": "application/x-www-form-urlencoded"}
    tampered = VECTOR_BODY.replace("volume=1.25", "volume=1.26")
    r = requests.post(url, data=tampered, headers=headers, timeout=5)
    assert r.status_code == 200 and r.json() == {"error": ["EAPI:Invalid signature"]}
    bad_sign = dict(headers, **{"API-Sign": VECTOR_SIGN[:-4] + "AAA="})
    assert requests.post(url, data=VECTOR_BODY, headers=bad_sign, timeout=5).json()["error"] == [
        "EAPI:Invalid signature"]
    r = requests.post(url, data=VECTOR_BODY, headers=headers, timeout=5).json()
    assert r["error"] == [] and r["result"]["descr"] == {"order": "buy 1.25000000 XBTUSD @ limit 37500.0"}
    (txid,) = r["result"]["txid"]
    assert len(txid) == 19 and txid[0] == "O" and txid[6] == "-" and txid[12] == "-"
    # the same request again: the nonce is used
    assert requests.post(url, data=VECTOR_BODY, headers=headers, timeout=5).json() == {
        "error": ["EAPI:Invalid nonce"]}


def test_public_ticker_and_asset_pairs(sim: tuple[KrakenSimServer, int]) -> None:
    srv, port = sim
    api = client(port, "key1")
    t = api.query_public("Ticker", {"pair": "XBTUSD"})
    assert t["error"] == [] and list(t["result"]) == ["XXBTZUSD"]
    tk = t["result"]["XXBTZUSD"]
    bid, ask = Decimal(tk["b"][0]), Decimal(tk["a"][0])
    assert bid < ask and bid % Decimal("0.1") == 0 and ask % Decimal("0.1") == 0
    ref_bid, ref_ask = srv.core.book.best_bid(), srv.core.book.best_ask()
    assert ref_bid and ref_ask
    assert bid <= Decimal(ref_bid[0]) / 10**8 < bid + Decimal("0.1")
    assert ask - Decimal("0.1") < Decimal(ref_ask[0]) / 10**8 <= ask
    assert int(tk["t"][0]) > 0 and Decimal(tk["l"][0]) <= Decimal(tk["h"][0])
    ap = api.query_public("AssetPairs", {"pair": "XBTUSD"})["result"]["XXBTZUSD"]
    assert (ap["altname"], ap["pair_decimals"], ap["lot_decimals"], ap["ordermin"], ap["tick_size"]) == (
        "XBTUSD", 1, 8, "0.0001", "0.1")
    assert api.query_public("Ticker", {"pair": "DOGEUSD"}) == {"error": ["EQuery:Unknown asset pair"]}
    assert api.query_public("Ticker") == {"error": ["EGeneral:Invalid arguments:pair"]}
    assert api.query_public("Nope") == {"error": ["EGeneral:Unknown method"]}


def test_orders_fills_fees_and_balances(sim: tuple[KrakenSimServer, int]) -> None:
    srv, port = sim
    api = client(port, "key2")
    assert api.query_private("Balance") == {"error": [], "result": {"XXBT": "2.0000000000", "ZUSD": "100000.0000"}}
    ask = srv.core.book.best_ask()
    bid = srv.core.book.best_bid()
    assert ask and bid
    # a limit buy far below the market rests
    r = api.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000",
                                       "volume": "0.5", "userref": 42})
    assert r["error"] == []
    rest = r["result"]["txid"][0]
    oo = api.query_private("OpenOrders")["result"]["open"]
    assert list(oo) == [rest] and oo[rest]["status"] == "open" and oo[rest]["userref"] == 42
    assert oo[rest]["descr"]["order"] == "buy 0.50000000 XBTUSD @ limit 50000.0"
    # a market buy fills whole at the touch, as taker (26 bps)
    r = api.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.01"})
    mkt = r["result"]["txid"][0]
    q = api.query_private("QueryOrders", {"txid": mkt, "trades": True})["result"][mkt]
    cost = Decimal(ask[0]) / 10**8 * Decimal("0.01")
    fee = (cost * Decimal(26) / 10000).quantize(Decimal("0.00000001"))
    assert q["status"] == "closed" and q["vol_exec"] == "0.01000000" and len(q["trades"]) == 1
    assert Decimal(q["cost"]) == cost and Decimal(q["fee"]) == fee
    bal = api.query_private("Balance")["result"]
    assert Decimal(bal["XXBT"]) == Decimal("2.01")
    assert Decimal(bal["ZUSD"]) == Decimal(100000) - cost - fee
    # a marketable limit sell walks the bids down to its price, as taker
    r = api.query_private("AddOrder", {"pair": "XBTUSD", "type": "sell", "ordertype": "limit",
                                       "price": "10000.0", "volume": "0.0002", "timeinforce": "IOC"})
    q = api.query_private("QueryOrders", {"txid": r["result"]["txid"][0]})["result"][r["result"]["txid"][0]]
    assert q["status"] in ("closed", "canceled") and Decimal(q["vol_exec"]) > 0
    # cancel by txid and by userref; cancelling again is an unknown order
    assert api.query_private("CancelOrder", {"txid": "42"})["result"] == {"count": 1}
    assert api.query_private("CancelOrder", {"txid": rest}) == {"error": ["EOrder:Unknown order"]}
    assert api.query_private("QueryOrders", {"txid": rest})["result"][rest]["status"] == "canceled"
    assert api.query_private("QueryOrders", {"txid": "OXXXXX-XXXXX-XXXXXX"}) == {"error": ["EOrder:Invalid order"]}
    # post-only that would cross is cancelled, not filled
    r = api.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "limit",
                                       "price": "99999.0", "volume": "0.001", "oflags": "post"})
    txid = r["result"]["txid"][0]
    q = api.query_private("QueryOrders", {"txid": txid})["result"][txid]
    assert (q["status"], q["reason"], q["vol_exec"]) == ("canceled", "Post only order", "0.00000000")
    assert api.query_private("CancelAll")["result"] == {"count": 0}


@pytest.mark.parametrize(("params", "error"), [
    ({"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000", "volume": "0.00001"},
     "EOrder:Order minimum not met"),
    ({"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000.05", "volume": "0.01"},
     "EOrder:Invalid price:XBTUSD price can only be specified up to 1 decimals."),
    ({"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "50000", "volume": "100"},
     "EOrder:Insufficient funds"),
    ({"pair": "XBTUSD", "type": "sell", "ordertype": "market", "volume": "3"}, "EOrder:Insufficient funds"),
    ({"pair": "ETHUSD", "type": "buy", "ordertype": "market", "volume": "1"}, "EQuery:Unknown asset pair"),
    ({"pair": "XBTUSD", "type": "hold", "ordertype": "market", "volume": "1"}, "EGeneral:Invalid arguments:type"),
    ({"pair": "XBTUSD", "type": "buy", "ordertype": "stop-loss", "volume": "1"},
     "EGeneral:Invalid arguments:ordertype"),
    ({"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "1"}, "EGeneral:Invalid arguments:price"),
    ({"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "1e3"},
     "EGeneral:Invalid arguments:volume"),
    ({"type": "buy", "ordertype": "market", "volume": "1"}, "EGeneral:Invalid arguments:pair"),
    ({"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "1.0", "volume": "0.0001"},
     "EOrder:Cost minimum not met"),
])
def test_add_order_rejects(sim: tuple[KrakenSimServer, int], params: dict[str, str], error: str) -> None:
    api = client(sim[1], "key3")
    assert api.query_private("AddOrder", params) == {"error": [error]}


def test_auth_errors_and_nonce(sim: tuple[KrakenSimServer, int]) -> None:
    _, port = sim
    api = client(port, "key4")
    assert api.query_private("Balance")["error"] == []
    api._nonce = lambda: 4_999  # lower than the last: refused
    assert api.query_private("Balance") == {"error": ["EAPI:Invalid nonce"]}
    stranger = krakenex.API("nobody", SECRET)
    stranger.uri = api.uri
    assert stranger.query_private("Balance") == {"error": ["EAPI:Invalid key"]}
    wrong = krakenex.API("key4", "c2VjcmV0")
    wrong.uri = api.uri
    wrong._nonce = _NONCES.__next__
    assert wrong.query_private("Balance") == {"error": ["EAPI:Invalid signature"]}
    r = requests.post(f"{api.uri}/0/private/Balance", data="nonce=1", timeout=5)
    assert r.json() == {"error": ["EAPI:Invalid key"]}
    api._nonce = _NONCES.__next__
    assert api.query_private("Frobnicate") == {"error": ["EGeneral:Unknown method"]}


def test_call_counter_starter_tier() -> None:
    """15 calls pass, the 16th within the same second is EAPI:Rate limit exceeded (starter: max 15)."""
    with server(KrakenSettings(keys=KEYS, speed=0), max_lines=200) as (_, port):
        api = client(port, "key5")
        answers = [api.query_private("Balance")["error"] for _ in range(16)]
    assert answers[:15] == [[]] * 15 and answers[15] == ["EAPI:Rate limit exceeded"]


def _post_signed(url: str, path: str, key: str, body: bytes, nonce: str, content_type: str) -> dict[str, Any]:
    sign = kraken_signature(SECRET, path, nonce, body)
    r = requests.post(url + path, data=body, headers={"API-Key": key, "API-Sign": sign,
                                                      "Content-Type": content_type}, timeout=5)
    assert r.status_code == 200
    return r.json()


def test_bad_bodies_and_unknown_fields(sim: tuple[KrakenSimServer, int]) -> None:
    _, port = sim
    url = f"http://127.0.0.1:{port}"
    form = "application/x-www-form-urlencoded"
    # JSON bodies are signed the same way and accepted
    ok = _post_signed(url, "/0/private/Balance", "key6", b'{"nonce": 100}', "100", "application/json")
    assert ok["result"]["ZUSD"] == "100000.0000"
    assert ok["error"] == []
    # unknown fields are ignored, as Kraken does
    body = b"nonce=101&pair=XBTUSD&type=buy&ordertype=limit&price=50000&volume=0.001&colour=blue"
    assert _post_signed(url, "/0/private/AddOrder", "key6", body, "101", form)["error"] == []
    bad = [(b"nonce=102&&&=x=", "102", form), (b"nonce=103&a=%ff%fe", "103", form),
           (b'{"nonce": 104, "x": {"y": 1}}', "104", "application/json"),
           (b'{"nonce": 105', "105", "application/json"), (b"[1,2]", "106", "application/json"),
           (b"nonce=107&" + b"x" * 20000, "107", form)]
    for raw, nonce, ctype in bad:
        err = _post_signed(url, "/0/private/Balance", "key6", raw, nonce, ctype)["error"]
        assert len(err) == 1 and err[0].startswith("EGeneral:Invalid arguments"), raw[:40]
    nonce_bad = _post_signed(url, "/0/private/Balance", "key6", b"nonce=abc", "abc", form)
    assert nonce_bad == {"error": ["EAPI:Invalid nonce"]}
    too_big = requests.post(url + "/0/private/Balance", data=b"x" * (2 << 20),
                            headers={"API-Key": "key6", "API-Sign": "x"}, timeout=5)
    assert too_big.status_code == 413
    # a malformed HTTP request gets a 400, and the server keeps serving
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GARBAGE / NOT-HTTP\r\n\x00\x01\r\n\r\n")
        assert s.recv(100).split(b" ")[1] == b"400"
    assert _post_signed(url, "/0/private/Balance", "key6", b"nonce=200", "200", form)["error"] == []


def test_unavailable_and_cancel_only_faults() -> None:
    with server(KrakenSettings(keys=KEYS, speed=0, cancel_only=True), max_lines=200) as (_, port):
        api = client(port, "key7")
        r = api.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "1"})
        assert r == {"error": ["EService:Market in cancel_only mode"]}
        assert api.query_public("AssetPairs")["result"]["XXBTZUSD"]["status"] == "cancel_only"
    with server(KrakenSettings(keys=KEYS, speed=0, unavailable=True), max_lines=200) as (_, port):
        api = client(port, "key7")
        assert api.query_private("Balance") == {"error": ["EService:Unavailable"]}
        assert api.query_public("Ticker", {"pair": "XBTUSD"}) == {"error": ["EService:Unavailable"]}


def test_capture_slice_is_what_the_server_replayed(sim: tuple[KrakenSimServer, int]) -> None:
    srv, _ = sim
    assert srv.core.finished and srv.core.replayed == sum(1 for _ in read_capture(binance_capture_dir(),
                                                                                   max_lines=3000)) - 2
