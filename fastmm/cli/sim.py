"""``fastmm sim``: the TrueX, Coinbase and Kraken simulators on loopback, on the ports of the config."""

from __future__ import annotations

import argparse
import os
import sys

from fastmm.config import load_config
from fastmm.logs import setup_logging
from fastmm.units import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="the venue simulators on loopback (TrueX, Coinbase, Kraken)",
                       description="Replay recorded data as the TrueX exchange (FIX order entry and market "
                                   "data), Coinbase Advanced Trade and Kraken (REST, WebSocket v2), on the "
                                   "ports the config's venue endpoints name. Deterministic for a given seed.")
    p.add_argument("-c", "--config", help="TOML config file")
    p.add_argument("--data", help="recorded data folder or file (default: sim.data_dir or ../shared/data)")
    p.add_argument("--speed", type=float, help="replay speed; 0 = as fast as possible")
    p.add_argument("--seed", type=int, help="seed of every random choice")
    p.add_argument("--max-lines", type=int, help="replay only this many lines of the capture")
    p.add_argument("--drop-seq", type=int, help="Coinbase: never send the message with this sequence_num")
    p.add_argument("--stall-seq", type=int, help="Coinbase: hold this message and the rest for --stall-ms")
    p.add_argument("--stall-ms", type=int, default=0)
    p.add_argument("--disconnect-seq", type=int, help="Coinbase: drop the connection at this sequence_num")
    p.add_argument("--heartbeats-stop-after", type=int, help="Coinbase: stop heartbeats after this many")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from fastmm.event_loop import run
    from fastmm.procs.child import stop_on_signals
    from fastmm.sim.coinbase import CoinbaseFaults
    from fastmm.sim.venues import serve_forever

    env = dict(os.environ)      # the options override the config for this run only (no process-wide leak)
    for opt, key in (("data", "DATA_DIR"), ("speed", "SPEED"), ("seed", "SEED"), ("max_lines", "MAX_LINES")):
        v = getattr(args, opt)
        if v is not None:
            env[f"FASTMM_SIM__{key}"] = str(v)
    cfg = load_config(args.config, env)
    setup_logging(cfg.instance.log_level)
    faults = CoinbaseFaults(drop_seq=args.drop_seq, stall_seq=args.stall_seq, stall_ms=args.stall_ms,
                            disconnect_seq=args.disconnect_seq,
                            heartbeats_stop_after=args.heartbeats_stop_after)

    async def main() -> int:
        return await serve_forever(cfg, stop_on_signals(), faults=faults)

    try:
        return run(main())
    except DataError as e:   # unreadable or unknown recording: one line, not a traceback
        print(f"fastmm: data error: {e}", file=sys.stderr)
        return 2
