"""Reference L2 book: levels in integer units, best first, removal, and the whole capture replayed."""

from __future__ import annotations

from fastmm.data import binance_capture_dir
from fastmm.data.binance import read_capture, replay
from fastmm.data.book import L2Book
from fastmm.data.events import BookSnapshot, BookTicker, DepthDiff


def test_snapshot_diffs_best_and_top() -> None:
    b = L2Book()
    assert b.empty and b.best_bid() is None and b.best_ask() is None
    b.apply_snapshot(BookSnapshot(0, 5, ((100, 1), (99, 2), (98, 3)), ((101, 4), (103, 5))))
    assert b.best_bid() == (100, 1) and b.best_ask() == (101, 4) and b.last_update_id == 5
    b.apply_diff(DepthDiff(0, 0, 6, 7, ((100, 0), (99, 7), (97, 1)), ((102, 6), (101, 0))))
    assert b.top(2) == ([(99, 7), (98, 3)], [(102, 6), (103, 5)])
    assert b.last_update_id == 7
    b.set_level("ask", 104, 0)  # removing a missing level is a no-op
    b.set_level("bid", 120, 1)
    assert b.crossed
    assert list(b.bids) == [(120, 1), (99, 7), (98, 3), (97, 1)]


def test_replayed_book_never_crosses_and_tracks_the_book_ticker() -> None:
    """Built from the capture, the book is never crossed, and its touch stays within 0.05 % of the
    real-time bookTicker stream (the diffs come every 100 ms, so it is not always equal)."""
    book = L2Book()
    synced = False
    compared = 0
    for ev in replay(read_capture(binance_capture_dir(), max_lines=20000)):
        if isinstance(ev, BookSnapshot):
            book.apply_snapshot(ev)
            synced = True
        elif isinstance(ev, DepthDiff):
            book.apply_diff(ev)
            assert not book.crossed
        elif isinstance(ev, BookTicker) and synced:
            bb, ba = book.best_bid(), book.best_ask()
            assert bb is not None and ba is not None
            assert abs(bb[0] - ev.bid) * 2000 < ev.bid and abs(ba[0] - ev.ask) * 2000 < ev.ask
            compared += 1
    assert compared > 10000


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ops = st.lists(st.tuples(st.sampled_from(["bid", "ask"]), st.integers(1, 400), st.integers(0, 3),
                          st.sampled_from([1, 5, 40, 80])), max_size=600)


@settings(max_examples=150, deadline=None)
@given(_ops)
def test_book_matches_a_sorted_dict_model_through_trims_and_refills(ops: list) -> None:
    """Only the best keys are kept sorted; whatever the order of changes (deep, near the top, deletions
    that empty the kept list, a caller asking deeper than it keeps), every answer equals a full sort."""
    b = L2Book()
    model: dict[str, dict[int, int]] = {"bid": {}, "ask": {}}
    for side, price, qty, n in ops:
        b.set_level(side, price, qty)
        if qty:
            model[side][price] = qty
        else:
            model[side].pop(price, None)
        bids = sorted(model["bid"].items(), reverse=True)
        asks = sorted(model["ask"].items())
        assert b.top(n) == (bids[:n], asks[:n])
        assert b.best_bid() == (bids[0] if bids else None)
        assert b.best_ask() == (asks[0] if asks else None)
    assert list(b.bids) == sorted(model["bid"].items(), reverse=True)
    assert list(b.asks) == sorted(model["ask"].items())
    b.asks.truncate(3)
    assert list(b.asks) == sorted(model["ask"].items())[:3]
