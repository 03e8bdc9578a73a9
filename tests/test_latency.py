"""Latency histograms: buffered recording, percentiles, clamping, shipping between processes."""

from __future__ import annotations

import numpy as np

from fastmm.latency import LatencyRecorder, StageHistogram, summarize


def test_percentiles_of_known_values() -> None:
    h = StageHistogram(buffer_size=64)  # small buffer: folds automatically many times
    values = np.arange(1, 10_001) * 1000  # 1 us .. 10 ms, uniform
    for v in values.tolist():
        h.record(v)
    s = h.summary()
    assert s.count == 10_000
    assert abs(s.p50_us - 5000) / 5000 < 0.01
    assert abs(s.p99_us - 9900) / 9900 < 0.01
    assert abs(s.max_us - 10_000) / 10_000 < 0.01


def test_empty_and_clamped() -> None:
    h = StageHistogram()
    assert h.summary().count == 0
    h.record(-5)
    h.record(10**15)
    s = h.summary()
    assert s.count == 2 and h.clamped == 1
    assert s.max_us >= 59_000_000


def test_encode_merge_and_table() -> None:
    a, b = StageHistogram(), StageHistogram()
    for v in (1000, 2000, 3000):
        a.record(v)
    b.merge_encoded(a.encode())
    b.merge_encoded(a.encode())
    assert b.summary().count == 6
    rec = LatencyRecorder()
    rec["wake_to_decide"].record(12_000)
    table = rec.table()
    assert "wake_to_decide" in table and "12.0" in table
    assert rec.summaries()["recv_to_pub"].count == 0


def test_summarize_raw_values() -> None:
    s = summarize([1_000 * i for i in range(1, 1001)])        # 1 .. 1000 us
    assert s["count"] == 1000
    assert 499 <= s["p50_us"] <= 501 and 989 <= s["p99_us"] <= 991 and 999 <= s["max_us"] <= 1001
    assert summarize([])["count"] == 0
