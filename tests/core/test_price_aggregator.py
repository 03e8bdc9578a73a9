"""PriceAggregator: fusion, confidence, losing sources, bad books, change-only output."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fastmm.config import load_config
from fastmm.core.price_aggregator import PriceAggregator

MS = 1_000_000
E8 = 100_000_000


def agg(**kw) -> PriceAggregator:
    return PriceAggregator({"coinbase": (1.0, 2000 * MS), "kraken": (1.0, 2000 * MS)}, **kw)


def px(x: float) -> int:
    return round(x * E8)


def test_two_agreeing_sources_give_their_mid_with_high_confidence() -> None:
    a = agg()
    a.update("coinbase", px(60000.0), px(60000.5), 0, 0)
    fp = a.update("kraken", px(60000.0), px(60000.5), 0, 0)
    assert fp is not None and fp.mid_e8 == px(60000.25)
    assert fp.confidence > 0.95 and fp.sources == ("coinbase", "kraken")


def test_losing_one_source_keeps_price_with_lower_confidence() -> None:
    a = agg()
    a.update("coinbase", px(60000.0), px(60001.0), 0, 0)
    both = a.update("kraken", px(60002.0), px(60003.0), 0, 0)
    assert both is not None
    # Coinbase goes silent: after its stale time only Kraken is used.
    fp = a.on_timer(1500 * MS)
    assert fp is not None  # freshness changed
    a.update("kraken", px(60002.0), px(60003.0), 2100 * MS, 2100 * MS)
    fp = a.current(2100 * MS)
    assert fp.sources == ("kraken",) and fp.mid_e8 == px(60002.5)
    assert 0.3 < fp.confidence <= 0.75


def test_no_fresh_source_means_no_price() -> None:
    a = agg()
    a.update("coinbase", px(100.0), px(101.0), 0, 0)
    fp = a.on_timer(2001 * MS)
    assert fp is not None and not fp.has_price and fp.confidence == 0.0


def test_feed_flagged_stale_is_dropped_at_once() -> None:
    a = agg()
    a.update("coinbase", px(100.0), px(100.01), 0, 0)
    a.update("kraken", px(100.0), px(100.01), 0, 0)
    fp = a.update("coinbase", 0, 0, 5 * MS, 5 * MS, stale=True)
    assert fp is not None and fp.sources == ("kraken",)


def test_crossed_or_one_sided_book_is_not_a_price() -> None:
    a = agg()
    a.update("kraken", px(100.0), px(100.01), 0, 0)
    fp = a.update("coinbase", px(101.0), px(100.0), 0, 0)
    assert a.rejected == 1
    assert a.last.sources == ("kraken",) and (fp is None or fp.sources == ("kraken",))
    a.update("coinbase", 0, px(100.0), 0, 0)
    assert a.rejected == 2 and a.last.sources == ("kraken",)


def test_dispersion_lowers_confidence_to_zero_at_the_limit() -> None:
    a = agg(max_dispersion_bps=20.0)
    a.update("coinbase", px(100.0), px(100.001), 0, 0)
    a.update("kraken", px(100.25), px(100.251), 0, 0)   # 25 bps apart
    assert a.last.confidence == 0.0 and a.last.has_price
    b = agg(max_dispersion_bps=20.0)
    b.update("coinbase", px(100.0), px(100.001), 0, 0)
    b.update("kraken", px(100.1), px(100.101), 0, 0)   # 10 bps apart
    assert 0.4 < b.last.confidence < 0.6


def test_wide_book_counts_less() -> None:
    a = agg()
    a.update("coinbase", px(100.0), px(100.002), 0, 0)
    a.update("kraken", px(99.9), px(100.1), 0, 0)   # 20 bps wide
    fp = a.last
    assert abs(fp.mid - 100.001) < abs(fp.mid - 100.0005) + 0.05
    assert fp.confidence < 0.95


def test_basis_moves_the_mid() -> None:
    a = agg(basis_bps=10.0)
    a.update("coinbase", px(100.0), px(100.0) + 2, 0, 0)
    assert a.last.mid_e8 == round((px(100.0) + 1) * 1.001)


def test_nothing_changed_emits_nothing() -> None:
    a = agg()
    assert a.update("coinbase", px(100.0), px(100.5), 0, 0) is not None
    assert a.update("coinbase", px(100.0), px(100.5), 0, 0) is None
    assert a.on_timer(0) is None


def test_from_config_uses_enabled_sources() -> None:
    cfg = load_config(None, {"FASTMM_KRAKEN__ENABLED": "false"})
    a = PriceAggregator.from_config(cfg)
    assert a.source_names == ("coinbase",)


@given(st.lists(st.tuples(st.sampled_from(["coinbase", "kraken"]),
                          st.integers(1, 10**15), st.integers(0, 10**12), st.integers(0, 5000)),
                max_size=40))
def test_confidence_in_range_and_mid_within_sources(events) -> None:
    a = agg()
    now = 0
    for src, bid, width, dt in events:
        now += dt * MS
        fp = a.update(src, bid, bid + width, now, now)
        cur = fp or a.last
        assert 0.0 <= cur.confidence <= 1.0
        if cur.has_price:
            books = [a.book(n) for n in a.source_names]
            lo = min(b[0] for b in books if b[4])
            hi = max(b[1] for b in books if b[4])
            assert lo <= cur.mid_e8 <= hi
