"""Operational metrics of an instance, read without touching the engine: its journals and shared memory.

Two halves, as everywhere in fastmm:

* pure cores: :class:`JournalStats` folds journal records (in order, each once) into counters, rates,
  reject reasons and round-trip latencies (order -> ack, cancel -> canceled, replace -> replaced, and
  anything -> reject); :func:`parse_latency_table` reads the per-stage table the quoter writes at exit;
  :func:`families` turns a status snapshot (which carries the running quoter's live per-stage latency,
  see :mod:`fastmm.procs.latency_channel`) plus those into Prometheus metric families. Time is an
  argument.
* shells: :class:`JournalTail` reads the lines appended to a journal since the last call (following a
  rotation), :class:`EngineCollector` gathers everything at scrape time, and :func:`serve` exposes it on
  loopback with prometheus-client's HTTP server (text exposition format).

The exporter is a separate process (``fastmm metrics``) so it cannot disturb trading: it attaches to the
instance's latest-value channels as a reader (a reader never blocks the writer of a seqlock), and it
only reads files the engine appends to. Nothing here writes anything the engine reads.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from fastmm.config import InstrumentConfig
from fastmm.core.types import Side
from fastmm.instrument import Instrument
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

log = logging.getLogger("fastmm.metrics")
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


class JournalTail:
    """Yields the records appended to a journal since the last :meth:`poll`; follows a rotation (the
    active file renamed away and a new one created) by draining the old file through the descriptor it
    still holds. A torn last line stays buffered until its newline arrives."""

    def __init__(self, path: str | os.PathLike[str], *, from_end: bool = False,
                 max_read: int = 16 << 20) -> None:
        self.path = Path(path)
        self.from_end = from_end
        self.max_read = max_read
        self._f: Any = None
        self._ino = -1
        self._partial = b""

    def _open(self) -> bool:
        try:
            f = self.path.open("rb")
        except OSError:
            return False
        self._f = f
        self._ino = os.fstat(f.fileno()).st_ino
        self._partial = b""
        if self.from_end:
            f.seek(0, os.SEEK_END)
            self.from_end = False      # only the first file: a new one after a rotation is read whole
        return True

    def _read(self) -> list[dict[str, Any]]:
        data = self._partial + self._f.read(self.max_read)
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return list(parse_lines(data[:cut]))

    def poll(self) -> list[dict[str, Any]]:
        if self._f is None and not self._open():
            return []
        out = self._read()
        try:
            ino = self.path.stat().st_ino
        except OSError:
            ino = self._ino
        if ino != self._ino:           # rotated: finish the old file, then start on the new one
            out += self._read()
            self.close()
            if self._open():
                out += self._read()
        return out

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_tail(path: str | os.PathLike[str], max_bytes: int = 2 << 20) -> list[dict[str, Any]]:
    """The complete records in the last ``max_bytes`` of a journal file (for a one-shot status)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    if size > max_bytes:
        data = data[data.find(b"\n") + 1:]      # the first line is probably cut
    data = data[: data.rfind(b"\n") + 1]
    return list(parse_lines(data))


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


def read_latency_file(state_path: Path) -> dict[str, Any] | None:
    """The quoter's latency table and when it was written, or None when there is none yet."""
    p = state_path / "latency.quoter.txt"
    try:
        text = p.read_text()
        mtime = p.stat().st_mtime
    except OSError:
        return None
    return {"written_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(mtime)), "epoch_s": mtime,
            "stages": parse_latency_table(text)}


