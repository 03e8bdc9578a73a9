"""The quoter's live per-stage latency: the view's percentiles against hdrh's own, the recent window, the
publishing cadence, and the record read back through real shared memory by ``fastmm status`` and the
Prometheus exporter (the engine itself is covered by test_ops_runbooks.py)."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fastmm.config import load_config
from fastmm.latency import LatencyRecorder
from fastmm.monitor.journal_stats import JournalStats
from fastmm.monitor.metrics import families
from fastmm.monitor.status import read_status, render
from fastmm.procs.latency_channel import (
    LatencyPublisher,
    StageLatencyView,
    decode,
    highest_equivalent_values,
)
from fastmm.procs.lifecycle import Phase
from fastmm.procs.plan import QUOTER, QUOTER_LATENCY, channel_specs, create_channels
from fastmm.shm import LatestValue, list_segments, unlink_instance
from fastmm.shm.instance_lock import InstanceLock
from fastmm.shm.records import LATENCY_STAGES, STAGE_LATENCY

S = 1_000_000_000


def test_index_values_match_hdrh() -> None:
    h = LatencyRecorder()["wake_to_decide"].hist
    table = highest_equivalent_values(h)
    for i in (*range(0, 4096, 7), *range(4096, h.counts_len, 97), h.counts_len - 1):
        assert table[i] == h.get_highest_equivalent_value(h.get_value_from_index(i)), i


def test_run_percentiles_are_hdrh_percentiles() -> None:
    rec = LatencyRecorder()
    rnd = random.Random(7)
    for stage, mu in zip(LATENCY_STAGES, (9.0, 10.0, 11.5, 12.0), strict=True):
        for _ in range(5000):
            rec[stage].record(int(rnd.lognormvariate(mu, 1.2)))
    view = StageLatencyView(rec, 0)
    r = np.zeros(1, STAGE_LATENCY)
    view.fill(r, 3 * S)
    for i, stage in enumerate(LATENCY_STAGES):
        h = rec[stage].hist
        assert int(r["run_count"][0, i]) == 5000 == int(r["win_count"][0, i])
        for field, q in (("p50", 50.0), ("p99", 99.0), ("p999", 99.9)):
            assert int(r[f"run_{field}_ns"][0, i]) == h.get_value_at_percentile(q), (stage, field)
        assert int(r["run_max_ns"][0, i]) == h.get_max_value()
    assert int(r["t_pub"][0]) == 3 * S and int(r["window_ns"][0]) == 3 * S


def test_the_recent_window_forgets_what_is_older_than_two_windows() -> None:
    rec = LatencyRecorder()
    view = StageLatencyView(rec, 0, window_ns=10 * S)
    r = np.zeros(1, STAGE_LATENCY)
    k = LATENCY_STAGES.index("pub_to_wake")
    for _ in range(100):
        rec["pub_to_wake"].record(5_000_000)        # a slow start: 5 ms
    view.fill(r, 1 * S)
    view.fill(r, 10 * S)                            # first roll: the snapshot of t=10 s
    for _ in range(50):
        rec["pub_to_wake"].record(20_000)           # then fast: 20 us
    view.fill(r, 15 * S)
    assert int(r["win_count"][0, k]) == 150, "until the second roll the window holds the whole run"
    view.fill(r, 20 * S)                            # second roll: the window now starts at t=10 s
    view.fill(r, 21 * S)
    assert int(r["win_count"][0, k]) == 50 and int(r["run_count"][0, k]) == 150
    assert int(r["window_ns"][0]) == 11 * S
    assert 19_000 < int(r["win_max_ns"][0, k]) < 21_000, "the slow start is out of the window"
    assert int(r["run_max_ns"][0, k]) > 4_900_000, "and still in the run"
    assert int(r["win_count"][0, LATENCY_STAGES.index("recv_to_pub")]) == 0
    assert int(r["win_p99_ns"][0, LATENCY_STAGES.index("recv_to_pub")]) == 0


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(KeyError):
        StageLatencyView(LatencyRecorder(("recv_to_pub",)), 0)


@pytest.fixture
def instance() -> Iterator[str]:
    name = f"livelat{os.getpid()}"
    unlink_instance(name)
    yield name
    unlink_instance(name)
    assert list_segments(name) == []


def test_published_about_once_a_second_and_read_by_status_and_metrics(instance: str) -> None:
    cfg = load_config(None, {"FASTMM_INSTANCE__NAME": instance})
    specs = channel_specs(cfg, (QUOTER,))
    assert any(s.name == QUOTER_LATENCY and s.dtype == STAGE_LATENCY for s in specs)
    lock = InstanceLock.acquire(instance)        # this test plays the supervisor: it holds the instance
    channels = create_channels(cfg, specs)
    try:
        ctl = channels["control"]
        assert isinstance(ctl, LatestValue)
        ctl.tx["phase"] = int(Phase.QUOTING)
        ctl.publish()
        rec = LatencyRecorder()
        writer = LatestValue.attach(instance, QUOTER_LATENCY, STAGE_LATENCY)
        writer.claim_writer()
        pub = LatencyPublisher(StageLatencyView(rec, 100 * S), writer)
        now = 100 * S
        published = 0
        for tick in range(300):                     # 3 s of 10 ms ticks, the timer every 50 ms
            now = 100 * S + tick * 10_000_000
            rec["wake_to_decide"].record(40_000 + tick)
            if tick % 5 == 0:
                published += pub.on_timer(now)
        assert published == pub.published == 3, "about once a second, never per tick"
        st = read_status(instance)
        live = st["live_latency"]
        wtd = live["run"]["wake_to_decide"]
        assert st["running"] and 200 < wtd["count"] < 300 and 40 <= wtd["p50_us"] <= wtd["max_us"] < 41
        assert live["run"]["decide_to_sent"]["count"] == 0 and live["run_s"] == 2.0
        assert decode(writer.tx[0], now)["run"]["wake_to_decide"]["count"] == wtd["count"]
        screen = render(st)
        assert re.search(r"^stage    wake_to_decide  last 2s p50 40\.\d p99 40\.\d p99\.9 40\.\d max 40\.\d us n 2\d\d"
                         r"   run 2s p50 40", screen, re.M), screen
        assert "stage    decide_to_sent  last 2s -   run 2s -" in screen, screen
        parsed = {(s.name, tuple(sorted(s.labels.items()))): s.value
                  for fam in text_string_to_metric_families(_exposition(st)) for s in fam.samples}
        assert parsed[("fastmm_stage_latency_live", ())] == 1.0
        assert parsed[("fastmm_stage_latency_count", (("stage", "wake_to_decide"), ("window", "recent")))] == \
            wtd["count"]
        p50 = parsed[("fastmm_stage_latency_seconds", (("quantile", "0.5"), ("stage", "wake_to_decide"),
                                                        ("window", "run")))]
        assert abs(p50 - wtd["p50_us"] / 1e6) < 1e-9
        writer.close()
    finally:
        for ch in channels.values():
            ch.close()
            ch.unlink()
        lock.close()


def _exposition(st: dict) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    class One:
        def collect(self) -> list:
            return families(st, JournalStats(), None, 0)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(One())
    return generate_latest(reg).decode()
