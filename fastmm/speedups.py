"""Which compiled twins are in use: each hot loop with a Cython build (setup.py) and a pure-Python twin.

A build without a C compiler still installs fastmm and runs the pure twins, with the same results and
slower; ``report()`` tells which is which (for a start-up log line, ``fastmm status`` or a benchmark's
output), so a missing build shows up as a fact, not as a mystery in the latency figures.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

PURE_ENV = "FASTMM_PURE"    # "1": every process runs the pure twins (CI runs the core and feed tests so too)

# twin name -> the module whose COMPILED flag says which twin runs ("module:FLAG": a module with two twins)
TWINS = {
    "coinbase_l2_updates": "fastmm.data.book",               # data/_l2fast.pyx: apply_updates (the feed's)
    "reconcile_plan": "fastmm.core.reconcile",               # _plan_fast.pyx: plan
    "price_aggregator": "fastmm.core.price_aggregator",      # _agg_fast.pyx: AggregatorCore
    "fix_parse": "fastmm.fix.codec",                         # _parse_fast.pyx: feed, parse_message
    "truex_decode": "fastmm.venues.truex.codec",             # _decode_fast.pyx: ExecutionReport, 35=X
    "fix_encode": "fastmm.fix.codec:ENCODE_COMPILED",        # _encode_fast.pyx: Encoder.encode
    "truex_encode": "fastmm.venues.truex.codec:ENCODE_COMPILED",  # _encode_fast.pyx: D, F, G bodies
}


def compiled_twin(module: str, name: str) -> Callable[..., Any] | None:
    """The compiled twin ``module.name``; None when it was not built (no C compiler) or ``FASTMM_PURE=1``
    asks for the pure twins. The one place a hot module looks its twin up."""
    if os.environ.get(PURE_ENV) == "1":
        return None
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None


def report(*names: str) -> dict[str, bool]:
    """Twin name -> whether the compiled one is in use; all twins, or only ``names`` (a process asks only
    for its own: importing the others would cost it their modules' memory)."""
    return {n: _flag(TWINS[n]) for n in (names or TWINS)}


def _flag(where: str) -> bool:
    module, _, flag = where.partition(":")
    return bool(getattr(importlib.import_module(module), flag or "COMPILED"))


def describe(*names: str) -> str:
    """One line for a log: ``compiled twins: coinbase_l2_updates=compiled reconcile_plan=pure``."""
    twins = report(*names)
    return "compiled twins: " + " ".join(f"{k}={'compiled' if v else 'pure'}" for k, v in twins.items())
