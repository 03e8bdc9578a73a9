"""``python -m fastmm.procs.run NAME [--config FILE]``: one supervised process, as the supervisor starts it.

The config path comes in the arguments; secrets come in the environment the supervisor passes on, never
in the arguments. Each process name maps to the coroutine that runs it.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Mapping

from fastmm.config import ConfigError, load_config
from fastmm.event_loop import run
from fastmm.logs import setup_logging
from fastmm.procs.child import die_with_parent
from fastmm.procs.heap import freeze_startup_heap
from fastmm.procs.plan import OPTIONAL, PROCESSES

CANCEL_LEFT = "cancel-left"    # not a supervised process: the clean-up after a dead quoter
ENTRY_POINTS = {
    "feed-coinbase": ("fastmm.procs.feed_ws", "run_supervised"),
    "feed-kraken": ("fastmm.procs.feed_ws", "run_supervised"),
    "feed-truex-md": ("fastmm.procs.feed_truex_md", "run_supervised"),
    "quoter": ("fastmm.procs.quoter", "run_supervised"),
    "hedger": ("fastmm.procs.hedger", "run_supervised"),
    CANCEL_LEFT: ("fastmm.procs.cancel_left", "run_supervised"),
    "shipper": ("fastmm.procs.shipper", "run_supervised"),
    "firm": ("fastmm.procs.firm", "run_supervised"),
}


def ignore_sigint() -> None:
    """A supervised process ignores SIGINT: a Ctrl-C to the process group is the supervisor's to handle
    (it runs the stop sequence every process follows); a child that stopped on its own would leave the
    supervisor's steps unconfirmed. The supervisor starts children with SIGINT blocked; ignoring it
    first and only then unblocking discards one that arrived during start-up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def supervisor_already_gone(environ: Mapping[str, str]) -> bool:
    """PR_SET_PDEATHSIG only covers a parent that dies after the call: one that died between our fork
    and the call has already made us an orphan, which the supervisor's pid in the environment shows."""
    expected = environ.get("FASTMM_SUPERVISOR_PID", "")
    return expected.isdigit() and os.getppid() != int(expected)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fastmm.procs.run")
    if os.environ.get("FASTMM_SUPERVISOR_PID"):
        ignore_sigint()
    ap.add_argument("name", choices=(*PROCESSES, *OPTIONAL, CANCEL_LEFT))
    ap.add_argument("--config", "-c")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, os.environ)
    except ConfigError as e:
        print(f"fastmm {args.name}: config error: {e}", file=sys.stderr)
        return 2
    setup_logging(cfg.instance.log_level)
    if args.name != CANCEL_LEFT:    # the clean-up finishes even when the supervisor is gone
        die_with_parent()
        if supervisor_already_gone(os.environ):
            logging.getLogger("fastmm").error("%s: the supervisor exited before this process started; "
                                              "exiting", args.name)
            return 0
    module, func = ENTRY_POINTS[args.name]
    try:
        entry = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        logging.getLogger("fastmm").error("%s: this build has no process %s (%s)", args.name, module, e)
        return 2
    frozen = freeze_startup_heap()
    logging.getLogger("fastmm").debug("%s: startup heap frozen; gc thresholds %s -> %s", args.name, frozen,
                                      gc.get_threshold())
    return run(entry(cfg, args.name))


if __name__ == "__main__":
    sys.exit(main())
