"""Journal statistics, pure: counters, rates, reject reasons and round-trip latencies folded from journal
records (:class:`JournalStats`), journal lines parsed from bytes (:func:`parse_lines`) and the quoter's
per-stage latency table parsed from its text (:func:`parse_latency_table`). No I/O; time is an argument.

Round trips: order -> ack, cancel -> canceled, replace -> replaced, and anything -> reject, both ends
stamped by the quoter's wall clock. The status view, the Prometheus exporter and the session report all
fold records through this one class.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from fastmm.core.types import Side
from fastmm.journal.records import (
    Cancel,
    CancelReject,
    Fill,
    HedgeFill,
    HedgeReject,
    Order,
    Record,
    RecordError,
    Reject,
    Replace,
    Risk,
    from_dict,
)
from fastmm.latency import StageHistogram
from fastmm.logs import OnceLogger

log = logging.getLogger("fastmm.monitor")
_bad = OnceLogger(log)

# Round-trip stages measured from the journal: both ends are stamped by the quoter's wall clock.
ROUND_TRIPS = ("order_to_ack", "replace_to_replaced", "cancel_to_canceled", "to_reject")
_REQUEST_KINDS = {"order": "order_to_ack", "replace": "replace_to_replaced", "cancel": "cancel_to_canceled"}
_ANSWER_STAGE = {"ack": "order_to_ack", "replaced": "replace_to_replaced", "canceled": "cancel_to_canceled"}
ORDER_MESSAGE_KINDS = ("order", "cancel", "replace")
# Prometheus histogram buckets for round trips, seconds (50 us .. 5 s).
BUCKETS_S = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
             1.0, 2.5, 5.0)
MAX_REASONS = 32          # distinct reject-reason labels kept; the rest are counted as "other"
_MAX_PENDING = 100_000    # requests waiting for an answer (bounded: answers can be lost in a crash)
_REASON_RE = re.compile(r"[^a-z0-9]+")


def as_record(rec: Record | dict[str, Any]) -> Record | None:
    """A record, from a decoded line of either format; None (logged once) when it is not one."""
    if isinstance(rec, Record):
        return rec
    try:
        return from_dict(rec)
    except RecordError as e:
        _bad("metrics: unreadable journal record ignored", f"{e}: {repr(rec)[:120]}")
        return None


def reject_reason(rec: Record | dict[str, Any]) -> str:
    """A short, low-cardinality label for a reject record."""
    r = as_record(rec)
    if isinstance(r, CancelReject):
        return f"cancel_reject:{'unknown' if r.reason is None else r.reason}"
    if isinstance(r, HedgeReject):
        return "hedge:" + (_REASON_RE.sub("_", r.reason.lower()).strip("_")[:40] or "unspecified")
    if isinstance(r, Reject) and r.business_reason is not None:
        return f"business:{r.business_reason}"
    text = r.text if isinstance(r, Reject) else ""
    return _REASON_RE.sub("_", text.lower()).strip("_")[:40] or "unspecified"


class RoundTrip:
    """One round-trip stage: an HDR histogram (percentiles) and Prometheus buckets (cumulative)."""

    __slots__ = ("buckets", "count", "hist", "sum_s")

    def __init__(self) -> None:
        self.hist = StageHistogram(buffer_size=256)
        self.buckets = [0] * len(BUCKETS_S)
        self.count = 0
        self.sum_s = 0.0

    def record(self, ns: int) -> None:
        ns = max(ns, 1)
        self.hist.record(ns)
        s = ns / 1e9
        self.count += 1
        self.sum_s += s
        for i, b in enumerate(BUCKETS_S):
            if s <= b:
                self.buckets[i] += 1

    def percentiles_ms(self) -> dict[str, float]:
        sm = self.hist.summary()
        return {"count": sm.count, "p50_ms": sm.p50_us / 1000, "p99_ms": sm.p99_us / 1000,
                "max_ms": sm.max_us / 1000}


class JournalStats:
    """Counters, rates, reject reasons and round trips from journal records (sans-I/O)."""

    def __init__(self, rate_window_s: float = 10.0, keep_samples: bool = False) -> None:
        self.rate_window_ns = int(rate_window_s * 1e9)
        # (stage, answer t_ns, round trip ns) of every round trip, for plots (off by default: unbounded)
        self.samples: list[tuple[str, int, int]] | None = [] if keep_samples else None
        self.records: Counter[str] = Counter()           # by kind
        self.order_messages: Counter[str] = Counter()    # order / cancel / replace
        self.rejects: Counter[str] = Counter()           # by reason label
        self.fills: Counter[str] = Counter()             # TrueX fills by side (buy / sell)
        self.fill_lots: Counter[str] = Counter()
        self.hedge_fills: Counter[str] = Counter()
        self.hedge_lots: Counter[str] = Counter()
        self.risk_events = 0
        self.round_trips = {name: RoundTrip() for name in ROUND_TRIPS}
        self.last_t_ns = 0
        self._pending: dict[str, tuple[str, int]] = {}
        self._recent: deque[int] = deque()

    def feed(self, rec: Record | dict[str, Any]) -> None:
        r = as_record(rec)
        if r is None:
            return
        kind, t_ns = r.KIND, r.t_ns
        self.records[kind] += 1
        self.last_t_ns = max(self.last_t_ns, t_ns)
        cl = getattr(r, "cl_ord_id", "")
        if isinstance(r, Order | Cancel | Replace):
            self.order_messages[kind] += 1
            self._recent.append(t_ns)
            if cl:
                if len(self._pending) >= _MAX_PENDING:
                    self._pending.pop(next(iter(self._pending)))
                self._pending[cl] = (_REQUEST_KINDS[kind], t_ns)
        elif kind in _ANSWER_STAGE:
            sent = self._pending.pop(cl, None)
            if sent is not None and sent[0] == _ANSWER_STAGE[kind]:
                self._round_trip(sent[0], t_ns, t_ns - sent[1])
        elif isinstance(r, Reject | CancelReject | HedgeReject):
            reason = reject_reason(r)
            if reason not in self.rejects and len(self.rejects) >= MAX_REASONS:
                reason = "other"
            self.rejects[reason] += 1
            sent = self._pending.pop(cl, None)
            if sent is not None:
                self._round_trip("to_reject", t_ns, t_ns - sent[1])
        elif isinstance(r, Fill):
            side = "buy" if r.side == Side.BUY else "sell"
            self.fills[side] += 1
            self.fill_lots[side] += r.qty_lots
            if r.leaves_lots == 0:
                self._pending.pop(cl, None)
        elif isinstance(r, HedgeFill) and r.source == "quoter":
            side = "buy" if r.side == Side.BUY else "sell"
            self.hedge_fills[side] += 1
            self.hedge_lots[side] += r.qty_lots
        elif isinstance(r, Risk):
            self.risk_events += 1

    def _round_trip(self, stage: str, t_ns: int, ns: int) -> None:
        self.round_trips[stage].record(ns)
        if self.samples is not None:
            self.samples.append((stage, t_ns, ns))

    def feed_all(self, records: Iterable[Record | dict[str, Any]]) -> None:
        for rec in records:
            self.feed(rec)

    def order_rate(self, now_ns: int) -> float:
        """Order messages (new, cancel, replace) per second over the last window before ``now_ns``."""
        cut = now_ns - self.rate_window_ns
        q = self._recent
        while q and q[0] <= cut:
            q.popleft()
        return sum(1 for t in q if t <= now_ns) / (self.rate_window_ns / 1e9)

    def summary(self, now_ns: int) -> dict[str, Any]:
        """Plain data for ``fastmm status --json`` and the report."""
        return {
            "records": dict(self.records),
            "order_messages": dict(self.order_messages),
            "order_rate_per_s": round(self.order_rate(now_ns), 3),
            "rejects": dict(self.rejects),
            "fills": dict(self.fills),
            "hedge_fills": dict(self.hedge_fills),
            "risk_events": self.risk_events,
            "round_trips": {k: rt.percentiles_ms() for k, rt in self.round_trips.items() if rt.count},
        }


def parse_lines(data: bytes) -> Iterator[dict[str, Any]]:
    """Journal records from complete lines; a corrupt line is skipped and logged once."""
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            _bad("metrics: corrupt journal line skipped", repr(line[:80]))
            continue
        if isinstance(rec, dict):
            yield rec


def parse_latency_table(text: str) -> dict[str, dict[str, float]]:
    """The quoter's ``latency.quoter.txt`` (:meth:`fastmm.latency.LatencyRecorder.table`) as data."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) != 6:
            continue
        try:
            count, p50, p99, p999, mx = int(parts[1]), *(float(x) for x in parts[2:])
        except ValueError:
            _bad("metrics: unreadable latency table line skipped", line[:80])
            continue
        out[parts[0]] = {"count": count, "p50_us": p50, "p99_us": p99, "p999_us": p999, "max_us": mx}
    return out
