"""LadderBuilder and the spread models: snapping, spread, post-only, band, notional, room, models."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.config import InstrumentConfig, QuotingConfig, VenueRulesConfig
from fastmm.core.ladder import LadderBuilder
from fastmm.core.models import (
    GLFT,
    AvellanedaStoikov,
    IntensityEstimator,
    LadderSpread,
    VolatilityEstimator,
    make_model,
)
from fastmm.instrument import Instrument

INSTR = Instrument.from_config(InstrumentConfig())
S = 1_000_000_000


def builder(**kw: object) -> LadderBuilder:
    rules = {k: kw.pop(k) for k in list(kw) if k in VenueRulesConfig.__dataclass_fields__}
    kw = {"levels": 5, **kw}     # the ladder's tests use the PRD's 5 levels (the shipped default is 1)
    return LadderBuilder(QuotingConfig(**kw), VenueRulesConfig(**rules), INSTR)  # type: ignore[arg-type]


def test_default_ladder_spread_spacing_and_sizes() -> None:
    b = builder()
    assert b.sizes == (1000, 800, 640, 512, 409)  # 0.1 BTC decaying by 0.8, floored to the lot
    mid = 100_000.0 / 0.5
    half_bid, half_ask = LadderSpread(QuotingConfig()).offsets(mid, 0, 0.0)
    assert half_bid == half_ask == pytest.approx(500.0)  # 25 bps of 100000 = 250 PYUSD = 500 ticks
    bids, asks = b.build(mid, half_bid, half_ask)
    assert bids == ((199_500, 1000), (199_499, 800), (199_498, 640), (199_497, 512), (199_496, 409))
    assert asks == ((200_500, 1000), (200_501, 800), (200_502, 640), (200_503, 512), (200_504, 409))


def test_snapping_bids_down_asks_up() -> None:
    b = builder(levels=1)
    bids, asks = b.build(200_000.6, 10.3, 10.3)  # 199990.3 -> 199990, 200010.9 -> 200011
    assert bids == ((199_990, 1000),) and asks == ((200_011, 1000),)
    bids, asks = b.build(200_000.0, 0.0, 0.0)  # zero spread cannot cross ourselves
    assert bids[0][0] < asks[0][0]


def test_skew_shifts_both_sides_down_when_long() -> None:
    m = LadderSpread(QuotingConfig())
    bid_off, ask_off = m.offsets(200_000.0, 1000, 2.0)
    assert bid_off == pytest.approx(502.0) and ask_off == pytest.approx(498.0)


def test_post_only_never_crosses_the_truex_book() -> None:
    b = builder(levels=3, level_spacing_ticks=2)
    bids, asks = b.build(200_000.0, 5.0, 5.0, best_bid=200_010, best_ask=199_997)  # book away from us
    assert bids[0][0] == 199_995 and asks[0][0] == 200_011
    assert [p for p, _ in asks] == [200_011, 200_013, 200_015]
    bids, asks = b.build(200_000.0, 5.0, 5.0, best_bid=199_990, best_ask=199_994)
    assert bids[0][0] == 199_993 and all(p < 199_994 for p, _ in bids)


def test_price_band_and_min_notional() -> None:
    b = builder(levels=3, level_spacing_ticks=1000, price_band_pct=Decimal("0.6"))
    bids, asks = b.build(200_000.0, 100.0, 100.0)  # band +/- 1200 ticks
    assert [p for p, _ in bids] == [199_900, 198_900] and [p for p, _ in asks] == [200_100, 201_100]
    lo, hi = b.band(200_000.0)
    assert (lo, hi) == (198_800, 201_200)
    # 1 lot at 4 ticks (2 PYUSD) is 0.0002 PYUSD: under the 1 PYUSD minimum
    small = builder(base_size_btc=Decimal("0.0001"), levels=2)
    assert small.build(10.0, 1.0, 1.0) == ((), ())
    assert small.min_tick_lots == 20_000


def test_room_caps_the_size_on_a_side() -> None:
    b = builder()
    bids, asks = b.build(200_000.0, 500.0, 500.0, bid_room=1500, ask_room=0)
    assert bids == ((199_500, 1000), (199_499, 500)) and asks == ()


def test_volatility_estimator_rate_per_second() -> None:
    v = VolatilityEstimator(window_s=1000.0, prior_sigma=7.0)
    v.update(0, 100.0)
    assert v.sigma == 7.0
    x = 100.0
    for i in range(1, 2001):
        x += 2.0 if i % 2 else -2.0  # |dx| = 2 ticks every 0.25 s: 16 ticks^2 per second
        v.update(i * S // 4, x)
    assert v.variance == pytest.approx(16.0, rel=1e-6)


def test_intensity_fit_recovers_a_and_k() -> None:
    est = IntensityEstimator(window_s=1e9, bin_ticks=5.0, bins=12)
    a_true, k_true = 2.0, 0.04
    # trades over 1000 s whose depths follow lambda(d) = A exp(-k d) exactly (inverse-CDF grid)
    n = int(a_true * 1000)
    for i in range(n):
        u = (i + 0.5) / n
        depth = -math.log(u) / k_true
        est.on_trade(int(i * 1000 * S / n), depth)
    assert est.k == pytest.approx(k_true, rel=0.05)
    a_hat = est.A
    assert a_hat == pytest.approx(a_true, rel=0.1)


def _models() -> tuple[AvellanedaStoikov, GLFT, VolatilityEstimator, IntensityEstimator]:
    # the closed forms as published: no tutorial adjustments, no grid
    cfg = QuotingConfig(model="glft", model_spread_adj=1.0, model_skew_adj=1.0, model_grid=False, horizon_s=60.0)
    vol = VolatilityEstimator(60.0, prior_sigma=4.0)
    ins = IntensityEstimator(60.0, prior_a=1.5, prior_k=0.05)
    return AvellanedaStoikov(cfg, 1000, vol, ins), GLFT(cfg, 1000, vol, ins), vol, ins


def test_avellaneda_stoikov_closed_form() -> None:
    a_s, _, _, _ = _models()
    g, var, t, k = 0.1, 16.0, 60.0, 0.05
    half = 0.5 * g * var * t + math.log(1 + g / k) / g
    bid, ask = a_s.offsets(200_000.0, 0, 0.0)
    assert bid == pytest.approx(half) and ask == pytest.approx(half)
    bid, ask = a_s.offsets(200_000.0, 2000, 0.0)  # long two base sizes: reservation 2 g s2 T lower
    assert bid - half == pytest.approx(2 * g * var * t) and half - ask == pytest.approx(2 * g * var * t)


def test_glft_closed_form() -> None:
    _, glft, _, _ = _models()
    g, a, k, sigma = 0.1, 1.5, 0.05, 4.0
    c1 = math.log(1 + g / k) / g
    c2 = math.sqrt(g / (2 * a * k) * (1 + g / k) ** (k / g + 1))
    assert glft.coefficients() == pytest.approx((c1, c2))
    bid, ask = glft.offsets(200_000.0, -500, 0.0)  # short half a base size: quotes move up
    half, skew = c1 + 0.5 * sigma * c2, sigma * c2
    assert bid == pytest.approx(half - 0.5 * skew) and ask == pytest.approx(half + 0.5 * skew)


def test_glft_tutorial_adjustments_and_grid() -> None:
    """The shipped GLFT: half-spread x adj1, skew x adj2, prices on a grid of round(half) ticks, bid down
    and ask up (hftbacktest's "GLFT market making model and grid trading")."""
    vol = VolatilityEstimator(60.0, prior_sigma=4.0)
    ins = IntensityEstimator(60.0, prior_a=1.5, prior_k=0.05)
    g, a, k, sigma = 0.1, 1.5, 0.05, 4.0
    c1 = math.log(1 + g / k) / g
    c2 = math.sqrt(g / (2 * a * k) * (1 + g / k) ** (k / g + 1))
    plain = GLFT(QuotingConfig(model="glft", model_spread_adj=2.0, model_skew_adj=0.05, model_grid=False),
                 1000, vol, ins)
    half, skew = 2.0 * (c1 + 0.5 * sigma * c2), 0.05 * sigma * c2
    bid, ask = plain.offsets(200_000.0, 2000, 0.0)        # long two base sizes: both quotes lower
    assert bid == pytest.approx(half + 2 * skew) and ask == pytest.approx(half - 2 * skew)
    gridded = GLFT(QuotingConfig(model="glft", model_spread_adj=2.0, model_skew_adj=0.05), 1000, vol, ins)
    step = round(half)
    for mid in (200_000.0, 200_000.3, 200_007.7, 200_013.0):
        gb, ga = gridded.offsets(mid, 2000, 0.0)
        pb, pa = plain.offsets(mid, 2000, 0.0)
        bid_px, ask_px = mid - gb, mid + ga
        assert bid_px == pytest.approx(round(bid_px)) and round(bid_px) % step == 0
        assert ask_px == pytest.approx(round(ask_px)) and round(ask_px) % step == 0
        assert gb >= pb - 0.5 and ga >= pa - 0.5            # never nearer the mid than the target
        assert gb < pb + step + 0.5 and ga < pa + step + 0.5  # and at most one step beyond it
    # a small move of the mid inside one grid step keeps both prices (and the queue place)
    b1, a1 = gridded.offsets(200_000.0, 0, 0.0)
    b2, a2 = gridded.offsets(200_000.4, 0, 0.0)
    assert (200_000.0 - b1, 200_000.0 + a1) == (200_000.4 - b2, 200_000.4 + a2)


def test_make_model_follows_config() -> None:
    vol, ins = VolatilityEstimator(60.0), IntensityEstimator(60.0)
    assert isinstance(make_model(QuotingConfig(), 1000, vol, ins), LadderSpread)
    a_s = make_model(QuotingConfig(model="avellaneda_stoikov"), 1000, vol, ins)
    assert isinstance(a_s, AvellanedaStoikov)
    assert isinstance(make_model(QuotingConfig(model="glft"), 1000, vol, ins), GLFT)


@settings(max_examples=300, deadline=None)
@given(mid=st.floats(2.0, 1e7), bid_off=st.floats(-2000.0, 50_000.0), ask_off=st.floats(-2000.0, 50_000.0),
       levels=st.integers(1, 8), spacing=st.integers(1, 50), base=st.integers(1, 20_000),
       decay=st.floats(0.01, 1.0), band=st.sampled_from(["0.01", "0.5", "2.5", "100"]),
       book=st.tuples(st.integers(0, 3), st.integers(-3000, 3000)), room=st.integers(0, 100_000),
       min_notional=st.sampled_from(["0", "1", "50"]))
def test_property_ladder_respects_band_tick_notional_and_never_crosses(
        mid: float, bid_off: float, ask_off: float, levels: int, spacing: int, base: int, decay: float,
        band: str, book: tuple[int, int], room: int, min_notional: str) -> None:
    b = LadderBuilder(QuotingConfig(levels=levels, level_spacing_ticks=spacing,
                                    base_size_btc=Decimal(base) / 10_000, size_decay=decay),
                      VenueRulesConfig(price_band_pct=Decimal(band), min_notional=Decimal(min_notional)),
                      INSTR)
    mid_ticks = mid / 0.5
    kind, off = book
    bb = max(0, round(mid_ticks) + off - 5) if kind & 1 else 0
    ba = max(0, round(mid_ticks) + off + 5) if kind & 2 else 0
    bids, asks = b.build(mid_ticks, bid_off, ask_off, bb, ba, room, room)
    ref = Decimal(repr(mid_ticks))
    width = ref * Decimal(band) / 100
    for side in (bids, asks):
        prices = [p for p, _ in side]
        assert len(set(prices)) == len(prices)
        assert sum(q for _, q in side) <= room
        for p, q in side:
            assert type(p) is int and type(q) is int and p > 0 and q > 0  # ticks and lots
            assert abs(Decimal(p) - ref) <= width  # inside the band around the reference
            assert INSTR.notional(p, q) >= Decimal(min_notional)  # the venue's own notional test
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)
    if bids and asks:
        assert bids[0][0] < asks[0][0]
    if ba and bids:
        assert bids[0][0] < ba
    if bb and asks:
        assert asks[0][0] > bb


def test_intensity_counts_a_step_once_however_many_trades_it_has() -> None:
    """hftbacktest's measure: a step arrives at depth d if any of its trades reached d; a burst of
    trades at one instant can fill a resting quote once, so it counts once."""
    one = IntensityEstimator(window_s=1e9)
    burst = IntensityEstimator(window_s=1e9)
    for i in range(600):                      # 60 s of 100 ms steps, depths cycling 0..5 ticks
        t = i * 100 * 1_000_000
        one.on_trade(t, float(i % 6))
        for j in range(10):
            burst.on_trade(t + j, float(i % 6) - j * 0.1)
    one.on_trade(600 * 100 * 1_000_000, 0.0)   # closes the last step
    burst.on_trade(600 * 100 * 1_000_000, 0.0)
    assert burst.trades == 10 * one.trades - 9
    assert (burst.A, burst.k) == pytest.approx((one.A, one.k))
    assert one.k > 0 and pytest.approx(10.0, rel=0.3) == one.A   # every step reaches depth 0: ~10 per s
