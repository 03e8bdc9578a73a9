"""The quoter's live per-stage latency on a latest-value channel (``STAGE_LATENCY``): writer and reader.

The quoter records every stage into a :class:`fastmm.latency.LatencyRecorder` on the hot path (one
store into a preallocated buffer). :class:`LatencyPublisher` runs from its housekeeping timer, about
once a second and never per tick: it folds those buffers into the HDR histograms and reads the
percentiles of every stage with a few numpy passes over the histograms' own count arrays, into buffers
allocated once. (hdrh's percentile query walks its ~27k buckets in Python: tens of milliseconds for all
stages, too long to hold the quoter's loop every second.)

Two views per stage: the run so far (since the quoter started; a restarted quoter starts over) and a
recent window that always ends now: the counts minus a snapshot taken 10 to 20 s ago (two snapshots,
the older replaced every 10 s), so once the first window has passed it covers at least one full window.
:func:`read_latency` is the reader side of ``fastmm status`` and ``fastmm metrics``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from fastmm.latency import LatencyRecorder
from fastmm.shm import LatestValue
from fastmm.shm.records import LATENCY_STAGES

PERCENTILES = (50.0, 99.0, 99.9)
_FIELDS = ("p50_ns", "p99_ns", "p999_ns")
INTERVAL_NS = 1_000_000_000
WINDOW_NS = 10_000_000_000


def highest_equivalent_values(h: HdrHistogram) -> np.ndarray:
    """For each index of the histogram's count array, the highest value it stands for (what hdrh's
    ``get_value_at_percentile`` reports), computed once per histogram geometry."""
    idx = np.arange(h.counts_len, dtype=np.int64)
    half = h.sub_bucket_half_count
    bucket = (idx >> h.sub_bucket_half_count_magnitude) - 1
    sub = (idx & (half - 1)) + half
    first = bucket < 0
    sub[first] -= half
    bucket[first] = 0
    shift = bucket + h.unit_magnitude
    return (sub << shift) + (np.int64(1) << shift) - 1


def _target(percentile: float, total: int) -> int:
    """hdrh's count at a percentile, to the same rounding."""
    return max(int(percentile * total / 100 + 0.5), 1)


