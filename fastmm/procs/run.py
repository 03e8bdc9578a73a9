"""``python -m fastmm.procs.run NAME [--config FILE]``: one supervised process, as the supervisor starts it.

The config path comes in the arguments; secrets come in the environment the supervisor passes on, never
in the arguments. Each process name maps to the coroutine that runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import os
import sys

from fastmm.config import ConfigError, load_config
from fastmm.logs import setup_logging
from fastmm.procs.child import die_with_parent
from fastmm.procs.heap import freeze_startup_heap
from fastmm.procs.plan import OPTIONAL, PROCESSES

ENTRY_POINTS = {
    "feed-coinbase": ("fastmm.procs.feed_ws", "run_supervised"),
    "feed-kraken": ("fastmm.procs.feed_ws", "run_supervised"),
    "feed-truex-md": ("fastmm.procs.feed_truex_md", "run_supervised"),
    "quoter": ("fastmm.procs.quoter", "run_supervised"),
    "hedger": ("fastmm.procs.hedger", "run_supervised"),
    "shipper": ("fastmm.procs.shipper", "run_supervised"),
    "firm": ("fastmm.procs.firm", "run_supervised"),
}


def run_loop(coro: object) -> int:
    """Run a coroutine on uvloop when it is installed (it is a dependency), asyncio otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return int(asyncio.run(coro) or 0)  # type: ignore[arg-type]
    return int(uvloop.run(coro) or 0)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fastmm.procs.run")
    ap.add_argument("name", choices=PROCESSES + OPTIONAL)
    ap.add_argument("--config", "-c")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, os.environ)
    except ConfigError as e:
        print(f"fastmm {args.name}: config error: {e}", file=sys.stderr)
        return 2
    setup_logging(cfg.instance.log_level)
    die_with_parent()
    module, func = ENTRY_POINTS[args.name]
    try:
        entry = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        logging.getLogger("fastmm").error("%s: this build has no process %s (%s)", args.name, module, e)
        return 2
    frozen = freeze_startup_heap()
    logging.getLogger("fastmm").debug("%s: startup heap frozen; gc thresholds %s -> %s", args.name, frozen,
                                      gc.get_threshold())
    return run_loop(entry(cfg, args.name))


if __name__ == "__main__":
    sys.exit(main())