# -- Prometheus -----------------------------------------------------------------------------------
def families(status: dict[str, Any], stats: JournalStats, latency: dict[str, Any] | None,
             now_ns: int, instrument: Instrument | None = None) -> list[Any]:
    """Every metric family of one scrape, from plain data (no I/O); quantities in lots become BTC with
    ``instrument``'s lot (the default instrument's when none is given)."""
    lot = (instrument if instrument is not None else Instrument.from_config(InstrumentConfig())).lot_size
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    from fastmm.procs.lifecycle import Phase

    out: list[Any] = []

    def family(cls: Any, name: str, doc: str, value: float | None = None, labels: list[str] | None = None,
               rows: Iterable[tuple[list[str], float]] = ()) -> None:
        f = cls(name, doc, value=value, labels=labels)
        for lv, v in rows:
            f.add_metric(lv, v)
        out.append(f)

    gauge = functools.partial(family, GaugeMetricFamily)
    counter = functools.partial(family, CounterMetricFamily)

    running = bool(status.get("running"))
    gauge("fastmm_up", "1 when the instance's supervisor is running", 1.0 if running else 0.0)
    phase = status.get("phase")
    gauge("fastmm_phase", "1 for the current lifecycle phase", labels=["phase"],
          rows=[([p.name], 1.0 if running and p.name == phase else 0.0) for p in Phase])
    procs = status.get("processes", {})
    gauge("fastmm_process_heartbeat_age_seconds", "time since the process's last heartbeat",
          labels=["process"], rows=[([p], h["age_ms"] / 1000) for p, h in procs.items()])
    for flag in ("fresh", "logged_on", "subscribed", "quoting", "risk_tripped", "journal_failed"):
        gauge(f"fastmm_process_{flag}", f"1 when the process reports {flag.replace('_', ' ')}",
              labels=["process"], rows=[([p], float(h[flag])) for p, h in procs.items()])
    counter("fastmm_process_restarts", "restarts of the process by the supervisor", labels=["process"],
            rows=[([p], h["restarts"]) for p, h in procs.items()])
    counter("fastmm_process_messages", "venue messages handled by the process", labels=["process"],
            rows=[([p], h["messages"]) for p, h in procs.items()])
    counter("fastmm_process_errors", "errors counted by the process", labels=["process"],
            rows=[([p], h["errors"]) for p, h in procs.items()])
    books = status.get("books", {})
    gauge("fastmm_book_usable", "1 when the feed's book is fresh and usable", labels=["book"],
          rows=[([n], float(b["usable"])) for n, b in books.items()])
    gauge("fastmm_book_age_seconds", "time since the book was last published", labels=["book"],
          rows=[([n], b["age_ms"] / 1000) for n, b in books.items()])
    gauge("fastmm_book_recv_to_pub_seconds", "frame read to record published, latest record",
          labels=["book"], rows=[([n], b["recv_to_pub_us"] / 1e6) for n, b in books.items()
                                 if b.get("recv_to_pub_us") is not None])
    gauge("fastmm_book_price", "best bid and ask of each book", labels=["book", "side"],
          rows=[r for n, b in books.items() if b["usable"]
                for r in (([n, "bid"], b["bid"]), ([n, "ask"], b["ask"]))])
    pos = status.get("position")
    if pos:
        gauge("fastmm_position_btc", "net BTC position (TrueX and hedge fills)", pos["btc"])
        gauge("fastmm_avg_entry_price", "FIFO average entry of the open position, PYUSD", pos["avg_entry"])
        gauge("fastmm_pnl_pyusd", "PnL by component, PYUSD (total = realized + unrealized - fees)",
              labels=["component"], rows=[([c], pos[c]) for c in ("realized", "unrealized", "fees", "pnl")])
        gauge("fastmm_fair_mid", "fair mid of the price aggregator, PYUSD", pos["fair_mid"])
        gauge("fastmm_live_orders", "our orders working on TrueX", pos["live_orders"])
        gauge("fastmm_quote_price", "our best quote on TrueX (absent when no order on that side)",
              labels=["side"], rows=[([s], pos[f"quote_{s}"]) for s in ("bid", "ask") if pos[f"quote_{s}"]])
        counter("fastmm_orders_sent", "order messages sent by the quoter since it started",
                pos["orders_sent"])
        counter("fastmm_fills", "fills booked by the quoter since it started", labels=["venue"],
                rows=[(["truex"], pos["truex_fills"]), (["kraken"], pos["hedge_fills"])])
        gauge("fastmm_risk_tripped", "1 when the kill switch is tripped", float(pos["risk_tripped"]))
    counter("fastmm_journal_records", "journal records read, by kind", labels=["kind"],
            rows=[([k], n) for k, n in sorted(stats.records.items())])
    counter("fastmm_order_messages", "order messages journalled, by type", labels=["type"],
            rows=[([k], stats.order_messages.get(k, 0)) for k in ORDER_MESSAGE_KINDS])
    gauge("fastmm_order_messages_per_second", "order messages per second over the last "
          f"{stats.rate_window_ns / 1e9:g} s (TrueX allows 10)", stats.order_rate(now_ns))
    counter("fastmm_rejects", "rejects by reason (TrueX, cancel rejects, hedge rejects)", labels=["reason"],
            rows=[([k], n) for k, n in sorted(stats.rejects.items())])
    counter("fastmm_truex_fills", "TrueX fills journalled, by side", labels=["side"],
            rows=[([s], stats.fills.get(s, 0)) for s in ("buy", "sell")])
    counter("fastmm_truex_fill_btc", "TrueX filled quantity, by side, BTC", labels=["side"],
            rows=[([s], float(stats.fill_lots.get(s, 0) * lot)) for s in ("buy", "sell")])
    counter("fastmm_hedge_fills", "hedge fills booked by the quoter, by side", labels=["side"],
            rows=[([s], stats.hedge_fills.get(s, 0)) for s in ("buy", "sell")])
    counter("fastmm_risk_events", "risk events journalled", stats.risk_events)
    for name, rt in stats.round_trips.items():
        cum = [(str(b), float(n)) for b, n in zip(BUCKETS_S, rt.buckets, strict=True)]
        cum.append(("+Inf", float(rt.count)))
        h = HistogramMetricFamily(f"fastmm_roundtrip_{name}_seconds",
                                  f"journal round trip {name.replace('_', ' ')} (quoter wall clock)",
                                  buckets=cum, sum_value=rt.sum_s)
        out.append(h)
    _stage_latency(gauge, status.get("live_latency"), latency)
    return out


