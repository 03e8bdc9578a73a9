"""The cyclic garbage collector in the hot processes (feeds, quoter, hedger).

CPython's collector runs a young-generation pass whenever container allocations outnumber frees by
gen0's threshold (700 by default). A feed or the quoter allocates short-lived dicts, tuples and records on
every tick; reference counting frees most of them, but the survivors (book levels, tracked orders,
journal buffers) trigger a pass every few hundred ticks, and each pass is a pause of tens of microseconds
at a random tick (bench/core.py and bench/feeds.py show it in p99). ``python -m fastmm.procs.run`` calls
:func:`freeze_startup_heap` once modules and config are loaded, just before the process's loop: what is
alive then is long-lived, so it goes into the permanent generation that no pass scans, and gen0's
threshold is raised so the passes that remain are rare.
Nothing is disabled: reference cycles are still collected.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 20_000   # ~30x rarer young passes than CPython's 700; each scans only young objects
GEN1_THRESHOLD = 50
GEN2_THRESHOLD = 100


def freeze_startup_heap() -> tuple[int, int, int]:
    """Collect once, freeze what survives, raise the thresholds; returns the previous thresholds."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    return before
