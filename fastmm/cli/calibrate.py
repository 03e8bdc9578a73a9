"""``fastmm calibrate``: fit the edge model's parameters on a recording and write a config fragment.

The fits are :func:`fastmm.core.calibrate.calibrate` (method and assumptions in its docstring and the
README); this module only reads the recording, picks its tops and trades, and writes TOML that
``fastmm backtest -c`` and ``fastmm config check`` read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastmm.config import load_config
from fastmm.units import DataError

EXIT_DATA = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit volatility, fill intensity and markout curves on a recording; "
                                         "write the [edge] config fragment",
                       description="Fit the edge model's parameters on a recording (Binance raw capture or "
                                   "Coinbase frames) and write them as a TOML fragment.")
    p.add_argument("--data", metavar="PATH", help="capture file or folder (default: the Binance BTC capture)")
    p.add_argument("--config", "-c", metavar="FILE",
                   help="config whose fees and [edge] horizon and vol_mult apply")
    p.add_argument("--out", "-o", metavar="FILE", help="write the fragment here (default: stdout)")
    p.add_argument("--json", metavar="OUT", help="also write every fitted curve as JSON")
    p.add_argument("--window-s", type=float, default=5.0, help="reach window for intensity and markouts")
    p.add_argument("--horizon-s", type=float, default=5.0, help="markout horizon of the depth rule")
    p.add_argument("--fit-fraction", type=float, default=1.0,
                   help="fit on the first part of the recording only (e.g. 0.5: judge on the rest)")
    p.add_argument("--size-unit", default="base", metavar="UNIT", help="as for fastmm backtest")
    p.add_argument("--symbol", default="", help="symbol to keep when a recording has several")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from fastmm.backtest.market import TOP, TRADE
    from fastmm.backtest.readers import load_market_data
    from fastmm.core.calibrate import calibrate, toml_fragment
    from fastmm.data.paths import binance_capture_dir

    cfg = load_config(args.config)
    if not 0.0 < args.fit_fraction <= 1.0:
        print("fastmm: --fit-fraction must be in (0, 1]", file=sys.stderr)
        return EXIT_DATA
    path = args.data or binance_capture_dir()
    try:
        md = load_market_data(path, size_unit=args.size_unit, symbol=args.symbol)
    except DataError as e:
        print(f"fastmm: data error: {e}", file=sys.stderr)
        return EXIT_DATA
    if args.fit_fraction < 1.0:
        md = md.head(md.duration_s * args.fit_fraction)
    top, tr = md.kind == TOP, md.kind == TRADE
    try:
        c = calibrate(md.t[top], md.a[top], md.b[top], md.t[tr], md.a[tr], md.b[tr], window_s=args.window_s,
                      horizon_s=args.horizon_s, maker_fee_bps=float(cfg.fees.truex_maker_bps),
                      vol_mult=cfg.edge.vol_mult, vol_horizon_s=cfg.edge.horizon_s)
    except ValueError as e:
        print(f"fastmm: cannot calibrate on {path}: {e}", file=sys.stderr)
        return EXIT_DATA
    source = str(path)
    if args.fit_fraction < 1.0:
        source += f" (first {args.fit_fraction:g}: {md.duration_s:.0f} s)"
    text = toml_fragment(c, source)
    if args.out:
        Path(args.out).write_text(text)
        print(f"calibration: {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.json:
        from dataclasses import asdict

        Path(args.json).write_text(json.dumps(asdict(c), indent=1, allow_nan=False, default=str))
    return 0
