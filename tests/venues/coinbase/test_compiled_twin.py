"""The compiled ``apply_updates`` (fastmm/data/_l2fast.pyx) and its pure twin (fastmm.data.book) agree
on every book and every error, on the Coinbase feed's updates.

The feed uses the compiled one when the build had a C compiler (CI has one, so there it must exist);
whichever runs, the published book must be the same and bad input must be refused the same way, with
nothing applied.
"""

from __future__ import annotations

import shutil

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.data import book as l2
from fastmm.data.binance import read_capture
from fastmm.data.book import L2Book
from fastmm.sim.coinbase import CoinbaseSettings, CoinbaseSim, from_binance
from fastmm.venues.coinbase import codec

pytestmark = pytest.mark.skipif(not l2.COMPILED and not shutil.which("cc"),
                                reason="no C compiler on this machine: only the pure twin exists")


def test_the_compiled_twin_was_built_where_a_compiler_exists() -> None:
    assert l2.COMPILED, "a C compiler is present but fastmm.data._l2fast was not built"
    assert l2.apply_updates is not l2.apply_updates_py


def _caches() -> tuple[dict, dict]:
    return {}, {}


def _state(book: L2Book) -> tuple:
    return list(book.bids), list(book.asks), book.top(5)


def _frames(max_lines: int) -> list[dict]:
    core = CoinbaseSim(from_binance(read_capture(None, max_lines=max_lines)),
                       CoinbaseSettings(speed=0, rebase_time=False))
    cid = core.open(0)
    core.receive(cid, orjson.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"}), 0)
    core.start_replay(0)
    out: list[dict] = []
    while True:
        more = core.advance(0, budget=5000)
        out += [m for m in map(orjson.loads, core.data_to_send(cid, 0)) if m.get("channel") == "l2_data"]
        if not more and core.finished:
            return out


def test_both_build_the_same_book_from_the_recorded_capture() -> None:
    fast, slow = L2Book(), L2Book()
    n = 0
    for msg in _frames(8000):
        for ev in msg["events"]:
            l2.apply_updates(ev["updates"], fast, *_caches(), codec._cached)
            l2.apply_updates_py(ev["updates"], slow, *_caches(), codec._cached)
            n += len(ev["updates"])
            assert fast.top(5) == slow.top(5)
    assert _state(fast) == _state(slow) and n > 10000


_texts = st.one_of(
    st.from_regex(r"\A[0-9]{1,7}(\.[0-9]{1,9})?\Z"),
    st.sampled_from(["0", "0.0", "5.", ".5", "1e5", "-1", "+1", " 1", "1_0", "١٢", "nan", "", "1.2.3",
                     "99999999999999999999", "92233720368.54775807", "46116860184.27387904"]),
    st.integers(-5, 5), st.none(), st.lists(st.integers(), max_size=1))
_update = st.one_of(
    st.fixed_dictionaries({"side": st.sampled_from(["bid", "offer", "ask", "buy", 1]),
                           "price_level": _texts, "new_quantity": _texts}),
    st.fixed_dictionaries({"side": st.just("bid"), "price_level": _texts}),
    st.just([]), st.just("x"))


def _outcome(fn, updates: list, book: L2Book) -> tuple:
    try:
        return ("ok", fn(updates, book, *_caches(), codec._cached))
    except Exception as e:
        return (type(e).__name__, str(e))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_update, max_size=6), max_size=8))
def test_both_accept_and_refuse_the_same_input_and_refusal_applies_nothing(messages: list) -> None:
    fast, slow = L2Book(), L2Book()
    for updates in messages:
        before = _state(fast)
        a = _outcome(l2.apply_updates, updates, fast)
        b = _outcome(l2.apply_updates_py, updates, slow)
        assert a == b
        if a[0] != "ok":
            assert _state(fast) == before
        assert _state(fast) == _state(slow)
