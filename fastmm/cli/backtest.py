"""``fastmm backtest``: replay recorded data through the trading core and report what it would have earned.

Without ``--sweep``: the configured strategy and, in the same run, the baselines (a naive symmetric
ladder without skew, Avellaneda-Stoikov, GLFT, and hftbacktest's GLFT grid on the same data when
hftbacktest is installed); a table on stdout, ``--json`` and ``--plots`` on request. With ``--sweep``:
every combination of the given settings on ``--workers`` processes, ranked.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastmm import __version__
from fastmm.config import Config, ConfigError, load_config
from fastmm.logs import setup_logging
from fastmm.units import DataError

EXIT_DATA = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest", help="replay recorded market data through the trading core; PnL report and baselines",
        description="Replay a recording (Binance raw capture or Coinbase JSONL frames) through the same core "
                    "the live engine runs, with a queue-position fill model, latencies, fees and hedges.")
    p.add_argument("--data", "--venue", metavar="PATH", dest="data",
                   help="recording to quote and fill on (default: the Binance capture under FASTMM_DATA_DIR)")
    p.add_argument("--reference", metavar="PATH", action="append", default=[],
                   help="cross-venue: take the fair price from this recording (repeatable) and quote on "
                        "--venue's, with an online basis of the venue over the references")
    p.add_argument("--config", "-c", metavar="FILE", help="TOML config file (defaults when omitted)")
    p.add_argument("--json", metavar="OUT", help="write the full report as JSON")
    p.add_argument("--plots", metavar="DIR", help="write pnl.png, inventory.png, quotes.png (matplotlib)")
    g = p.add_argument_group("models and clocks")
    g.add_argument("--feed-latency", type=int, default=None, metavar="NS",
                   help="reference data -> our engine (default backtest.reference_latency_us: 1 ms)")
    g.add_argument("--order-latency", type=int, default=None, metavar="NS",
                   help="our engine -> the venue and back, each way "
                        "(default backtest.venue_latency_us: 5 ms)")
    g.add_argument("--hedge-latency", type=int, default=None, metavar="NS",
                   help="hedger <-> Kraken, each way (default backtest.hedge_latency_ms: 100 ms)")
    g.add_argument("--timer-ms", type=float, default=100.0, help="the quoter's timer tick (default 100)")
    g.add_argument("--cancels", choices=("prorata", "all", "none"), default="prorata",
                   help="share of a level's cancels that were ahead of our order (default prorata)")
    g.add_argument("--hedge-mode", choices=("planner", "taker"), default="planner",
                   help="planner: limit then market (HedgePlanner); taker: market at the touch at once")
    d = p.add_argument_group("data")
    d.add_argument("--size-unit", default="base", metavar="UNIT",
                   help="size unit of the recording: base, contract:<BTC per contract>, "
                        "inverse:<USD per contract>")
    d.add_argument("--symbol", default="", help="symbol/product to keep when a recording has several")
    d.add_argument("--max-lines", type=int, default=None, metavar="N", help="read only the first N lines")
    d.add_argument("--tick", type=Decimal, default=None, help="price increment of the quoted instrument "
                   "(default: the configuration's for BTC, the asset table's for others, e.g. ETH 0.01)")
    d.add_argument("--lot", type=Decimal, default=None, help="size increment of the quoted instrument")
    r = p.add_argument_group("runs")
    r.add_argument("--no-baselines", action="store_true", help="run only the configured strategy")
    r.add_argument("--no-hftbacktest", action="store_true", help="leave out the hftbacktest reference")
    r.add_argument("--sweep", nargs="+", metavar="KEY=V1,V2",
                   help="parameter grid, e.g. spread=20,50,80 levels=3,5 (aliases: spread, levels, model, "
                        "size, spacing, gamma, reprice, skew, max_position; or section.key)")
    r.add_argument("--workers", type=int, default=2, help="sweep worker processes (default 2)")
    r.add_argument("--rank-by", choices=("total", "sharpe", "drawdown", "fills"), default="total")
    r.add_argument("--suite", nargs="?", const="", metavar="ROOT",
                   help="every strategy on every recording under ROOT (default FASTMM_DATA_DIR) and every "
                        "cross-venue pair; a table with a pooled row per strategy")
    r.add_argument("--walk-forward", action="store_true",
                   help="suite: calibrate on the first half of each case, trade the second")
    r.add_argument("--fee-bps", default="", metavar="X,Y",
                   help="suite: also run every strategy with the TrueX maker fee raised by these "
                        "bps")
    r.add_argument("--seconds", type=float, default=None,
                   help="suite: only the first S seconds of each recording")
    p.add_argument("-v", "--verbose", action="store_true", help="log the core's INFO messages")
    p.set_defaults(handler=_run)


def _options(args: argparse.Namespace, cfg: Config) -> Any:
    from fastmm.backtest.engine import BacktestOptions

    b = cfg.backtest

    def pick(flag: int | None, default: int) -> int:
        return default if flag is None else flag

    opts = BacktestOptions(feed_latency_ns=pick(args.feed_latency, b.reference_latency_us * 1000),
                           order_latency_ns=pick(args.order_latency, b.venue_latency_us * 1000),
                           hedge_latency_ns=pick(args.hedge_latency, b.hedge_latency_ms * 1_000_000),
                           timer_ns=int(args.timer_ms * 1e6), cancels=args.cancels,
                           hedge_mode=args.hedge_mode)
    try:
        opts.check()
    except ValueError as e:
        raise ConfigError(f"backtest options: {e}") from None
    return opts


def _run(args: argparse.Namespace) -> int:
    from fastmm.backtest import report
    from fastmm.backtest.baselines import baselines
    from fastmm.backtest.engine import run_backtest
    from fastmm.backtest.hftbt import run_reference
    from fastmm.backtest.readers import load_market_data
    from fastmm.data.paths import binance_capture_dir

    setup_logging("INFO" if args.verbose else "WARNING")
    cfg = load_config(args.config)
    opts = _options(args, cfg)
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    err = sys.stderr
    if args.suite is not None:
        return _suite(args, cfg, opts, err)
    sweep = None
    if args.sweep:
        from fastmm.backtest import sweep as sw

        grid = sw.parse_sweep(args.sweep)
        combos = sw.combinations(grid)
        cfgs = sw.configs(args.config, combos)   # all validated before any data is read
        sweep = (sw, combos, cfgs)
    path = args.data or binance_capture_dir()
    t0 = time.perf_counter()
    try:
        md = load_market_data(path, size_unit=args.size_unit, symbol=args.symbol, max_lines=args.max_lines)
        refs = tuple(load_market_data(r, size_unit=args.size_unit, max_lines=args.max_lines)
                     for r in args.reference)
    except DataError as e:
        print(f"fastmm: data error: {e}", file=err)
        return EXIT_DATA
    from fastmm.backtest.instruments import asset_of, base_of, for_recording

    for r in refs:
        if (asset_of(r.symbol) or base_of(r.symbol)) != (asset_of(md.symbol) or base_of(md.symbol)):
            print(f"fastmm: data error: reference {r.symbol} is not the venue's instrument {md.symbol}",
                  file=err)
            return EXIT_DATA
    cfg = for_recording(cfg, md.symbol, tick=args.tick, lot=args.lot, data=md)
    load_s = time.perf_counter() - t0
    info = md.describe()
    if refs:
        info["references"] = [r.describe() for r in refs]
        print(f"cross-venue: quoting {info['source']}, fair price from "
              f"{', '.join(str(r.source) for r in refs)}", file=err)
    print(f"data: {info['source']} ({info['format']}, {info['symbol']}): {info['duration_s']} s, "
          f"{info['depth_rows']} depth rows, {info['trades']} trades, {info['tops']} tops; "
          f"read in {load_s:.2f} s",
          file=err)
    doc: dict[str, Any] = {
        "fastmm": __version__, "command": sys.argv[1:], "data": info, "load_s": load_s,
        "options": dataclasses.asdict(opts), "config": report.config_json(cfg),
        "definitions": report.DEFINITIONS,
    }
    if sweep is not None:
        sw, combos, cfgs = sweep
        print(f"sweep: {len(combos)} runs on {min(args.workers, len(combos))} worker(s)", file=err)
        rows = sw.run_sweep(cfgs, combos, md, opts, workers=args.workers, progress=err)
        ranked = sw.rank(rows, args.rank_by)
        print(f"ranked by {args.rank_by}:")
        print(sw.ranked_table(ranked))
        doc["sweep"] = {"rank_by": args.rank_by, "workers": args.workers, "rows": ranked}
        return _write_json(args.json, doc)
    runs = baselines(cfg) if not args.no_baselines else [("configured", cfg)]
    results = []
    for name, c in runs:
        res = run_backtest(c, md, opts, name=name, references=refs)
        print(f"run {name}: {res.summary.trades} fills, total {res.summary.total} PYUSD "
              f"({res.replay_s:.2f} s)", file=err)
        results.append(res)
    rows = [report.metrics(r) for r in results]
    hbt = None
    hbt_info: dict[str, Any] = {"included": False}
    if not args.no_baselines and not args.no_hftbacktest and not refs:
        hbt, hbt_info = run_reference(cfg, md, opts, err)
        if hbt is not None:
            end = md.end_ns + opts.feed_latency_ns
            rows.append(report.hbt_metrics(hbt, md.start_ns, end, opts.sample_ns))
    print(report.table(rows))
    for row in rows:
        for ev in row.get("risk_events") or []:
            print(f"  {row['strategy']}: risk event {ev}")
    doc.update(runs=rows, hftbacktest=hbt_info, series={r.name: report.series_json(r) for r in results})
    if args.plots:
        try:
            files = report.plot(results, args.plots, hbt)
        except (RuntimeError, OSError) as e:
            print(f"fastmm: cannot write the plots: {e}", file=err)
            return 1
        doc["plots"] = [str(f) for f in files]
        print("plots: " + ", ".join(str(f) for f in files), file=err)
    return _write_json(args.json, doc)


def _suite(args: argparse.Namespace, cfg: Config, opts: Any, err: Any) -> int:
    from fastmm.backtest import report, suite
    from fastmm.backtest.hftbt import unavailable_reason
    from fastmm.data.paths import data_dir

    try:
        fees = [Decimal(x) for x in args.fee_bps.split(",") if x.strip()]
    except ArithmeticError:
        raise ConfigError(f"--fee-bps {args.fee_bps!r}: expected numbers, e.g. 1,2") from None
    root = args.suite or data_dir()
    t0 = time.perf_counter()
    try:
        cases = suite.load_cases(root, max_lines=args.max_lines, seconds=args.seconds, progress=err)
    except DataError as e:
        print(f"fastmm: data error: {e}", file=err)
        return EXIT_DATA
    print(f"suite: read {len(cases)} cases in {time.perf_counter() - t0:.1f} s", file=err)
    hbt = not args.no_hftbacktest and unavailable_reason() is None
    rows = suite.run_suite(cfg, cases, opts, fee_bps=fees, walk_forward=args.walk_forward,
                           hftbacktest=hbt, workers=args.workers, progress=err)
    rows = suite.add_intervals(rows)
    print(suite.table(rows))
    ranked = suite.ranking(rows)
    print("\nRanking (pooled PnL positive at the configured fee and under every stress, then positive cases, "
          "then the worst case, then pooled PnL):\n")
    print(suite.ranking_table(ranked))
    mode = "walk-forward: calibrated on the first half, traded on the second" if args.walk_forward else \
        "in-sample: the configuration as given on the whole of each case"
    print(f"\n{mode}; PnL in the venue's quote currency; fees: TrueX maker {cfg.fees.truex_maker_bps} bps"
          f"{' (+' + ', +'.join(map(str, fees)) + ' bps stress rows)' if fees else ''}; "
          f"hftbacktest GLFT {'on single recordings only' if hbt else 'left out'}")
    doc = {"fastmm": __version__, "command": sys.argv[1:], "options": dataclasses.asdict(opts),
           "config": report.config_json(cfg), "walk_forward": args.walk_forward,
           "fee_bps": [str(f) for f in fees],
           "cases": [c.name for c in cases], "rows": suite.json_rows(rows), "ranking": ranked}
    return _write_json(args.json, doc)


def _write_json(out: str | None, doc: dict[str, Any]) -> int:
    if not out:
        return 0
    from fastmm.backtest.report import to_json

    p = Path(out)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(to_json(doc))
    except OSError as e:
        print(f"fastmm: cannot write the report: {e}", file=sys.stderr)
        return 1
    print(f"report: {p}", file=sys.stderr)
    return 0
