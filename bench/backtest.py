"""Backtest speed: fastmm's replay against hftbacktest's on the same 10.8-minute recording, side by side.

Two scopes, each timed in this run on this machine, with ratios to hftbacktest in the same scope:

* ``end to end``: a fresh Python process per engine, from the raw capture to the final PnL: imports,
  reading the capture (both use fastmm's reader), hftbacktest's event conversion and numba compilation
  of its strategy, and the replay. This is what one backtest of the recording costs each tool.
* ``replay``: data already in memory and code already compiled (best of ``--repeat``): fastmm's event
  loop through the live core (configured strategy and GLFT) against hftbacktest's Rust engine driving
  its numba GLFT grid in 100 ms steps. Python's core decides on every price change (about 18,000
  times here); this scope is where the compiled reference wins.

The data reader (shared) and hftbacktest's conversion are timed on their own rows too. Last, a check
of the fill model rather than of speed: one order schedule (a bid and an ask ``offset`` PYUSD outside
the touch, moved every 100 ms) through hftbacktest's exchange and through fastmm's queue model.

    .venv/bin/python bench/backtest.py [--data PATH] [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastmm.backtest.engine import BacktestOptions, run_backtest
from fastmm.backtest.readers import load_market_data
from fastmm.config import Config
from fastmm.data.paths import binance_capture_dir

_FRESH_FASTMM = """
import json, sys, time
t0 = time.perf_counter()
from fastmm.backtest.engine import run_backtest
from fastmm.backtest.readers import load_market_data
from fastmm.config import Config
md = load_market_data(sys.argv[1])
r = run_backtest(Config(), md)
print(json.dumps({"seconds": time.perf_counter() - t0, "fills": r.summary.trades,
                  "total": str(r.summary.total)}))
"""

_FRESH_HBT = """
import json, sys, time
t0 = time.perf_counter()
from fastmm.backtest.hftbt import run_hftbacktest
from fastmm.backtest.readers import load_market_data
from fastmm.config import Config
md = load_market_data(sys.argv[1])
r = run_hftbacktest(Config(), md, feed_latency_ns=1_000_000, order_latency_ns=5_000_000)
print(json.dumps({"seconds": time.perf_counter() - t0, "fills": r.final["trades"],
                  "total": r.series["equity"][-1]}))
"""


def fresh(script: str, data: str) -> dict[str, Any]:
    """Run ``script`` in a new interpreter (it ends before this returns) and read its JSON line."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, data], capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"fresh process failed: {proc.stderr[-1500:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = wall
    return out


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    times, last = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t0)
    return min(times), last


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(binance_capture_dir()))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--no-fresh", action="store_true", help="skip the fresh-process (end to end) rows")
    ap.add_argument("--offsets", default="0,1,3", help="cross-check offsets in PYUSD (empty: none)")
    args = ap.parse_args(argv)
    from fastmm.backtest import hftbt

    reason = hftbt.unavailable_reason()
    if reason is not None:
        print(f"hftbacktest is not usable here ({reason}): no reference to compare with", file=sys.stderr)
        return 1
    rows: list[dict[str, Any]] = []

    def row(scope: str, name: str, seconds: float, ref: float | None, **extra: Any) -> None:
        rows.append({"scope": scope, "name": name, "seconds": seconds,
                     "ratio_to_hftbacktest": None if ref is None else seconds / ref, **extra})

    # shared: reading the capture
    load_s, md = best(lambda: load_market_data(args.data), args.repeat)
    conv_s, events = best(lambda: hftbt.to_events(md, 1_000_000), args.repeat)
    cfg = Config()
    kw = {"feed_latency_ns": 1_000_000, "order_latency_ns": 5_000_000, "events": events}
    t0 = time.perf_counter()
    hbt_first = hftbt.run_hftbacktest(cfg, md, **kw)
    first_s = time.perf_counter() - t0
    hbt_s, hbt = best(lambda: hftbt.run_hftbacktest(cfg, md, **kw), args.repeat)
    hbt_replay = min(hbt_s, hbt.run_s + hbt.build_s)
    opts = BacktestOptions()
    runs = {"configured (ladder)": cfg, "glft": replace(cfg, quoting=replace(cfg.quoting, model="glft"))}
    fm: dict[str, tuple[float, Any]] = {name: best(lambda c=c: run_backtest(c, md, opts), args.repeat)
                                        for name, c in runs.items()}

    if not args.no_fresh:
        e_fm = fresh(_FRESH_FASTMM, args.data)
        e_hbt = fresh(_FRESH_HBT, args.data)
        ref = e_hbt["wall"]
        row("end to end", "hftbacktest glft, fresh process", ref, ref, fills=e_hbt["fills"])
        row("end to end", "fastmm configured, fresh process", e_fm["wall"], ref, fills=e_fm["fills"])
    row("replay", "hftbacktest glft (compiled)", hbt_replay, hbt_replay, fills=hbt.final["trades"],
        rows_per_s=len(events[0]) / hbt_replay)
    for name, (secs, res) in fm.items():
        row("replay", f"fastmm {name}", secs, hbt_replay, fills=res.summary.trades,
            rows_per_s=len(md.t) / secs, engine_events=res.counts["engine_events"])
    row("parts", "read capture (fastmm reader, shared)", load_s, None, rows=len(md.t))
    row("parts", "hftbacktest event conversion", conv_s, None, rows=len(events[0]))
    row("parts", "hftbacktest first run in process (compile)", first_s, None, fills=hbt_first.final["trades"])

    print(f"recording: {md.describe()['duration_s']} s, {len(md.t)} rows; repeat {args.repeat}")
    print(f"{'scope':<12}{'run':<46}{'seconds':>9}{'x hftbacktest':>15}")
    for r in rows:
        ratio = "" if r["ratio_to_hftbacktest"] is None else f"{r['ratio_to_hftbacktest']:.2f}"
        print(f"{r['scope']:<12}{r['name']:<46}{r['seconds']:>9.3f}{ratio:>15}")
    checks = []
    offsets = [float(x) for x in args.offsets.split(",") if x.strip()]
    if offsets:
        print("\nfill model, same orders (0.01 BTC a side, offset outside the touch, 5 ms latency):")
        print(f"{'offset':>7}{'fills hbt':>11}{'fills fastmm':>14}{'BTC hbt':>10}{'BTC fastmm':>12}"
              f"{'ratio':>7}")
    for off in offsets:
        c = hftbt.crosscheck(md, offset=off)
        h, f = c["hftbacktest"], c["fastmm"]
        checks.append({"offset": off, **{f"hftbacktest_{k}": v for k, v in h.items()},
                       **{f"fastmm_{k}": v for k, v in f.items()}})
        ratio = f["volume_btc"] / h["volume_btc"] if h["volume_btc"] else float("nan")
        print(f"{off:>7g}{h['fills']:>11.0f}{f['fills']:>14.0f}{h['volume_btc']:>10.4f}{f['volume_btc']:>12.4f}"
              f"{ratio:>7.3f}")
    if args.json:
        doc = {"bench": "backtest", "python": sys.version.split()[0], "machine": platform.machine(),
               "cpus": os.cpu_count(), "data": md.describe(), "repeat": args.repeat, "rows": rows,
               "fill_model_crosscheck": checks}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
