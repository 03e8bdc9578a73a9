"""Load generation: the venue simulators replaying the recorded data (Coinbase and Kraken in the
harness's process, TrueX in its own), and the engine's settings for each run's load."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from fastmm.config import Config, ConfigError, load_config

from .common import _SECRET_VARS, MAX_SPEED, MAX_SPEED_PROFILE, RunSpec
from .measure import FrameStamps


def _engine_env(spec: RunSpec, instance: str) -> dict[str, str]:
    from fastmm.sim.venues import paper_credentials

    # Throw-away credentials, always: the simulators check them, and real ones have no business here.
    env = {k: v for k, v in os.environ.items() if k not in _SECRET_VARS}
    paper_credentials(env)
    env.update({
        # Every venue endpoint is a local simulator, whatever the config file says (ports and WebSocket
        # URLs come from sim.venues.config_for once the simulators listen).
        "FASTMM_TRUEX__ORDER_ENTRY__HOST": "127.0.0.1", "FASTMM_TRUEX__MARKET_DATA__HOST": "127.0.0.1",
        "FASTMM_TRUEX__REST_URL": "http://127.0.0.1:9", "FASTMM_KRAKEN__WS_URL": "ws://127.0.0.1:9",
        "FASTMM_INSTANCE__NAME": instance,
        "FASTMM_INSTANCE__STATE_DIR": str(spec.state_root),
        "FASTMM_INSTANCE__LOG_LEVEL": env.get("FASTMM_INSTANCE__LOG_LEVEL", "WARNING"),
        "FASTMM_SIM__SPEED": repr(spec.speed),
    })
    if spec.speed == MAX_SPEED:
        env.update(MAX_SPEED_PROFILE)
        if spec.mode == "single":      # no hedger in the single loop: the default limits, not a kill switch
            for key in ("FASTMM_INVENTORY__MAX_POSITION_BTC", "FASTMM_INVENTORY__EMERGENCY_POSITION_BTC"):
                del env[key]
    if not spec.venue_limits:
        env.update({"FASTMM_VENUE_RULES__MAX_ORDERS_PER_SEC": "1000",
                    "FASTMM_VENUE_RULES__MAX_ORDERS_PER_MIN": "60000",
                    "FASTMM_RISK__MAX_ORDER_RATE_PER_MIN": "60000"})
    return env


def _build_reference_sims(cfg: Config) -> Any:
    """The Coinbase and Kraken simulators of ``fastmm paper``, built (reading the first records of the
    capture) but not started; the TrueX one runs in its own process (:func:`_truex_main`)."""
    from fastmm.sim import venues as sim_venues

    venues, _ports = sim_venues.build(cfg, ephemeral=True)
    if venues.coinbase is None:
        raise ConfigError("the latency harness needs coinbase.enabled (its frames start the measurement)")
    return venues


async def _start_reference_sims(venues: Any, defer_replay: bool) -> list[Any]:
    """Start them on ephemeral ports. At max speed the WebSocket replays wait for their first client
    (otherwise they would run through the data before the engine connects)."""
    started: list[Any] = []
    servers = ((venues.coinbase, "coinbase ws", "ws"), (venues.kraken, "kraken rest", "http"),
               (venues.kraken_ws, "kraken ws", "ws"))
    try:
        for server, label, scheme in servers:
            if server is None:
                continue
            if defer_replay and scheme == "ws":
                server.autostart = False
            port = await server.start("127.0.0.1", 0)
            started.append(server)
            venues.addresses[label] = f"{scheme}://127.0.0.1:{port}"
    except BaseException:
        for s in started:
            await s.stop()
        raise
    return started


def _chain_hooks(server: Any, stamps: FrameStamps | None, defer: bool) -> None:
    """Stamp frames; with ``defer``, start the replay at the first frame written to a client (the answer
    to its subscribe)."""
    def hook(cid: int, frame: str, t_ns: int) -> None:
        if defer and not server.core.clock.started:
            server.begin_replay()
        if stamps is not None:
            stamps(cid, frame, t_ns)
    server.on_frame_written = hook


def _truex_main() -> int:
    """The TrueX simulator alone in a process, so that reading an order's bytes never waits behind the
    other simulators' work in one loop. It prints its ports as a JSON line, ``quoting`` at the first order
    message, and on SIGTERM writes every order read (``TruexSimServer.order_reads``) to ``--out``."""
    from fastmm.event_loop import run
    from fastmm.procs.child import die_with_parent

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--lift-limits", action="store_true")
    ap.add_argument("--config", "-c")
    args = ap.parse_args(sys.argv[2:])
    cfg = load_config(args.config, os.environ)
    die_with_parent()
    return run(_serve_truex(cfg, Path(args.out), args.lift_limits))


async def _serve_truex(cfg: Config, out: Path, lift_limits: bool) -> int:
    from dataclasses import replace

    from fastmm.sim import venues as sim_venues

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    venues, _ports = sim_venues.build(cfg, ephemeral=True)
    truex = venues.truex
    if lift_limits:
        truex.exchange.engine.rules = replace(truex.exchange.engine.rules, max_msgs_per_sec=1_000_000,
                                              max_msgs_per_min=60_000_000)
    oe, md = await truex.start("127.0.0.1", 0, 0)
    print(json.dumps({"oe": oe, "md": md}), flush=True)
    announced = False
    try:
        while not stop.is_set():
            if not announced and truex.order_reads:
                print("quoting", flush=True)
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.01)
    finally:
        await truex.stop()
        doc = {"order_reads": [(mt.decode("ascii", "replace"), cl.decode("ascii", "replace"), t)
                               for mt, cl, t in truex.order_reads],
               "fills": len(truex.exchange.fills), "logons": truex.logons}
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(out)
    return 0
