"""The latency harness (bench/latency/, ``fastmm bench latency``): structure and ratios only.

The short run starts real simulators, the real supervised engine and the single-loop baseline, so it
checks what the harness promises (every stage joined from real stamps, stages that add up to wire to
wire, the ring check, memory, the PNG, nothing left behind), never how fast anything was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fastmm.cli import main
from fastmm.cli.bench import load_bench
from fastmm.shm import list_segments

latency = load_bench("latency")


def _frame(seq: int, channel: str = "l2_data") -> str:
    return (f'{{"channel":"{channel}","client_id":"","timestamp":"2024-08-08T23:54:14.000000000Z",'
            f'"sequence_num":{seq},"events":[]}}')


def test_frame_stamps_key_l2_frames_by_connection_and_sequence() -> None:
    st = latency.FrameStamps()
    st(1, _frame(5), 1_000)
    st(1, _frame(6, "market_trades"), 1_100)
    st(1, '{"type":"error","message":"x"}', 1_200)
    st(2, _frame(5), 5_000)          # a reconnect: sequence numbers start again
    assert st.frames == 4
    assert st.by_conn == {1: {5: 1_000}, 2: {5: 5_000}}
    assert st.lookup(5, 2_000) == 1_000       # the new connection had not written it yet
    assert st.lookup(5, 6_000) == 5_000
    assert st.lookup(6, 9_000) is None        # only l2_data frames carry book updates


def test_join_decomposes_wire_to_wire_and_counts_what_it_cannot_match() -> None:
    st = latency.FrameStamps()
    st(1, _frame(10), 1_000)
    st(1, _frame(11), 2_000)
    # cl_ord_id, msg_type, index, venue_seq, t_recv, t_pub, t_wake, t_decide, t_sent, t_tx
    orders = [
        ("a1", "D", 0, 10, 1_100, 1_300, 1_400, 1_900, 2_100, 2_050),
        ("a2", "G", 1, 10, 1_100, 1_300, 1_400, 1_900, 2_400, 2_350),   # read before its send returned
        ("b1", "D", 0, 99, 2_100, 2_200, 2_300, 2_400, 2_500, 0),       # no such frame
        ("c1", "F", 0, 11, 2_100, 2_200, 2_300, 2_400, 2_500, 0),       # never read by the venue
        ("d1", "D", 0, 11, 2_100, 2_000, 2_300, 2_400, 2_500, 0),       # published before received: broken
        ("e1", "D", 0, 11, 2_100, 2_300, 2_250, 2_400, 2_500, 0),       # published after the wake began
        ("f1", "D", 0, 10, 3_000, 3_100, 3_200, 3_300, 3_400, 0),       # the quiet top of frame 10 republished
    ]
    # the frame-10 top, then its keep-fresh republish (same venue seq, a newer receive time): not frame 10's
    events = [10, 1_100, 1_300, 1_400, 1_900, 2, 77, 1, 1, 1, 1, 0, 10, 3_000, 3_100, 3_200, 3_300, 1]
    reads = [("D", "a1", 2_600), ("G", "a2", 2_350), ("D", "b1", 2_600), ("D", "d1", 2_600), ("D", "e1", 2_700),
             ("D", "f1", 3_500)]
    rx_pairs = [1_100, 1_050, 2_100, 0]       # (t_recv, kernel rx): frame 10 stamped, frame 11 not
    j = latency.join({"orders": orders, "events": events}, st, reads, rx_pairs)
    assert j["unmatched_orders"] == {"no_frame": 1, "no_read": 1, "out_of_order": 1, "republished": 1}
    assert j["unmatched_events"] == 1 and j["republished_events"] == 1
    a1, a2, e1 = j["orders"]
    assert e1["pub_to_wake"] == -50 and e1["wire_to_wire"] == 700 == sum(e1[s] for s in latency.CHAIN)
    assert a1["wire_to_wire"] == 1_600 == sum(a1[s] for s in latency.CHAIN)
    assert (a1["write_to_recv"], a1["recv_to_pub"], a1["pub_to_wake"], a1["wake_to_decide"],
            a1["decide_to_sent"], a1["sent_to_read"]) == (100, 200, 100, 500, 200, 500)
    assert a2["sent_to_read"] == -50 and a2["wire_to_wire"] == sum(a2[s] for s in latency.CHAIN)
    assert j["events"]["wire_to_decide"] == [900]
    # kernel stamps: rx of the frame 50 ns before the feed read it, tx inside each order's send
    assert (a1["kernel_rx_to_tx"], a1["rx_to_recv"], a1["decide_to_tx"]) == (1_000, 50, 150)
    assert a2["kernel_rx_to_tx"] == 1_300 and "kernel_rx_to_tx" not in e1
    assert j["unmatched_kernel"] == {"no_rx": 1, "no_tx": 0, "out_of_order": 0}
    assert j["events"]["rx_to_decide"] == [850]
    summary = latency.stage_summaries(j)
    assert summary["orders"]["wire_to_wire"]["count"] == 2                # first orders only
    assert summary["orders"]["wire_to_wire_every_order"]["count"] == 3
    assert summary["kernel"]["kernel_rx_to_tx"]["count"] == 1
    assert summary["kernel"]["kernel_rx_to_tx_every_order"]["count"] == 2
    assert "rx_to_decide" not in summary["events"] and summary["kernel"]["rx_to_decide"]["count"] == 1


@pytest.mark.parametrize("args", [["--speeds", "1,fast"], ["--speeds", "-3"], ["--modes", "threads"],
                                  ["--duration", "0"], ["--sim-cpus", "0-999"],
                                  ["--json", "/nonexistent-folder/latency.json"]])
def test_bad_arguments_exit_2_before_anything_starts(args: list[str], capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    assert main(["bench", "latency", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastmm bench latency: ") and err.count("\n") == 1


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_short_run_structure_ratios_and_cleanup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, png = tmp_path / "latency.json", tmp_path / "latency.png"
    code = main(["bench", "latency", "--speeds", "10,max", "--duration", "2.5", "--json", str(out),
                 "--png", str(png), "--state-dir", str(tmp_path / "state")])
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    runs = {(r["speed"], r["mode"]): r for r in doc["runs"]}
    for r in doc["runs"]:      # whatever happened, nothing is left behind
        assert not [p for p in r.get("pids", []) if _alive(p)], r["pids"]
        if "instance" in r:
            assert list_segments(r["instance"]) == []
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"fastmm.bench{os.getpid()}")]
    assert code == 0, [r.get("error") for r in doc["runs"]]
    assert set(runs) == {(s, m) for s in ("10x", "max") for m in ("multiprocess", "single")}
    for (speed, mode), r in runs.items():
        c = r["counts"]
        assert c["coinbase_connections"] == 1, (speed, mode, c)
        assert c["price_events"] > 0 and c["decisions_with_orders"] > 0, (speed, mode, c)
        assert c["unmatched_orders"]["no_frame"] == 0 and c["unmatched_orders"]["no_read"] == 0, (speed, mode, c)
        for group, names in (("orders", (*latency.CHAIN, "wire_to_wire")), ("events", latency.EVENT_STAGES)):
            for name in names:
                s = r["stages"][group][name]
                assert s["count"] > 0, (speed, mode, group, name)
                assert s["p50_us"] <= s["p99_us"] <= s["p999_us"] <= s["max_us"]
        for row in r["orders"]:
            assert row["wire_to_wire"] == sum(row[name] for name in latency.CHAIN)
        assert r["memory"]["peak_rss_mb"] > 0 and r["memory"]["peak_pss_mb"] > 0
        assert r["exit_code"] == 0
        # the kernel's stamps: feed socket rx -> order bytes handed to the kernel, beside wire to wire
        assert c["kernel_stamps"] and c["kernel_rx_frames"] > 0 and c["kernel_tx_stamps"] > 0, (speed, mode, c)
        assert c["decisions_with_kernel_stamps"] > 0, (speed, mode, c)
        k = r["stages"]["kernel"]
        for name in ("kernel_rx_to_tx", "rx_to_recv", "decide_to_tx", "kernel_rx_to_tx_every_order",
                     "rx_to_decide"):
            assert k[name]["count"] > 0 and k[name]["p50_us"] <= k[name]["p99_us"], (speed, mode, name)
        assert k["kernel_rx_to_tx"]["p50_us"] <= r["stages"]["orders"]["wire_to_wire"]["p99_us"]
        for row in r["orders"]:
            if "kernel_rx_to_tx" in row:
                assert 0 < row["kernel_rx_to_tx"] <= row["wire_to_wire"]
    mp = runs[("10x", "multiprocess")]
    assert {"supervisor", "feed-coinbase", "feed-kraken", "feed-truex-md", "quoter", "hedger"} <= set(
        mp["memory"]["per_process_rss_mb"])
    assert set(runs[("10x", "single")]["memory"]["per_process_rss_mb"]) == {"single"}
    table = mp["memory"]["at_peak_pss"]    # each process at the peak of the summed PSS, and the sum
    assert {"supervisor", "zygote", "quoter", "sum"} <= set(table)
    assert table["sum"]["pss_mb"] == pytest.approx(mp["memory"]["peak_pss_mb"], abs=0.2)
    assert all(0 < m["uss_mb"] <= m["pss_mb"] <= m["rss_mb"] for m in table.values())
    assert runs[("max", "multiprocess")]["lossless"]["lossless"] is True
    assert mp["quoter_busy"]["timer"]["n"] > 0, "what the quoter's loop did besides prices, per kind"
    # Ratios are the multiprocess figure over the single-loop one of the same speed, and the one hop the
    # single loop does not make (an eventfd wake-up in another process) costs more than a direct call.
    for speed in ("10x", "max"):
        for key, q in doc["ratios"][speed].items():
            group, name = key.split(".", 1)
            m, s = runs[(speed, "multiprocess")]["stages"][group][name], runs[(speed, "single")]["stages"][group][name]
            if s["p50_us"]:
                assert q["p50_ratio"] == pytest.approx(m["p50_us"] / s["p50_us"], rel=1e-2, abs=1e-3)
        assert doc["ratios"][speed]["events.pub_to_wake"]["p50_ratio"] > 1.0
    hop = next(t for t in doc["targets"] if t["target"].startswith("multiprocess adds"))
    assert hop["hop_us"] == doc["ratios"]["10x"]["events.pub_to_wake"]["p50_added_us"]
    targets = {t["target"] for t in doc["targets"]}
    assert "no loss on a lossless ring at max speed" in targets
    assert any(t.startswith("wire-to-wire p99 <= 250 us at 10x") for t in targets)
    mem = next(t for t in doc["targets"] if t["target"].startswith("memory of all engine processes <= 150"))
    assert mem["value_mb"] == max(r["memory"]["peak_pss_mb"] for (_, m), r in runs.items()
                                  if m == "multiprocess" and "memory" in r) and mem["met"] == (mem["value_mb"] <= 150)
    assert "== targets ==" in text and "wire_to_wire" in text
    # the floor: the same topology doing no work, paced by the 10x run's frames; none at max speed
    assert set(doc["floor"]) == {"10x"}
    fl = doc["floor"]["10x"]
    assert fl["count"] > 0 and 0 < fl["p50_us"] <= fl["p99_us"] <= fl["max_us"]
    w10 = next(t for t in doc["targets"] if t["target"].startswith("wire-to-wire p99 <= 250 us at 10x"))
    assert w10["floor_p99_us"] == fl["p99_us"] and w10["below_floor"] == (fl["p99_us"] > 250.0)
    assert "floor (bench/floor.py" in text
    # issue 21's targets as ratios to the floor's kernel figure, and the multiprocess - single difference
    assert fl["kernel"]["count"] > 0
    assert "-- kernel stamps: feed socket rx -> order bytes handed to the kernel" in text
    kt = {t["target"]: t for t in doc["targets"] if t.get("kind") in ("floor_ratio", "added")}
    p50 = kt["kernel rx->tx p50 <= 1.5x the floor's at 10x"]
    assert p50["floor_us"] == fl["kernel"]["p50_us"]
    assert p50["value_us"] == runs[("10x", "multiprocess")]["stages"]["kernel"]["kernel_rx_to_tx"]["p50_us"]
    assert p50["met"] == (p50["ratio"] <= 1.5)
    assert "kernel rx->tx p99 <= 2x the floor's at 10x" in kt
    added = kt["kernel rx->tx: multiprocess <= +20 us at p50 over the single loop at 10x"]
    assert added["value_us"] == doc["ratios"]["10x"]["kernel.kernel_rx_to_tx"]["p50_added_us"]
    assert ("PASS " in text or "FAIL " in text) and "the floor's at 10x" in text
    assert 0 < fl["hop"]["p50_us"] <= fl["hop"]["p99_us"]
    assert hop["floor_hop_p50_us"] == fl["hop"]["p50_us"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trace_keeps_only_busy_intervals_a_traced_event_can_have_waited_for() -> None:
    """Every busy interval is summed per kind in constant memory; only those that end after a traced
    record's publication are kept for the tail attribution (all of them grew the quoter by MBs at 1x)."""
    trace = latency.trace.LatencyTrace(kernel_stamps=False)
    for i in range(10_000):                        # rehearsals every 2 ms, each 100 us
        trace.busy("rehearsal", i * 2_000_000, i * 2_000_000 + 100_000)
    trace.busy("timer", 20_000_000_050, 20_000_000_900)
    trace.keep_busy_since(19_997_900_000)          # a record published 0.1 ms before the last rehearsal began
    kept = [tuple(trace.busy_log[i:i + 3]) for i in range(0, len(trace.busy_log), 3)]
    codes = {k: i for i, k in enumerate(latency.common.BUSY_KINDS)}
    assert kept == [(codes["rehearsal"], 19_998_000_000, 19_998_100_000),
                    (codes["timer"], 20_000_000_050, 20_000_000_900)]
    trace.keep_busy_since(0)                       # nothing is kept twice
    assert len(trace.busy_log) == 6
    stats = trace.busy_stats()
    assert stats["rehearsal"]["n"] == 10_000 and stats["rehearsal"]["total_ms"] == 1000.0
    assert stats["rehearsal"]["p50_us"] == pytest.approx(100, rel=0.01) and stats["timer"]["n"] == 1
    assert trace.trace_bytes() == 6 * 8
