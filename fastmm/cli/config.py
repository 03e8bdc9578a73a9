"""`fastmm config check|show`: validate a config file and print the effective settings."""

from __future__ import annotations

import argparse
import os

from fastmm.config import describe, example_toml, load_config, unknown_env


def _check(args: argparse.Namespace) -> int:
    load_config(args.config)     # logs one warning for each ignored FASTMM_ variable
    ignored = unknown_env(os.environ)
    print(f"{args.config or '(defaults)'}: ok" + (f" ({len(ignored)} environment variable(s) ignored)"
                                                  if ignored else ""))
    return 0


def _show(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    rows = describe(cfg)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def _example(args: argparse.Namespace) -> int:
    print("# fastmm configuration: every setting with its default (`fastmm config example`).")
    print("# Secrets are never read from this file; see the FASTMM_* variables named below.\n")
    print(example_toml(), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="validate a config file, or show the effective settings")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    for name, fn, text in (("check", _check, "validate and exit 0, or print one error line and exit 2"),
                           ("show", _show, "print every effective setting (secrets only as set/unset)")):
        c = csub.add_parser(name, help=text)
        c.add_argument("--config", "-c", metavar="FILE", help="TOML config file (defaults when omitted)")
        c.set_defaults(handler=fn)
    e = csub.add_parser("example", help="print a complete config file with every default")
    e.set_defaults(handler=_example)
