"""bench/floor.py: the engine's process topology doing no work. Structure only, never a time."""

from __future__ import annotations

import os

from fastmm.cli.bench import load_bench
from fastmm.latency import summarize

floor = load_bench("floor")


def _children() -> set[int]:
    return set(load_bench("latency").process_tree(os.getpid())) - {os.getpid()}


def test_every_message_crosses_the_four_processes_and_nothing_is_left_running() -> None:
    before = _children()
    gaps = [2_000_000, 0, 5_000_000, 1_000_000] * 10
    wire, hop = floor.measure(gaps, timeout_s=60)
    assert len(wire) == len(hop) == len(gaps)
    assert all(0 < h < w for w, h in zip(wire, hop, strict=True))   # one monotonic clock; the hop is a part
    assert _children() == before
    s = summarize(wire)
    assert s["count"] == len(gaps) and s["p50_us"] <= s["p99_us"] <= s["p999_us"] <= s["max_us"]


def test_no_gaps_no_processes() -> None:
    assert floor.measure([]) == ([], [])


def test_command_line(capsys) -> None:  # type: ignore[no-untyped-def]
    assert floor.main(["--gap-ms", "1", "--n", "20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cpu_dma_latency held: False\nempty pipeline, gap 1.0 ms, wire to wire: n 20 p50 ")
    assert "empty pipeline, gap 1.0 ms, hop (pipe wake): n 20 p50 " in out
    assert floor.main(["--n", "0"]) == 2
