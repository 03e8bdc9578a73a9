"""The sans-I/O packages import no shell: no event loop, no socket library, no process or simulator module.

Each group is imported in a fresh interpreter, one module at a time; a shell module that appears in
``sys.modules`` is charged to the module whose import brought it in, so a failure names the culprit.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import fastmm.core
import fastmm.data
import fastmm.fix
import fastmm.shm

# Third-party and standard-library I/O runtimes a pure module must not pull in.
SHELL_LIBRARIES = ("asyncio", "uvloop", "websockets", "aiohttp")
# Our own shells: processes, simulators, transports, I/O clients and command lines.
SHELL_MODULES = (
    "fastmm.procs", "fastmm.sim", "fastmm.fix.transport", "fastmm.venues.ws_feed",
    "fastmm.venues.kraken.rest", "fastmm.venues.truex.rest", "fastmm.venues.truex.factory", "fastmm.cli",
)

VENUE_CODECS = [
    "fastmm.venues.events",
    "fastmm.venues.frames",
    "fastmm.venues.wire_time",
    "fastmm.venues.coinbase.codec",
    "fastmm.venues.kraken.ws_codec",
    "fastmm.venues.kraken.rest_codec",
    "fastmm.venues.truex.auth",
    "fastmm.venues.truex.book",
    "fastmm.venues.truex.codec",
    "fastmm.venues.truex.reconcile",
    "fastmm.venues.truex.rest_codec",
]


def _modules(package: object, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Every module of ``package`` (its __init__ too), but ``__main__`` and those in ``skip``."""
    name = package.__name__
    found = [name] + [f"{name}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return [m for m in found if m.rsplit(".", 1)[-1] != "__main__" and m not in skip]


GROUPS = {
    "core": _modules(fastmm.core),
    "fix": _modules(fastmm.fix, skip=("fastmm.fix.transport",)),
    "shm": _modules(fastmm.shm),
    "data": _modules(fastmm.data),
    "venue codecs": VENUE_CODECS,
}

_PROBE = """
import importlib, json, sys
libs, ours = json.loads(sys.argv[1]), tuple(json.loads(sys.argv[2]))

def shells():
    return {n for n in sys.modules
            if n.split(".")[0] in libs
            or any(n == o or n.startswith(o + ".") for o in ours)
            or n.startswith("fastmm.") and n.endswith("_cli")}

seen, charged = shells(), {}
for m in json.loads(sys.argv[3]):
    importlib.import_module(m)
    new = shells() - seen
    if new:
        charged[m] = sorted(n for n in new if n.split(".")[0] not in libs or "." not in n)
    seen |= new
print(json.dumps(charged))
"""


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_pure_package_imports_no_shell(group: str) -> None:
    modules = GROUPS[group]
    assert modules
    r = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(SHELL_LIBRARIES), json.dumps(SHELL_MODULES),
                        json.dumps(modules)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {}, f"pure modules importing shells: {r.stdout}"
