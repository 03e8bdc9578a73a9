"""``fastmm feed coinbase|kraken``: one reference feed alone, printing every new top of book."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from fastmm.config import load_config
from fastmm.event_loop import run
from fastmm.logs import setup_logging
from fastmm.procs.feed_ws import VENUES, run_print


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("feed", help="run one reference feed alone and print its top of book",
                       description="Connect to a reference venue (the simulator by default, or the URL in "
                                   "the config or --url) and print each new top of book until Ctrl-C.")
    p.add_argument("venue", choices=VENUES)
    p.add_argument("--print", action="store_true", default=True,
                   help="print each new top of book (the only mode; the supervised feed publishes instead)")
    p.add_argument("-c", "--config", help="TOML config file")
    p.add_argument("--url", help="WebSocket URL, overriding the config")
    p.add_argument("--limit", type=int, default=0, help="stop after this many tops (0 = until Ctrl-C)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, os.environ)
    setup_logging(cfg.instance.log_level)
    if args.url:
        if args.venue == "coinbase":
            cfg = replace(cfg, coinbase=replace(cfg.coinbase, ws_url=args.url))
        else:
            cfg = replace(cfg, kraken=replace(cfg.kraken, ws_url=args.url))
    return run(run_print(cfg, args.venue, limit=args.limit))
