"""Prometheus metrics of an instance, read without touching the engine: its journals and shared memory.

Two halves, as everywhere in fastmm:

* pure core: :func:`families` turns a status snapshot (:func:`fastmm.monitor.status.read_status`, which
  carries the running quoter's live per-stage latency, see :mod:`fastmm.procs.latency_channel`), the
  journal statistics (:class:`fastmm.monitor.journal_stats.JournalStats`) and the quoter's latency table
  into Prometheus metric families. Time is an argument.
* shells: :class:`EngineCollector` gathers everything at scrape time (journals through
  :class:`fastmm.monitor.files.JournalTail`), and :func:`serve` exposes it on loopback with
  prometheus-client's HTTP server (text exposition format).

The exporter is a separate process (``fastmm metrics``) so it cannot disturb trading: it attaches to the
instance's latest-value channels as a reader (a reader never blocks the writer of a seqlock), and it
only reads files the engine appends to. Nothing here writes anything the engine reads.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fastmm.config import InstrumentConfig
from fastmm.instrument import Instrument
from fastmm.monitor.files import JournalTail, read_latency_file
from fastmm.monitor.journal_stats import BUCKETS_S, ORDER_MESSAGE_KINDS, JournalStats
from fastmm.monitor.status import read_status


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
