"""The operator tools without an engine: journal statistics and tailing, the Prometheus exporter over
real HTTP, the session report from a written journal, the host checks, the cancel pass's bookkeeping,
and bad input to every command (one clear line, a non-zero exit, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from ops_helpers import BIN, host_tree

from fastmm.config import Config, ProcessesConfig, load_config
from fastmm.journal import Journal
from fastmm.latency import LatencyRecorder
from fastmm.monitor.files import JournalTail
from fastmm.monitor.journal_stats import JournalStats, parse_latency_table, reject_reason
from fastmm.monitor.metrics import EngineCollector, serve
from fastmm.ops.cancel import OrderCanceler
from fastmm.ops.host import HostFacts, read_facts
from fastmm.ops.host_check import Check, check_host
from fastmm.report.make import make_report
from fastmm.report.session import build_session, read_records
from fastmm.venues.truex.codec import ExecutionReport, OrderCancelReject

T0 = 1_795_000_000_000_000_000
MS = 1_000_000


def _session(j: Journal) -> None:
    """A short, realistic session: two quotes, a replace refused, fills on both sides, a hedge."""
    j.append("session", T0, session="oe", event="logged_on", next_sender=2, next_target=1)
    j.append("phase", T0 + 1, detail="quoting started")
    j.append("order", T0 + 10 * MS, cl_ord_id="b1", side="1", price_ticks=119990, qty_lots=1000)
    j.append("order", T0 + 10 * MS, cl_ord_id="a1", side="2", price_ticks=120020, qty_lots=1000)
    j.append("ack", T0 + 12 * MS, cl_ord_id="b1", order_id="X1")
    j.append("ack", T0 + 13 * MS, cl_ord_id="a1", order_id="X2")
    j.append("replace", T0 + 20 * MS, cl_ord_id="b2", orig_cl_ord_id="b1", side="1", price_ticks=119992,
             qty_lots=1000)
    j.append("cancel_reject", T0 + 24 * MS, cl_ord_id="b2", orig_cl_ord_id="b1", reason=0,
             text="<script>too late</script>", ord_status="0")
    j.append("fill", T0 + 1000 * MS, cl_ord_id="b1", exec_id="E1", side="1", px_ticks=120000, qty_lots=1000,
             leaves_lots=0, liquidity=1, fee="0.6")
    j.append("fill", T0 + 2000 * MS, cl_ord_id="a1", exec_id="E2", side="2", px_ticks=120010, qty_lots=1000,
             leaves_lots=0, liquidity=1, fee="0")
    j.append("fill", T0 + 2000 * MS, cl_ord_id="a1", exec_id="E2", side="2", px_ticks=120010, qty_lots=1000,
             leaves_lots=0, liquidity=1, fee="0")                     # a resent duplicate: booked once
    j.append("order", T0 + 2100 * MS, cl_ord_id="b3", side="1", price_ticks=120004, qty_lots=500)
    j.append("reject", T0 + 2101 * MS, cl_ord_id="zz", text="Invalid client")
    j.append("fill", T0 + 2500 * MS, cl_ord_id="b3", exec_id="E3", side="1", px_ticks=120004, qty_lots=500,
             leaves_lots=0, liquidity=1, fee="0")
    j.append("hedge_fill", T0 + 3000 * MS, exec_id="K1", side="SELL", qty_lots=500, price="60001.5",
             fee="0.78", source="quoter")
    j.append("cancel", T0 + 4000 * MS, cl_ord_id="c1", orig_cl_ord_id="b9", side="1")
    j.append("canceled", T0 + 4003 * MS, cl_ord_id="c1", orig_cl_ord_id="b9", text="")


def test_journal_stats_round_trips_rejects_and_rate(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.jsonl") as j:
        _session(j)
    records, corrupt = read_records(tmp_path / "journal.jsonl")
    assert corrupt == 0
    st = JournalStats(rate_window_s=10.0)
    st.feed_all(records)
    st.feed({"kind": "order"})                            # no t_ns: ignored, logged once, no crash
    s = st.summary(T0 + 5000 * MS)
    assert s["order_messages"] == {"order": 3, "replace": 1, "cancel": 1}
    assert s["rejects"] == {"cancel_reject:0": 1, "invalid_client": 1}
    assert s["round_trips"]["order_to_ack"]["count"] == 2
    assert s["round_trips"]["cancel_to_canceled"]["count"] == 1
    assert s["round_trips"]["to_reject"]["count"] == 1     # the refused replace
    assert abs(s["round_trips"]["cancel_to_canceled"]["p50_ms"] - 3.0) < 0.01
    assert s["fills"] == {"buy": 2, "sell": 2} and s["hedge_fills"] == {"sell": 1}
    assert s["order_rate_per_s"] == 0.5                    # 5 order messages in the last 10 s
    assert st.order_rate(T0 + 60_000 * MS) == 0.0
    assert reject_reason({"kind": "reject", "business_reason": 9}) == "business:9"
    assert reject_reason({"kind": "hedge_reject", "reason": "EOrder:Insufficient funds"}) == \
        "hedge:eorder_insufficient_funds"


def test_reject_reasons_have_bounded_cardinality() -> None:
    st = JournalStats()
    for i in range(100):
        st.feed({"kind": "reject", "t_ns": T0 + i, "cl_ord_id": f"x{i}", "text": f"reason {i}"})
    assert len(st.rejects) == 33 and st.rejects["other"] == 100 - 32


def test_journal_tail_follows_rotation_without_loss_or_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = Journal(path, "flush", rotate_bytes=4096)
    tail = JournalTail(path)
    assert tail.poll() == []
    seen: list[int] = []
    for i in range(400):
        j.append("note", T0 + i, detail="x" * 40, i=i)
        if i % 37 == 0:
            seen += [r["i"] for r in tail.poll()]
    j.close()
    seen += [r["i"] for r in tail.poll()]
    assert len(list(tmp_path.glob("journal.jsonl.*"))) >= 3, "the journal rotated several times"
    assert seen == list(range(400))
    with path.open("ab") as f:                             # a torn line waits for its end
        f.write(b'{"seq": 999, "t_ns": 1, "kind": "no')
    assert tail.poll() == []
    with path.open("ab") as f:
        f.write(b'te"}\nnot json\n')
    assert [r["seq"] for r in tail.poll()] == [999]
    tail.close()


def test_latency_table_round_trip() -> None:
    rec = LatencyRecorder()
    for v in (1000, 2000, 3000, 50_000):
        rec["wake_to_decide"].record(v)
    parsed = parse_latency_table(rec.table())
    assert parsed["wake_to_decide"]["count"] == 4 and parsed["recv_to_pub"]["count"] == 0
    assert 1.9 < parsed["wake_to_decide"]["p50_us"] < 2.1 and parsed["wake_to_decide"]["max_us"] >= 49.9
    assert parse_latency_table("garbage\nx 1 2 3 4 five\n") == {}


def test_metrics_served_over_http_follow_the_journal(tmp_path: Path) -> None:
    state = tmp_path / "inst"
    j = Journal(state / "journal.jsonl")
    _session(j)
    rec = LatencyRecorder()
    rec["wake_to_decide"].record(120_000)
    (state / "latency.quoter.txt").write_text(rec.table())
    collector = EngineCollector(f"nosuch{os.getpid()}", state)
    server, thread = serve(collector, 0)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        assert "fastmm_up 0.0" in text
        assert 'fastmm_rejects_total{reason="invalid_client"} 1.0' in text
        assert 'fastmm_order_messages_total{type="order"} 3.0' in text
        assert 'fastmm_truex_fill_btc_total{side="buy"} 0.15' in text
        assert 'fastmm_roundtrip_order_to_ack_seconds_bucket{le="0.0025"} 1.0' in text
        assert 'fastmm_roundtrip_order_to_ack_seconds_count 2.0' in text
        assert 'fastmm_stage_latency_seconds{quantile="0.5",stage="wake_to_decide",window="run"} 0.00012' in text
        assert "fastmm_stage_latency_live 0.0" in text, "no running quoter: the table of its last exit"
        j.append("reject", T0 + 5000 * MS, cl_ord_id="q", business_reason=9, text="throttled")
        j.append("reject", T0 + 5001 * MS, cl_ord_id="q2", business_reason=9, text="throttled")
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'fastmm_rejects_total{reason="business:9"} 2.0' in text
        assert 'fastmm_rejects_total{reason="invalid_client"} 1.0' in text, "records are counted once"
        # Concurrent scrapes do not corrupt the counters.
        errors: list[BaseException] = []

        def scrape() -> None:
            try:
                urllib.request.urlopen(url, timeout=10).read()
            except BaseException as e:
                errors.append(e)
        threads = [threading.Thread(target=scrape) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert errors == []
        assert collector.stats.records["reject"] == 3
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        collector.close()
        j.close()


def test_report_from_a_written_journal(tmp_path: Path) -> None:
    state = tmp_path / "inst"
    with Journal(state / "journal.jsonl") as j:
        _session(j)
        j.append("mark", T0 + 5, fair_mid_e8=6_000_025_000_000)          # the quoter's fair mid, 60000.25
        j.append("mark", T0 + 3500 * MS, fair_mid_e8=6_000_100_000_000)
    with (state / "journal.jsonl").open("ab") as f:
        f.write(b'{"seq": 100, "kind": "fill", "t_ns": 5}\n')   # a fill without its fields: skipped
        f.write(b"this line is not json\n")
        f.write(b'{"seq": 101, "t_ns": 9, "kind": "or')          # torn by a crash
    cfg = Config()
    records, corrupt = read_records(state / "journal.jsonl")
    assert corrupt == 1
    s = build_session(records, cfg)
    assert s.skipped == 1
    assert [(m, src) for _, m, src in s.mids if src == "journal"] == [(60000.25, "journal"), (60001.0, "journal")]
    assert s.final["last_mid"] == 60001.0, "PnL is marked to the journalled fair mid"
    assert s.final["position_btc"] == 0.0
    assert Decimal(str(s.final["realized"])) == Decimal("0.475")  # 0.1 x 5.00 + 0.05 x (60001.5 - 60002)
    assert Decimal(str(s.final["fees"])) == Decimal("1.38")
    assert [f.venue for f in s.fills] == ["truex", "truex", "truex", "kraken"]
    bids = [b for _, b, _ in s.quotes]
    assert 59996.0 in bids, "the replace is drawn at its new price while in flight"
    assert s.quotes[bids.index(59996.0) + 1][1] == 59995.0, "the refused replace puts the old price back"
    summ = make_report(state / "journal.jsonl", tmp_path / "out", cfg)
    png = (tmp_path / "out" / "session.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    html = (tmp_path / "out" / "session.html").read_text()
    assert "<script>" not in html and "cancel_reject:0" in html and "invalid_client" in html
    assert summ["fills"] == {"truex": 3, "kraken": 1} and summ["corrupt_lines"] == 1
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["rebuilt"]["trades"] == 4


def test_report_of_an_empty_journal(tmp_path: Path) -> None:
    (tmp_path / "journal.jsonl").write_text("")
    summ = make_report(tmp_path / "journal.jsonl", tmp_path / "out", Config())
    assert summ["records"] == 0 and (tmp_path / "out" / "session.png").exists()


def _fastmm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMM_")}
    return subprocess.run([str(BIN / "fastmm"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


def test_bad_input_to_the_commands(tmp_path: Path) -> None:
    cases = [
        (("report", str(tmp_path / "none.jsonl")), 2, "no such journal"),
        (("report", str(tmp_path)), 2, "is a folder"),
        (("metrics", "--port", "70000"), 2, "--port"),
        (("ops", "wait", "--phase", "SLEEPING", "--timeout", "0"), 2, "--phase"),
        (("ops", "wait", "--phase", "QUOTING", "--timeout", "0.2"), 1, "timed out"),
        (("ops", "pids"), 1, "no live process"),
        (("ops", "cancel-orders"), 0, "lists no order"),
    ]
    for args, code, text in cases:
        p = _fastmm(*args, cwd=tmp_path)
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        assert text in p.stdout + p.stderr, (args, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr


def test_status_of_an_instance_that_never_ran(tmp_path: Path) -> None:
    p = _fastmm("status", "--json", cwd=tmp_path)
    st = json.loads(p.stdout)
    assert p.returncode == 1 and st["running"] is False and "last_report" not in st


def test_host_check_rules_on_tuned_and_untuned_hosts(tmp_path: Path) -> None:
    host_tree(tmp_path / "tuned", cpus=8, tuned=True)
    host_tree(tmp_path / "untuned", cpus=8)
    cfg = load_config(None, {"FASTMM_PROCESSES__QUOTER": "[5]", "FASTMM_PROCESSES__FEED_COINBASE": "[2]"})
    good = {c.name: c for c in check_host(read_facts(tmp_path / "tuned"), cfg)}
    assert good["isolated CPUs"].level == "ok" and "2,3,4,5" in good["isolated CPUs"].detail
    for name in ("pinning", "CPU governor", "transparent huge pages", "IRQ affinity", "irqbalance", "clock sync"):
        assert good[name].level == "ok", good[name]
    bad = {c.name: c for c in check_host(read_facts(tmp_path / "untuned"), cfg)}
    for name in ("isolated CPUs", "CPU governor", "transparent huge pages", "clock sync"):
        assert bad[name].level == "warn", bad[name]
    spin = load_config(None, {"FASTMM_SHM__WAIT": "spin"})
    assert {c.name: c for c in check_host(HostFacts(cpus=2), spin)}["wait strategy"].level == "warn"
    shared = Config(processes=ProcessesConfig(quoter=[2], hedger=[2]))
    assert any(c.name == "quoter CPU" and c.level == "warn" for c in check_host(HostFacts(cpus=8), shared))
    p = _fastmm("ops", "host-check", "--root", str(tmp_path / "untuned"), "--strict", cwd=tmp_path)
    assert p.returncode == 1 and "WARN  transparent huge pages" in p.stdout
    p = _fastmm("ops", "host-check", "--json", cwd=tmp_path)          # this machine, read-only
    assert p.returncode == 0 and all(Check(**c).level in ("ok", "warn", "info") for c in json.loads(p.stdout))


def _er(exec_type: str, cl: str, orig: str = "", leaves: int = 0) -> ExecutionReport:
    return ExecutionReport(1, False, "X", cl, orig, "E" + cl, exec_type, "4", "1", "2", 0, 0, 0, 0, leaves, 0, "0",
                           "1", 0, "", 0, (), "", "")


def test_order_canceler_bookkeeping() -> None:
    c = OrderCanceler({"k1": "o1", "k2": "o2", "k3": "o3", "k4": "o4"})
    c.on_report(_er("4", "k1", "o1"))
    c.on_report(_er("F", "o2", leaves=0))
    c.on_report(OrderCancelReject(1, "NONE", "k3", "o3", "1", 1, "8", "unknown order"))
    assert not c.done and c.waiting == {"o4"}
    c.on_report(OrderCancelReject(1, "X", "k4", "o4", "1", 0, "1", "busy"))
    assert c.done and (c.canceled, c.filled, c.gone, c.unconfirmed) == (["o1"], ["o2"], ["o3"], ["o4"])


def test_order_canceler_sends_a_throttled_cancel_again() -> None:
    from fastmm.venues.truex.codec import BusinessMessageReject

    c = OrderCanceler({"k1": "o1"}, ["o2"])
    assert c.waiting == {"o1", "o2"}
    c.on_report(BusinessMessageReject(1, 5, "F", "k1", 8, "Throttle limit exceeded"))
    assert c.retry == ["o1"] and c.waiting == {"o1", "o2"}     # still waiting: another cancel will go
    c.on_report(BusinessMessageReject(1, 6, "F", "k9", 8, "Throttle limit exceeded"))  # not ours
    assert c.retry == ["o1"]


@pytest.mark.parametrize("name", ["fastmm.service", "fastmm-metrics.service", "fastmm@.service"])
def test_units_keep_secrets_out_of_argv(name: str) -> None:
    text = (Path(__file__).resolve().parents[2] / "ops" / name).read_text()
    exec_lines = [ln for ln in text.splitlines() if ln.startswith("Exec")]
    assert exec_lines and not any("FASTMM_" in ln or "secret" in ln.lower() for ln in exec_lines)
