"""The hot processes' collector setting: startup heap frozen, young passes rarer, cycles still collected."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc, weakref
from fastmm.procs.heap import GEN0_THRESHOLD, freeze_startup_heap
before = freeze_startup_heap()
assert before == (700, 10, 10), before
assert gc.get_threshold()[0] == GEN0_THRESHOLD and gc.isenabled()
assert gc.get_freeze_count() > 1_000, gc.get_freeze_count()
class Node: pass
a, b = Node(), Node()
a.other, b.other = b, a
ref = weakref.ref(a)
del a, b
gc.collect()
assert ref() is None, "a reference cycle made after the freeze was not collected"
print("ok")
"""


def test_freeze_startup_heap_in_a_fresh_interpreter() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"

