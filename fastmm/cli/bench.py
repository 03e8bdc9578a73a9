"""``fastmm bench latency``: the latency harness (the ``bench/latency`` package) from the installed command.

The harness lives in ``bench/`` of the source checkout (benchmarks are not part of the installed library),
so this module only declares the arguments, finds ``bench/`` and runs the harness. The checkout is the
one the package was installed from in editable mode (``bench/`` beside the ``fastmm`` folder, with the
project's ``pyproject.toml``), or any checkout named by ``FASTMM_CHECKOUT``; from an installed wheel
there is none, and the command says so in one line and exits 2. ``python bench/latency`` takes the same
arguments (it builds its parser from :func:`add_latency_arguments`), so the two spellings never drift
apart.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

EXIT_USAGE = 2
CHECKOUT_ENV = "FASTMM_CHECKOUT"


class NoCheckout(FileNotFoundError):
    """The benchmarks are not installed with the package: they need a source checkout."""


def bench_dir() -> Path:
    """``bench/`` of the source checkout: ``$FASTMM_CHECKOUT``, else the one this package was installed
    from in editable mode. A folder only counts with the project's ``pyproject.toml`` beside it, so an
    unrelated ``bench`` next to an installed package is never run."""
    env = os.environ.get(CHECKOUT_ENV)
    root = Path(env).resolve() if env else Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "bench").is_dir():
        return root / "bench"
    where = f"{CHECKOUT_ENV}={env}" if env else f"{root} (where this fastmm is installed)"
    raise NoCheckout(f"needs a source checkout of fastmm (bench/ is not installed with the package); no "
                     f"checkout at {where}: run it from a git clone installed with pip install -e, or set "
                     f"{CHECKOUT_ENV} to one")


def add_latency_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speeds", default="1,10,max",
                   help="replay speeds, comma-separated: a factor (1 = real time) or max (default 1,10,max)")
    p.add_argument("--duration", type=float, default=30.0, metavar="S",
                   help="seconds of quoting measured per run (each speed runs the engine, then the "
                        "single-loop baseline; default 30)")
    p.add_argument("--decisions", type=int, default=0, metavar="N",
                   help="keep each run quoting past --duration until the engine made N decisions that sent "
                        "orders (the figures' sample count; 1000 for stable p99s), within --max-duration")
    p.add_argument("--max-duration", type=float, default=900.0, metavar="S",
                   help="longest run with --decisions (default 900 s)")
    p.add_argument("--no-kernel-stamps", dest="kernel_stamps", action="store_false",
                   help="take no kernel timestamps (feed socket rx, order-entry tx): the engine's processes "
                        "exactly as in production, only the end-to-end figures")
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    p.add_argument("--png", metavar="PATH", help="draw the histograms (matplotlib, Agg backend)")
    p.add_argument("-c", "--config", metavar="FILE", help="engine TOML config (defaults when omitted)")
    p.add_argument("--venue-limits", action="store_true",
                   help="keep TrueX's message limits (10/s, 300/min) in the simulator and the engine; by "
                        "default both are lifted so that every price change that moves a quote sends "
                        "orders (at 300/min a run gives a few wire-to-wire samples per second)")
    p.add_argument("--modes", default="multiprocess,single",
                   help="which engines to run: multiprocess (the supervised engine), single (the "
                        "one-loop baseline); default both")
    p.add_argument("--cpu-dma-latency", action="store_true",
                   help="hold /dev/cpu_dma_latency at 0 during the runs (tuned's latency-performance "
                        "setting; root only) so that a CPU sleeping in a block wait wakes in microseconds")
    p.add_argument("--sim-cpus", metavar="LIST",
                   help="run the simulators on these CPUs (kernel list format, e.g. 0-1) and the engine on "
                        "the others it may use: with the engine pinned by [processes] on isolated cores, "
                        "the venues stay off them (bare metal)")
    p.add_argument("--no-floor", dest="floor", action="store_false",
                   help="skip the floor: the same process topology doing no work, paced like each run "
                        "(bench/floor.py); measured by default at every speed but max")
    p.add_argument("--state-dir", metavar="DIR",
                   help="keep every run's state (journals, logs, traces) here; default a temporary "
                        "folder removed at the end")


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` or the package ``bench/<name>/`` of the source checkout, loaded once by path
    (``bench/`` itself is not a package, and the checkout need not be on ``sys.path``)."""
    key = f"fastmm_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    base = bench_dir()
    for path in (base / name, base / f"{name}.py"):
        if path.exists():
            return load_path(key, path)
    raise NoCheckout(f"no benchmark {name!r} in {base}")


def load_path(key: str, path: Path) -> ModuleType:
    """The module file or package folder ``path`` as module ``key`` (relative imports work inside it)."""
    if key in sys.modules:
        return sys.modules[key]
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(key, path / "__init__.py",
                                                      submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(key, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def _latency(args: argparse.Namespace) -> int:
    try:
        harness = load_bench("latency")
    except NoCheckout as e:
        print(f"fastmm bench latency: {e}", file=sys.stderr)
        return EXIT_USAGE
    return int(harness.run(args))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks against the simulators (latency harness)",
                       description="Benchmarks that need the source checkout's bench/ folder.")
    bsub = p.add_subparsers(dest="bench", metavar="BENCH")
    lp = bsub.add_parser(
        "latency", help="wire-to-wire latency of the engine against a single-loop baseline",
        description="Start the simulators and the supervised engine, replay the recorded data at each "
                    "speed and measure wire to wire (Coinbase simulator writes a frame -> TrueX simulator "
                    "reads the order it caused) and every stage on the way; then the same code in one "
                    "process and one loop as the baseline. Prints p50/p99/p99.9/max and the ratios.")
    add_latency_arguments(lp)
    lp.set_defaults(handler=_latency)
    p.set_defaults(handler=lambda _a: (p.print_help(), 0)[1])
