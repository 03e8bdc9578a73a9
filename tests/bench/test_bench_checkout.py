"""`fastmm bench` outside a checkout: one clear line and exit 2 (the benchmarks are not installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastmm.cli.bench import CHECKOUT_ENV, bench_dir


def test_without_a_checkout_it_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, CHECKOUT_ENV: str(tmp_path)}          # a folder with no pyproject.toml or bench/
    r = subprocess.run([sys.executable, "-m", "fastmm.cli", "bench", "latency", "--speeds", "1"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a source checkout" in lines[0] and str(tmp_path) in lines[0]
    assert r.stdout == ""


def test_a_checkout_named_by_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv(CHECKOUT_ENV, str(root))
    assert bench_dir() == root / "bench"
