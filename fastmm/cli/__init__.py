"""The `fastmm` command line.

One module of this package per command (argparse and thin handlers over the library), each registering
itself through a ``register(subparsers)`` function; the modules are named in ``_COMMAND_MODULES`` and the
handler a command sets returns the exit status. ``python -m fastmm.cli`` runs :func:`main` too.
Only commands that work are listed. Configuration errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fastmm import __version__
from fastmm.config import ConfigError

EXIT_CONFIG = 2

# Modules that define `register(subparsers: argparse._SubParsersAction) -> None`.
_COMMAND_MODULES: tuple[str, ...] = (
    "fastmm.cli.engine",
    "fastmm.cli.sim",
    "fastmm.cli.config",
    "fastmm.cli.feed",
    "fastmm.cli.fix",
    "fastmm.cli.backtest",
    "fastmm.cli.calibrate",
    "fastmm.cli.ops",
    "fastmm.cli.report",
    "fastmm.cli.bench",
    "fastmm.cli.db",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastmm",
        description="Low-latency market maker for BTC-PYUSD on TrueX.",
    )
    parser.add_argument("--version", action="version", version=f"fastmm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args) or 0)
    except ConfigError as e:
        print(f"fastmm: config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