class StageLatencyView:
    """Percentiles of each stage's histogram, over the run and over the recent window (sans-I/O: the
    time is an argument)."""

    def __init__(self, recorder: LatencyRecorder, t_start_ns: int, window_ns: int = WINDOW_NS,
                 stages: tuple[str, ...] = LATENCY_STAGES) -> None:
        self.recorder = recorder
        self.stages = [recorder[s] for s in stages]      # KeyError: a stage the recorder does not keep
        hist = self.stages[0].hist
        if any(s.hist.counts_len != hist.counts_len for s in self.stages):
            raise ValueError("every stage histogram must have the same geometry")
        self._values = highest_equivalent_values(hist)
        n = hist.counts_len
        self._counts = [np.ctypeslib.as_array(s.hist.counts) for s in self.stages]   # views, no copy
        self._old = [np.zeros(n, np.uint64) for _ in self.stages]
        self._new = [np.zeros(n, np.uint64) for _ in self.stages]
        self._diff = np.zeros(n, np.uint64)
        self._cum = np.zeros(n, np.uint64)
        self.t_start = self._t_old = self._t_new = t_start_ns
        self.window_ns = window_ns

    def _range(self, i: int) -> tuple[int, int]:
        h = self.stages[i].hist
        return h.get_counts_array_index(h.min_value), h.get_counts_array_index(h.max_value) + 1

    def _percentiles(self, counts: np.ndarray, lo: int) -> tuple[int, list[int], int]:
        """(count, [p50, p99, p99.9], max) of a slice of counts starting at index ``lo``."""
        cum = self._cum[: counts.size]
        np.cumsum(counts, out=cum)
        total = int(cum[-1]) if cum.size else 0
        if not total:
            return 0, [0, 0, 0], 0
        values = self._values
        ps = [int(values[lo + int(np.searchsorted(cum, _target(p, total)))]) for p in PERCENTILES]
        return total, ps, int(values[lo + int(np.searchsorted(cum, total))])

    def fill(self, rec: np.ndarray, now_ns: int) -> None:
        """Write the snapshot at ``now_ns`` into a one-record ``STAGE_LATENCY`` array (``seq`` and
        ``checksum`` are left to the channel)."""
        roll = now_ns - self._t_new >= self.window_ns
        for i, stage in enumerate(self.stages):
            stage.fold()
            if stage.hist.total_count:
                lo, hi = self._range(i)
                counts = self._counts[i][lo:hi]
                count, ps, mx = self._percentiles(counts, lo)
                diff = self._diff[: hi - lo]
                np.subtract(counts, self._old[i][lo:hi], out=diff)
                wcount, wps, wmx = self._percentiles(diff, lo)
            else:
                lo = hi = 0
                count, ps, mx, wcount, wps, wmx = 0, [0, 0, 0], 0, 0, [0, 0, 0], 0
            rec["run_count"][0, i] = count
            rec["win_count"][0, i] = wcount
            for name, v, w in zip(_FIELDS, ps, wps, strict=True):
                rec[f"run_{name}"][0, i] = v
                rec[f"win_{name}"][0, i] = w
            rec["run_max_ns"][0, i] = mx
            rec["win_max_ns"][0, i] = wmx
            if roll:
                # The ranges only widen (the run's histograms are never reset), so copying the current
                # range overwrites everything an older snapshot held.
                self._old[i], self._new[i] = self._new[i], self._old[i]
                self._new[i][lo:hi] = self._counts[i][lo:hi]
        rec["t_pub"] = now_ns
        rec["t_start"] = self.t_start
        rec["window_ns"] = now_ns - self._t_old
        if roll:
            self._t_old, self._t_new = self._t_new, now_ns


class LatencyPublisher:
    """Publishes a :class:`StageLatencyView` snapshot when ``interval_ns`` has passed; call
    :meth:`on_timer` from a housekeeping timer (a clock compare when nothing is due)."""

    def __init__(self, view: StageLatencyView, channel: LatestValue, interval_ns: int = INTERVAL_NS) -> None:
        self.view = view
        self.channel = channel
        self.interval_ns = interval_ns
        self._next = view.t_start
        self.published = 0

    def on_timer(self, now_ns: int) -> bool:
        if now_ns < self._next:
            return False
        self.view.fill(self.channel.tx, now_ns)
        self.channel.publish()
        self.published += 1
        self._next = now_ns + self.interval_ns
        return True


def _us(v: int) -> float:
    return round(v / 1000, 3)


def decode(rec: np.void, now_ns: int) -> dict[str, Any]:
    """A ``STAGE_LATENCY`` record as plain data; per stage the shape of
    :func:`fastmm.monitor.journal_stats.parse_latency_table` (count, p50_us, p99_us, p999_us, max_us)."""
    out: dict[str, Any] = {"age_ms": (now_ns - int(rec["t_pub"])) // 1_000_000,
                           "run_s": round((int(rec["t_pub"]) - int(rec["t_start"])) / 1e9, 3),
                           "window_s": round(int(rec["window_ns"]) / 1e9, 3)}
    for part, key in (("run", "run"), ("win", "window")):
        cols = {k: rec[f"{part}_{k}_ns"] for k in ("p50", "p99", "p999", "max")}
        out[key] = {stage: {"count": int(rec[f"{part}_count"][i]),
                            **{f"{k}_us": _us(int(col[i])) for k, col in cols.items()}}
                    for i, stage in enumerate(LATENCY_STAGES)}
    return out


def read_latency(ch: LatestValue, now_ns: int) -> dict[str, Any] | None:
    """The newest snapshot on a channel, or None when the quoter has published none (or died mid-write)."""
    if ch.read() <= 0:
        return None
    return decode(ch.rx[0], now_ns)