_QUANTILES = (("0.5", "p50_us"), ("0.99", "p99_us"), ("0.999", "p999_us"), ("1", "max_us"))


def _stage_latency(gauge: Any, live: dict[str, Any] | None, table: dict[str, Any] | None) -> None:
    """The quoter's per-stage latency: live from its channel while it runs (window ``run``: since it
    started, ``recent``: the last 10 to 20 s), else the table it wrote at its last exit (``run``)."""
    if live is not None:
        views = {"run": live["run"], "recent": live["window"]}
    elif table is not None:
        views = {"run": table["stages"]}
    else:
        return
    gauge("fastmm_stage_latency_live", "1 when the stage latencies are the running quoter's own (live), "
          "0 when they are the table of its last exit", 1.0 if live is not None else 0.0)
    gauge("fastmm_stage_latency_seconds", "quoter per-stage latency percentiles (quantile 1 = max), by "
          "window: run = since the quoter started, recent = the last 10 to 20 s",
          labels=["stage", "quantile", "window"],
          rows=[([st, q, w], v[key] / 1e6) for w, stages in views.items() for st, v in stages.items()
                for q, key in _QUANTILES])
    gauge("fastmm_stage_latency_count", "samples behind each stage's percentiles", labels=["stage", "window"],
          rows=[([st, w], v["count"]) for w, stages in views.items() for st, v in stages.items()])
    if live is not None:
        gauge("fastmm_stage_latency_window_seconds", "span of the recent window", live["window_s"])
        gauge("fastmm_stage_latency_age_seconds", "age of the quoter's latest latency snapshot (about 1 s "
              "when it is healthy)", live["age_ms"] / 1000)
    elif table is not None:
        gauge("fastmm_stage_latency_written_timestamp_seconds", "when the quoter wrote the latency table",
              table["epoch_s"])


class EngineCollector:
    """A prometheus-client collector that reads the instance at scrape time (no background thread)."""

    def __init__(self, instance: str, state_path: Path, journal_file: str = "journal.jsonl",
                 rate_window_s: float = 10.0, instrument: Instrument | None = None) -> None:
        self.instance = instance
        self.instrument = instrument
        self.state_path = state_path
        self.stats = JournalStats(rate_window_s)
        self.tails = [JournalTail(state_path / journal_file), JournalTail(state_path / "hedger.jsonl")]
        self._lock = threading.Lock()

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        from fastmm.status import read_status

        with self._lock:
            for tail in self.tails:
                self.stats.feed_all(tail.poll())
            return read_status(self.instance, instrument=self.instrument), read_latency_file(self.state_path)

    def collect(self) -> Iterator[Any]:
        status, latency = self.snapshot()
        with self._lock:
            yield from families(status, self.stats, latency, time.time_ns(), self.instrument)

    def close(self) -> None:
        for tail in self.tails:
            tail.close()


def serve(collector: EngineCollector, port: int, host: str = "127.0.0.1") -> tuple[Any, Any]:
    """Serve ``/metrics`` on ``host:port`` (0 = any free port); returns (server, thread)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return start_http_server(port, addr=host, registry=registry)


def run_exporter(collector: EngineCollector, port: int, host: str, stop: threading.Event,
                 out: Any = None) -> int:
    server, thread = serve(collector, port, host)
    bound = server.server_address[1]
    print(f"fastmm metrics: serving http://{host}:{bound}/metrics for instance {collector.instance!r}",
          file=out, flush=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        with contextlib.suppress(Exception):
            collector.close()
    return 0
