"""The compiled aggregator and its pure twin give the very same fair prices for every input sequence.

Same outputs event by event (None, or a FairPrice equal field by field, floats bit for bit and of the same
types), the same ``last``, ``rejected`` and per-source books after each step, over random sequences of
reference updates (valid, crossed, one-sided, flagged stale), timer ticks and ``current`` reads, with
weights, staleness, basis and dispersion drawn too. ``PriceAggregator`` is the compiled one when built
and ``FASTMM_PURE`` is unset.
"""

from __future__ import annotations

import math
import os
import shutil
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.core import price_aggregator
from fastmm.core.price_aggregator import AggregatorCorePy, FairPrice, PriceAggregator

pytestmark = pytest.mark.skipif(not price_aggregator.COMPILED and not shutil.which("cc"),
                                reason="no C compiler on this machine: only the pure twin exists")

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def _fast() -> type:
    from fastmm.core import _agg_fast
    return _agg_fast.AggregatorCore  # type: ignore[no-any-return]


def test_the_compiled_twin_was_built_and_is_selected() -> None:
    if os.environ.get("FASTMM_PURE") == "1":
        assert not price_aggregator.COMPILED and PriceAggregator.__mro__[1] is AggregatorCorePy
        return
    assert price_aggregator.COMPILED, "a C compiler is present but fastmm.core._agg_fast was not built"
    assert PriceAggregator.__mro__[1] is _fast()


def _bits(x: object) -> object:
    return struct.pack("<d", x) if isinstance(x, float) else x


def _same(a: FairPrice | None, b: FairPrice | None) -> None:
    if a is None or b is None:
        assert a is None and b is None, (a, b)
        return
    assert type(a) is FairPrice and type(b) is FairPrice
    assert [type(x) for x in a] == [type(x) for x in b], (a, b)
    assert [_bits(x) for x in a] == [_bits(x) for x in b], (a, b)


def _outcome(fn: object, *args: object) -> tuple:
    try:
        return ("ok", fn(*args))  # type: ignore[operator]
    except Exception as e:
        return (type(e).__name__, None)


def _same_outcome(a: tuple, b: tuple) -> None:
    assert a[0] == b[0], (a, b)
    _same(a[1], b[1])


def _state(agg: object) -> tuple:
    return (agg.last, agg.rejected, [agg.book(n) for n in agg.source_names],  # type: ignore[attr-defined]
            agg.source_names, agg.stale_after_ns, _bits(agg.basis), _bits(agg.max_dispersion))  # type: ignore[attr-defined]


NAMES = ("coinbase", "kraken", "bitstamp")

_source = st.tuples(st.one_of(st.floats(0.0, 5.0, allow_nan=False), st.just(5e-324)), st.integers(1, 5000))
_step = st.one_of(
    # (kind, source index, mid e8, half width e8 (<= 0: crossed/one-sided), recv lag ms, dt ms, stale flag)
    st.tuples(st.just("update"), st.integers(0, 2), st.integers(-10, 10**15), st.integers(-10**9, 10**12),
              st.integers(-200, 3000), st.integers(0, 4000), st.booleans()),
    st.tuples(st.just("timer"), st.integers(0, 0), st.integers(0, 0), st.integers(0, 0), st.integers(0, 0),
              st.integers(0, 6000), st.booleans()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_source, min_size=1, max_size=3), st.floats(-50.0, 50.0, allow_nan=False),
       st.floats(0.5, 100.0, allow_nan=False), st.lists(_step, max_size=60))
def test_both_twins_give_identical_fair_prices(sources, basis_bps, disp_bps, steps) -> None:
    cfg = {NAMES[i]: (w, s * MS) for i, (w, s) in enumerate(sources)}
    if not any(w > 0 for w, _ in cfg.values()):
        for cls in (AggregatorCorePy, _fast()):
            with pytest.raises(ValueError):
                cls(cfg, basis_bps=basis_bps, max_dispersion_bps=disp_bps)
        return
    slow = AggregatorCorePy(cfg, basis_bps=basis_bps, max_dispersion_bps=disp_bps)
    fast = _fast()(cfg, basis_bps=basis_bps, max_dispersion_bps=disp_bps)
    assert _state(slow) == _state(fast)
    now = T0
    for kind, i, mid, half, lag, dt, stale in steps:
        now += dt * MS
        if kind == "timer":
            name = "current" if stale else "on_timer"
            _same_outcome(_outcome(getattr(slow, name), now), _outcome(getattr(fast, name), now))
        else:
            name = NAMES[i]
            args = (name, mid - half, mid + half, now - lag * MS, now, stale)
            if name not in cfg or cfg[name][0] <= 0:
                for agg in (slow, fast):
                    with pytest.raises(KeyError):
                        agg.update(*args)
                continue
            # (a weight so small its share underflows to 0 divides by zero: the same error in both)
            _same_outcome(_outcome(slow.update, *args), _outcome(fast.update, *args))
        _same(slow.last, fast.last)
        assert _state(slow) == _state(fast)


def test_a_long_walk_of_two_sources_stays_identical() -> None:
    import random

    rng = random.Random(3)
    cfg = {"coinbase": (1.0, 2000 * MS), "kraken": (0.5, 3000 * MS)}
    slow = AggregatorCorePy(cfg, basis_bps=2.5, max_dispersion_bps=20.0)
    fast = _fast()(cfg, basis_bps=2.5, max_dispersion_bps=20.0)
    mid = 100_000 * 10**8
    now = T0
    changed = 0
    for k in range(20_000):
        now += rng.randrange(0, 40) * MS
        mid += rng.choice((-1, 0, 1)) * rng.randrange(0, 5 * 10**7)
        half = rng.randrange(1, 10**9)
        if rng.random() < 0.05:
            a, b = slow.on_timer(now), fast.on_timer(now)
        else:
            name = ("coinbase", "kraken")[k % 2]
            args = (name, mid - half, mid + half, now - rng.randrange(0, 3 * 10**9), now, rng.random() < 0.02)
            a, b = slow.update(*args), fast.update(*args)
        _same(a, b)
        changed += a is not None
    assert changed > 10_000 and slow.last == fast.last and math.isfinite(fast.last.mid)


def test_values_past_64_bits_raise_in_the_compiled_twin() -> None:
    fast = _fast()({"coinbase": (1.0, 2000 * MS)})
    with pytest.raises(OverflowError):
        fast.update("coinbase", 1, 1 << 64, T0, T0)


def _same_float(a: float, b: float) -> None:
    assert struct.pack("<d", a) == struct.pack("<d", b), (a, b)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.floats(0.0, 1.0), st.floats(allow_nan=False), st.integers(0, 4000).map(lambda k: k / 2000),
                 st.integers(0, 64).map(lambda j: j / 16)))
def test_round3_is_pythons_round_to_three_digits(x: float) -> None:
    from fastmm.core._agg_fast import round3

    for y in (x, math.nextafter(x, math.inf), math.nextafter(x, -math.inf)):
        _same_float(round3(y), round(y, 3))


def test_round3_on_every_tie_and_its_neighbours() -> None:
    from fastmm.core._agg_fast import round3

    for k in range(2001):
        x = (2 * k + 1) / 2000    # a tie only where exact in binary (j / 16), else just beside one
        for y in (x, math.nextafter(x, 2.0), math.nextafter(x, -1.0), k / 1000):
            _same_float(round3(y), round(y, 3))
