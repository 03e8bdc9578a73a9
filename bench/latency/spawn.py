"""One run: start the simulators and the engine, let it quote for the duration, stop it, collect the
traces and the venue's reads, check that nothing is lost and nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fastmm.config import load_config

from .common import (
    KERNEL_STAMPS_ENV,
    MAIN,
    MAX_SPEED,
    MAX_SPEED_TRUEX,
    PROGRESS_FILE,
    RX_FILE,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    TRACE_FILE,
    RunSpec,
    speed_label,
)
from .load import _build_reference_sims, _chain_hooks, _engine_env, _start_reference_sims
from .measure import FrameStamps, join, stage_summaries, tail_attribution
from .watch import MemorySampler, ProcessWatch


async def _readline(stream: asyncio.StreamReader, timeout_s: float, what: str) -> str:
    try:
        line = await asyncio.wait_for(stream.readline(), timeout_s)
    except TimeoutError:
        raise RuntimeError(f"no {what} within {timeout_s:.0f} s") from None
    if not line:
        raise RuntimeError(f"the TrueX simulator process ended before {what}")
    return line.decode().strip()


async def run_once(spec: RunSpec) -> dict[str, Any]:
    from fastmm.shm import list_segments, unlink_instance

    instance = f"bench{os.getpid()}{spec.mode[0]}{spec.index}"
    env = _engine_env(spec, instance)
    env[KERNEL_STAMPS_ENV] = "1" if spec.kernel_stamps else "0"
    cfg = load_config(spec.config, env)
    state = cfg.state_path
    state.mkdir(parents=True, exist_ok=True)
    defer = spec.speed == MAX_SPEED
    stamps = FrameStamps()
    result: dict[str, Any] = {"mode": spec.mode, "speed": speed_label(spec.speed), "instance": instance}
    conf = ["--config", spec.config] if spec.config else []
    reads_path = state / "truex.reads.json"
    venues = _build_reference_sims(cfg)
    sim_log = (state / "truex-sim.log").open("wb")
    truex = await asyncio.create_subprocess_exec(
        sys.executable, str(MAIN), "_truex", "--out", str(reads_path), *conf,
        *([] if spec.venue_limits else ["--lift-limits"]),
        env={**env, "FASTMM_SIM__SPEED": repr(MAX_SPEED_TRUEX)} if defer else env,
        stdout=asyncio.subprocess.PIPE, stderr=sim_log)
    sim_log.close()
    started: list[Any] = []
    proc: subprocess.Popen[bytes] | None = None
    watch: ProcessWatch | None = None
    try:
        assert truex.stdout is not None
        ports = json.loads(await _readline(truex.stdout, START_TIMEOUT_S, "TrueX simulator ports"))
        started = await _start_reference_sims(venues, defer)
        venues.addresses["truex order entry"] = f"127.0.0.1:{ports['oe']}"
        venues.addresses["truex market data"] = f"127.0.0.1:{ports['md']}"
        _chain_hooks(venues.coinbase, stamps, defer)
        if venues.kraken_ws is not None and defer:
            _chain_hooks(venues.kraken_ws, None, defer)
        from fastmm.sim import venues as sim_venues

        env.update(sim_venues.config_for(cfg, venues))
        argv = [sys.executable, str(MAIN), "_supervise" if spec.mode == "multiprocess" else "_single", *conf]
        logf = (state / "engine.log").open("wb")
        proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        watch = ProcessWatch(proc)
        t0 = time.monotonic()
        quoting = asyncio.ensure_future(_readline(truex.stdout, START_TIMEOUT_S, "first order at TrueX"))
        while not quoting.done():
            if proc.poll() is not None:
                quoting.cancel()
                raise RuntimeError(f"{spec.mode} engine exited ({proc.returncode}) before quoting; its log: "
                                   f"{state / 'engine.log'}")
            await asyncio.sleep(0.02)
        quoting.result()
        t_quoting = time.monotonic()
        result["start_s"] = round(t_quoting - t0, 3)
        cb = venues.coinbase.core
        end_reason = "duration"
        progress = state / PROGRESS_FILE
        decisions = 0
        with MemorySampler(watch):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{spec.mode} engine exited early ({proc.returncode}); log: "
                                       f"{state / 'engine.log'}")
                if cb.finished and cb.backlog() == 0:
                    end_reason = "end of the recorded data"
                    break
                elapsed = time.monotonic() - t_quoting
                if elapsed >= spec.duration_s:
                    if not spec.decisions:
                        break
                    # --decisions: on until the traced quoter has made that many (it writes its count
                    # every 0.2 s), within the longest run allowed
                    decisions = _progress(progress)
                    if decisions >= spec.decisions:
                        end_reason = f"{spec.decisions} decisions"
                        break
                    if elapsed >= spec.max_duration_s:
                        end_reason = f"max duration ({spec.max_duration_s:g} s)"
                        break
                await asyncio.sleep(0.02)
        result["measured_s"] = round(time.monotonic() - t_quoting, 3)
        result["end"] = end_reason
        proc.send_signal(signal.SIGTERM)
        t_stop = time.monotonic()
        while proc.poll() is None and time.monotonic() - t_stop < STOP_TIMEOUT_S:
            await asyncio.sleep(0.05)
        result["exit_code"] = proc.poll()
        result["stop_s"] = round(time.monotonic() - t_stop, 3)
        truex.send_signal(signal.SIGTERM)
        await asyncio.wait_for(truex.wait(), 30)
        trace_path = state / TRACE_FILE
        if not trace_path.exists():
            raise RuntimeError(f"{spec.mode}: no trace written ({trace_path}); log: {state / 'engine.log'}")
        trace = json.loads(trace_path.read_text())
        reads = [tuple(r) for r in json.loads(reads_path.read_text())["order_reads"]]
        rx_path = state / RX_FILE
        rx_pairs = json.loads(rx_path.read_text())["pairs"] if rx_path.exists() else []
        joined = join(trace, stamps, reads, rx_pairs)
        result["counts"] = {
            "coinbase_l2_frames": sum(len(d) for d in stamps.by_conn.values()),
            "coinbase_connections": len(stamps.by_conn),
            "price_events": len(joined["events"]["wire_to_decide"]),
            "decisions_with_orders": sum(1 for r in joined["orders"] if r["index"] == 0),
            "orders": len(joined["orders"]),
            "orders_sent_total": trace.get("orders_sent"),
            "order_messages_at_venue": len(reads),
            "unmatched_orders": joined["unmatched_orders"],
            "unmatched_events": joined["unmatched_events"],
            "republished_events": joined["republished_events"],
            "kernel_stamps": spec.kernel_stamps,
            "kernel_rx_frames": sum(1 for t in rx_pairs[1::2] if t),
            "kernel_tx_stamps": trace.get("tx_stamps", 0),
            "decisions_with_kernel_stamps": sum(1 for r in joined["orders"]
                                                if r["index"] == 0 and "kernel_rx_to_tx" in r),
            "unmatched_kernel": joined["unmatched_kernel"],
        }
        result["stages"] = stage_summaries(joined)
        result["tails"] = tail_attribution(joined)
        result["quoter_busy"] = trace.get("busy_stats", {})
        result["samples"] = {"wire_to_wire": [r["wire_to_wire"] for r in joined["orders"] if r["index"] == 0],
                             "wire_to_decide": joined["events"]["wire_to_decide"],
                             "kernel_rx_to_tx": [r["kernel_rx_to_tx"] for r in joined["orders"]
                                                 if r["index"] == 0 and "kernel_rx_to_tx" in r]}
        result["orders"] = joined["orders"]
        writes = sorted(t for d in stamps.by_conn.values() for t in d.values())
        result["frame_gaps_ns"] = [b - a for a, b in itertools.pairwise(writes)]
        result["memory"] = {"peak_rss_mb": round(watch.peak_rss_kb / 1024, 1),
                            "peak_pss_mb": round(watch.peak_pss_kb / 1024, 1),
                            "trace_mb": round(trace.get("trace_bytes", 0) / 2**20, 2),
                            "per_process_rss_mb": {k: round(v / 1024, 1)
                                                   for k, v in sorted(watch.per_process_rss_kb.items())},
                            "at_peak_pss": watch.memory_table_mb()}
        result["quoter_hdr"] = trace.get("quoter_hdr", {})
        if spec.mode == "multiprocess":
            result["lossless"] = lossless_check(state, cfg.journal.file)
            with contextlib.suppress(OSError, ValueError):
                rep = json.loads((state / "report.json").read_text())
                keys = ("stop_reason", "timed_out_steps", "restarts", "killed_for_silence", "position")
                result["engine_report"] = {k: rep.get(k) for k in keys}
        return result
    finally:
        result["pids"] = sorted({*(watch.known if watch is not None else ()), truex.pid})
        if watch is not None:
            killed = watch.kill_leftovers()
            if killed:
                result["killed_leftovers"] = killed
        elif proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if truex.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                truex.kill()
            await truex.wait()
        left = list_segments(instance)
        if left:
            unlink_instance(instance)
            result["segments_left_by_engine"] = left
        for server in started:
            await server.stop()


def _progress(path: Path) -> int:
    """Decisions that sent orders so far, as the traced quoter last wrote them (0 before the first)."""
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def lossless_check(state: Path, journal_file: str) -> dict[str, Any]:
    """The ``hedge.fills`` ring: every ExecID the hedger published (journalled just before the push)
    was booked by the quoter (journalled as it pops it)."""
    from fastmm.journal import read_journal

    def exec_ids(path: Path, source: str | None) -> list[str]:
        if not path.exists():
            return []
        return [str(r.get("exec_id")) for r in read_journal(path)
                if r.get("kind") == "hedge_fill" and (source is None or r.get("source") == source)]

    published = exec_ids(state / "hedger.jsonl", None)
    booked = exec_ids(state / journal_file, "quoter")
    missing = sorted(set(published) - set(booked))
    return {"ring": "hedge.fills", "published": len(set(published)), "booked": len(set(booked)),
            "missing": missing, "lossless": not missing}
