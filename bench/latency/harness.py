"""Every speed and mode in turn, the floor comparison (bench/floor.py paced like each run), the
command line."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastmm.config import ConfigError, load_config
from fastmm.latency import summarize

from .common import ENGINE_CPUS_ENV, MAX_SPEED, MODES, RunSpec, log, speed_label
from .engine import _feed_main, _quoter_main, _single_main, _supervise_main
from .load import _truex_main
from .report import compare, draw, render, targets
from .spawn import run_once


def _floor_module() -> Any:
    from fastmm.cli.bench import load_bench

    return load_bench("floor")


def parse_speeds(text: str) -> list[float]:
    out = []
    for part in text.split(","):
        p = part.strip().lower()
        if p in ("max", "0", "inf"):
            out.append(MAX_SPEED)
            continue
        try:
            v = float(p.removesuffix("x"))
        except ValueError:
            raise ValueError(f"bad speed {part!r}: a positive factor (1, 10) or max") from None
        if not 0 < v <= 10_000:
            raise ValueError(f"bad speed {part!r}: a factor in (0, 10000] or max")
        out.append(v)
    if not out:
        raise ValueError("no speeds given")
    return out


def _cpu_list(text: str, allowed: set[int]) -> set[int]:
    from fastmm.ops.cpus import parse_cpu_list

    cpus = parse_cpu_list(text)
    if not cpus or not cpus <= allowed:
        raise ValueError(f"--sim-cpus {text!r}: a CPU list within {sorted(allowed)}, like 0-1")
    return cpus


def run(args: argparse.Namespace, out: Any = None) -> int:
    out = out or sys.stdout
    try:
        speeds = parse_speeds(args.speeds)
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        bad = [m for m in modes if m not in MODES]
        if bad or not modes:
            raise ValueError(f"bad mode(s) {', '.join(bad) or '(none)'}: choose from {', '.join(MODES)}")
        if not args.duration > 0:
            raise ValueError("--duration must be positive")
        if args.decisions < 0 or not args.max_duration >= args.duration:
            raise ValueError("--decisions must be >= 0 and --max-duration >= --duration")
        cfg = load_config(args.config, os.environ)   # a bad config stops here, before anything starts
        allowed = os.sched_getaffinity(0)
        sim_cpus = _cpu_list(args.sim_cpus, allowed) if args.sim_cpus else None
        for opt, path in (("--json", args.json), ("--png", args.png)):
            if path and not Path(path).resolve().parent.is_dir():
                raise ValueError(f"{opt} {path}: no such folder")
        if args.png and importlib.util.find_spec("matplotlib") is None:
            raise ValueError("--png needs matplotlib (.venv/bin/pip install matplotlib)")
    except (ValueError, ConfigError) as e:
        print(f"fastmm bench latency: {e}", file=sys.stderr)
        return 2
    import uvloop

    from fastmm.shm.wait import hold_cpu_dma_latency_or_say

    dma_fd = hold_cpu_dma_latency_or_say("bench latency") if args.cpu_dma_latency else None
    if sim_cpus is not None:
        # The engine's processes start from every CPU this process may use (the supervisor then pins the
        # ones [processes] names); this process and the TrueX simulator it starts keep to --sim-cpus.
        os.environ[ENGINE_CPUS_ENV] = ",".join(map(str, sorted(allowed)))
        os.sched_setaffinity(0, sim_cpus)
    keep = args.state_dir is not None
    root = Path(args.state_dir) if keep else Path(tempfile.mkdtemp(prefix="fastmm-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    floors: dict[str, dict[str, Any]] = {}
    failed = False
    try:
        n = 0
        for speed in speeds:
            first = len(runs)
            for mode in modes:
                n += 1
                spec = RunSpec(mode, speed, args.duration, root / f"run{n}", args.config,
                               args.venue_limits, n, decisions=args.decisions,
                               max_duration_s=args.max_duration, kernel_stamps=args.kernel_stamps)
                print(f"bench latency: {mode} at {speed_label(speed)} ...", file=out, flush=True)
                try:
                    runs.append(uvloop.run(run_once(spec)))
                except Exception as e:     # one failed run is reported, the others still run
                    if not isinstance(e, RuntimeError | ConfigError | OSError):
                        log.exception("%s at %s", mode, speed_label(speed))
                    print(f"bench latency: {mode} at {speed_label(speed)} failed: {e}", file=sys.stderr)
                    runs.append({"mode": mode, "speed": speed_label(speed), "error": str(e)})
                    failed = True
            gaps = next((r["frame_gaps_ns"] for r in runs[first:] if r.get("frame_gaps_ns")), None)
            if args.floor and speed != MAX_SPEED and gaps:
                print(f"bench latency: floor at {speed_label(speed)} ...", file=out, flush=True)
                try:
                    fm = _floor_module()
                    fs = fm.measure_all(gaps, kernel_stamps=args.kernel_stamps)
                    floors[speed_label(speed)] = {**summarize(fs.wire), "hop": summarize(fs.hop),
                                                  "kernel": summarize(fs.kernel)}
                except (OSError, RuntimeError, TimeoutError, ValueError) as e:
                    print(f"bench latency: floor at {speed_label(speed)} failed: {e}", file=sys.stderr)
    finally:
        if sim_cpus is not None:
            os.sched_setaffinity(0, allowed)
            os.environ.pop(ENGINE_CPUS_ENV, None)
        if dma_fd is not None:
            os.close(dma_fd)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    for r in runs:
        r.pop("frame_gaps_ns", None)
    ratios = compare(runs)
    goals = targets(runs, ratios, floors)
    print(f"\nwait={cfg.shm.wait}, cpu_dma_latency held: {dma_fd is not None}, order limits: "
          f"{'venue (10/s, 300/min)' if args.venue_limits else 'lifted'}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}", file=out)
    print(render(runs, ratios, goals, floors), file=out, flush=True)
    doc = {"meta": {"speeds": [speed_label(s) for s in speeds], "duration_s": args.duration,
                    "decisions": args.decisions, "kernel_stamps": args.kernel_stamps,
                    "wait": cfg.shm.wait, "cpus": os.cpu_count(),
                    "venue_limits": args.venue_limits, "cpu_dma_latency_held": dma_fd is not None,
                    "sim_cpus": sorted(sim_cpus) if sim_cpus is not None else None,
                    "python": sys.version.split()[0],
                    "loadavg": os.getloadavg(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
           "runs": [{k: v for k, v in r.items() if k != "samples"} for r in runs],
           "ratios": ratios, "floor": floors, "targets": goals}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
        print(f"bench latency: JSON written to {args.json}", file=out)
    if args.png:
        draw(runs, args.png)
        print(f"bench latency: histograms drawn to {args.png}", file=out)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    internal = {"_supervise": _supervise_main, "_quoter": _quoter_main, "_single": _single_main,
                "_feed": _feed_main, "_truex": _truex_main}
    if argv and argv[0] in internal:
        return internal[argv[0]]()
    from fastmm.cli.bench import add_latency_arguments

    doc = sys.modules[__package__].__doc__ or ""     # the package's: what the harness measures
    ap = argparse.ArgumentParser(prog="python bench/latency", description=doc.split("\n\n")[0])
    add_latency_arguments(ap)
    return run(ap.parse_args(argv))
