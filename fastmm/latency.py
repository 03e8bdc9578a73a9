"""Per-stage latency histograms (HDR), cheap to record on the hot path.

Recording into an HDR histogram costs about a microsecond in Python, too much between a tick and the
order it causes. So ``record`` only stores the value in a preallocated numpy buffer; the buffer is
folded into the histogram by ``fold()``, which the owner calls off the hot path (after the order bytes
are written, or on a timer), and automatically when the buffer is full.

Stages follow DESIGN.md: ``recv_to_pub`` (feed: frame read -> record published), ``pub_to_wake``
(shared memory hop), ``wake_to_decide`` (quote engine), ``decide_to_sent`` (FIX encode + write), and
``wire_to_wire`` (simulator-measured, feed frame written -> order bytes read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

STAGES = ("recv_to_pub", "pub_to_wake", "wake_to_decide", "decide_to_sent", "wire_to_wire")
PERCENTILES = (50.0, 99.0, 99.9)
_MAX_NS = 60_000_000_000  # one minute; larger values are clamped and counted as such
_SIG_DIGITS = 3


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float

    def as_dict(self) -> dict[str, float | int]:
        return {"count": self.count, "p50_us": self.p50_us, "p99_us": self.p99_us,
                "p999_us": self.p999_us, "max_us": self.max_us}


class StageHistogram:
    """One stage: a hot-path buffer of raw nanosecond values in front of an HDR histogram."""

    __slots__ = ("_buf", "_n", "clamped", "hist")

    def __init__(self, buffer_size: int = 4096) -> None:
        self.hist = HdrHistogram(1, _MAX_NS, _SIG_DIGITS)
        self._buf = np.zeros(buffer_size, dtype=np.int64)
        self._n = 0
        self.clamped = 0

    def record(self, ns: int) -> None:
        self._buf[self._n] = ns
        self._n += 1
        if self._n == len(self._buf):
            self.fold()

    def fold(self) -> None:
        """Move buffered values into the histogram (call off the hot path)."""
        if not self._n:
            return
        values = self._buf[: self._n]
        np.clip(values, 1, _MAX_NS, out=values)
        self.clamped += int(np.count_nonzero(values == _MAX_NS))
        uniq, counts = np.unique(values, return_counts=True)
        for v, c in zip(uniq.tolist(), counts.tolist(), strict=True):
            self.hist.record_value(v, c)
        self._n = 0

    def summary(self) -> Summary:
        self.fold()
        h = self.hist
        if h.get_total_count() == 0:
            return Summary(0, 0.0, 0.0, 0.0, 0.0)
        p = [h.get_value_at_percentile(q) / 1000.0 for q in PERCENTILES]
        return Summary(h.get_total_count(), p[0], p[1], p[2], h.get_max_value() / 1000.0)

    def encode(self) -> bytes:
        """Compressed HDR payload, to ship a histogram to another process or into a report."""
        self.fold()
        return self.hist.encode()

    def merge_encoded(self, payload: bytes) -> None:
        self.hist.decode_and_add(payload)


def summarize(values: Sequence[int]) -> dict[str, float | int]:
    """count, p50, p99, p99.9 and max (us) of raw nanosecond values, through an HDR histogram."""
    h = StageHistogram(buffer_size=max(1, min(len(values), 1 << 16)))
    for v in values:
        h.record(int(v))
    return h.summary().as_dict()


class LatencyRecorder:
    """A StageHistogram per named stage."""

    def __init__(self, stages: tuple[str, ...] = STAGES) -> None:
        self.stages = {name: StageHistogram() for name in stages}

    def __getitem__(self, stage: str) -> StageHistogram:
        return self.stages[stage]

    def fold(self) -> None:
        for h in self.stages.values():
            h.fold()

    def summaries(self) -> dict[str, Summary]:
        return {name: h.summary() for name, h in self.stages.items()}

    def table(self) -> str:
        rows = ["stage              count      p50_us     p99_us   p99.9_us     max_us"]
        for name, s in self.summaries().items():
            rows.append(f"{name:<16} {s.count:>7} {s.p50_us:>11.1f} {s.p99_us:>10.1f} {s.p999_us:>10.1f}"
                        f" {s.max_us:>10.1f}")
        return "\n".join(rows)
