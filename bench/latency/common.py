"""Names and settings every part of the harness shares: stages, trace fields, speeds, timeouts."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from fastmm.config import Config, load_config

log = logging.getLogger("fastmm.bench.latency")

# the harness's own entry point: the engine processes and the TrueX simulator are started as
# ``python <this package>/__main__.py _<role>``, which works from any working directory
MAIN = Path(__file__).resolve().parent / "__main__.py"
TRACE_FILE = "bench.trace.json"
ENGINE_CPUS_ENV = "FASTMM_BENCH_ENGINE_CPUS"
KERNEL_STAMPS_ENV = "FASTMM_BENCH_KERNEL_STAMPS"     # "0": the engine's processes take no kernel stamps
_SECRET_VARS = ("FASTMM_TRUEX_API_KEY_ID", "FASTMM_TRUEX_API_SECRET", "FASTMM_TRUEX_CLIENT_ID",
                "FASTMM_KRAKEN_API_KEY", "FASTMM_KRAKEN_API_SECRET")
MAX_SPEED = 0.0
CHAIN = ("write_to_recv", "recv_to_pub", "pub_to_wake", "wake_to_decide", "decide_to_sent", "sent_to_read")
EVENT_STAGES = ("write_to_recv", "recv_to_pub", "pub_to_wake", "wake_to_decide", "wire_to_decide")
MODES = ("multiprocess", "single")
EVENT_FIELDS = ("venue_seq", "t_recv", "t_pub", "t_wake", "t_decide", "n_sent")
ORDER_FIELDS = ("cl_ord_id", "msg_type", "index", "venue_seq", "t_recv", "t_pub", "t_wake", "t_decide",
                "t_sent", "t_tx")
# Kernel stamps: the feed socket's receive stamp of the frame (t_rx) and the order-entry socket's transmit
# stamp of the order (t_tx), both on CLOCK_MONOTONIC. ``kernel_rx_to_tx`` is what the engine owns.
KERNEL_STAGES = ("kernel_rx_to_tx", "rx_to_recv", "decide_to_tx")
KERNEL_EVENT_STAGES = ("rx_to_decide",)
# What the quoter's loop was doing besides price events, as (kind, t0, t1) intervals in the trace (tail
# attribution: a frame published while the quoter was busy waits for it): its index is the kind's code,
# the cyclic collector's passes by generation first.
BUSY_KINDS = ("gc0", "gc1", "gc2", "rehearsal", "timer", "order_entry")
RX_FILE = "bench.rx.json"
PROGRESS_FILE = "bench.progress"
# At max speed the run also checks that the lossless ring loses nothing, so it needs hedge fills on it: a
# load profile where takers reach this venue for half the recorded trades, quotes sit near the touch, the
# position is kept small and every 0.05 BTC of it is hedged at once (the drawdown and reject-rate kill
# switches are moved out of the way: this is a load test); the TrueX simulator, whose replay starts with
# its process before the engine quotes, replays at a finite speed so that its takers arrive while the
# engine quotes.
MAX_SPEED_PROFILE = {
    "FASTMM_SIM__TAKER_PROBABILITY": "0.5", "FASTMM_QUOTING__BASE_SPREAD_BPS": "2",
    "FASTMM_INVENTORY__MAX_POSITION_BTC": "0.5", "FASTMM_INVENTORY__EMERGENCY_POSITION_BTC": "0.6",
    "FASTMM_INVENTORY__HEDGE_THRESHOLD_BTC": "0.05", "FASTMM_HEDGE__LIMIT_TIMEOUT_S": "0.2",
    "FASTMM_RISK__MAX_DRAWDOWN": "1000000", "FASTMM_RISK__MAX_REJECT_RATE_PER_MIN": "60000",
}
MAX_SPEED_TRUEX = 60.0
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 90.0


@dataclasses.dataclass
class RunSpec:
    mode: str
    speed: float
    duration_s: float
    state_root: Path
    config: str | None
    venue_limits: bool
    index: int
    decisions: int = 0              # keep quoting past duration_s until this many decisions sent orders
    max_duration_s: float = 900.0   # ... but never longer than this
    kernel_stamps: bool = True


def speed_label(speed: float) -> str:
    return "max" if speed == MAX_SPEED else f"{speed:g}x"

def _engine_config() -> Config:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", "-c")
    args, _ = ap.parse_known_args(sys.argv[2:])
    return load_config(args.config, os.environ)


def _kernel_stamps() -> bool:
    return os.environ.get(KERNEL_STAMPS_ENV, "1") != "0"


def _engine_affinity() -> None:
    """In an engine process started with --sim-cpus: back on the engine's CPUs (see :func:`run`)."""
    cpus = os.environ.get(ENGINE_CPUS_ENV)
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
