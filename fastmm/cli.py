"""The `fastmm` command line.

Each command lives next to the code it drives and registers itself through a ``register(subparsers)``
function in the module named in ``_COMMAND_MODULES``; the handler it sets returns the exit status.
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
    "fastmm.engine_cli",
    "fastmm.sim_cli",
    "fastmm.config_cli",
    "fastmm.feed_cli",
    "fastmm.fix_cli",
    "fastmm.backtest_cli",
    "fastmm.calibrate_cli",
    "fastmm.ops_cli",
    "fastmm.report_cli",
    "fastmm.bench_cli",
    "fastmm.db_cli",
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
