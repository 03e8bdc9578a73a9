"""How each process is started: its command line, its CPUs, the secrets it may see, its clean-up."""

from __future__ import annotations

import sys

from fastmm.config import load_config
from fastmm.procs.plan import CANCEL_LEFT, HEDGER, QUOTER, SECRETS_OF, child_env, default_children


def test_a_child_sees_only_its_own_secrets() -> None:
    environ = {"PATH": "/bin", "FASTMM_TRUEX_API_SECRET": "t", "FASTMM_KRAKEN_API_SECRET": "k"}
    quoter = child_env(QUOTER, environ, 42)
    assert quoter["FASTMM_TRUEX_API_SECRET"] == "t" and "FASTMM_KRAKEN_API_SECRET" not in quoter
    assert quoter["PATH"] == "/bin" and quoter["FASTMM_PROCESS"] == QUOTER
    assert quoter["FASTMM_SUPERVISOR_PID"] == "42"
    hedger = child_env(HEDGER, environ, 42)
    assert hedger["FASTMM_KRAKEN_API_SECRET"] == "k" and "FASTMM_TRUEX_API_SECRET" not in hedger
    assert SECRETS_OF[CANCEL_LEFT] == SECRETS_OF[QUOTER], "cancel-left logs on as the quoter"


def test_default_children_run_the_process_module_and_the_quoter_cleans_up() -> None:
    cfg = load_config(None, {"FASTMM_PROCESSES__QUOTER": "[2]"})
    specs = {s.name: s for s in default_children(cfg, "/etc/fastmm.toml", (QUOTER, HEDGER))}
    assert specs[QUOTER].argv == [sys.executable, "-m", "fastmm.procs.run", QUOTER,
                                  "--config", "/etc/fastmm.toml"]
    assert specs[QUOTER].cpus == [2]
    assert specs[QUOTER].on_death == [sys.executable, "-m", "fastmm.procs.run", CANCEL_LEFT,
                                      "--config", "/etc/fastmm.toml"]
    assert specs[HEDGER].on_death is None
