"""Which compiled twins are in use: each hot loop with a Cython build (setup.py) and a pure-Python twin.

A build without a C compiler still installs fastmm and runs the pure twins, with the same results and
slower; ``report()`` tells which is which (for a start-up log line, ``fastmm status`` or a benchmark's
output), so a missing build shows up as a fact, not as a mystery in the latency figures.
"""

from __future__ import annotations


def report() -> dict[str, bool]:
    """Twin name -> whether the compiled one is in use."""
    from fastmm.core import reconcile
    from fastmm.venues.coinbase import codec

    return {
        "coinbase_l2_updates": codec.COMPILED,   # fastmm/venues/coinbase/_l2fast.pyx: apply_updates
        "reconcile_plan": reconcile.COMPILED,    # fastmm/core/_plan_fast.pyx: plan
    }


def describe() -> str:
    """One line for a log: ``compiled twins: coinbase_l2_updates=compiled reconcile_plan=pure``."""
    return "compiled twins: " + " ".join(f"{k}={'compiled' if v else 'pure'}" for k, v in report().items())
