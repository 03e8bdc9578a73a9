"""``python bench/latency [...]``, and the harness's own child processes (``python .../__main__.py _quoter``).

Run as a file the package has no parent to import from, so it is loaded by path first, under the name
``fastmm bench`` gives it (:func:`fastmm.cli.bench.load_path`); run as ``python -m bench.latency`` it is
the package already.
"""

import sys
from pathlib import Path

if __package__:
    from . import main
else:
    from fastmm.cli.bench import load_path

    main = load_path("fastmm_bench_latency", Path(__file__).resolve().parent).main

sys.exit(main())
