"""`fastmm report --db` draws, per instance, what `fastmm report JOURNAL` draws, and the firm view."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from db_journals import ship, write_session

from fastmm.config import Config
from fastmm.report_cli import make_report


def test_db_report_equals_the_journal_report_per_instance(tmp_path: Path, db: str) -> None:
    write_session(tmp_path / "alpha", 120)
    write_session(tmp_path / "beta", 45, mid_ticks=170_000)
    for name in ("alpha", "beta"):
        ship(tmp_path, db, name)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "fastmm.cli", "report", "--db", db, "--out", str(out)],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert "alpha:" in r.stdout and "beta:" in r.stdout
    got = json.loads((out / "summary.json").read_text())
    for name in ("alpha", "beta"):
        want = make_report(tmp_path / name / "journal.jsonl", tmp_path / f"j-{name}", Config())
        have = got["instances"][name]
        for key in ("records", "rebuilt", "orders", "rejects", "fills", "start", "end"):
            assert have[key] == want[key], (name, key)
        assert (out / name / "session.png").stat().st_size > 1000
    firm = got["firm"]
    assert [(r["instance"], r["fills"]) for r in firm["fill_ratio"]] == [("alpha", 120), ("beta", 45)]
    assert {r["instance"] for r in firm["markouts_by_level"]} == {"alpha", "beta"}
    assert "beta" in (out / "firm.html").read_text()
    # one instance, and a --since that leaves nothing of it out
    r = subprocess.run([sys.executable, "-m", "fastmm.cli", "report", "--db", db, "--instance", "beta", "--since",
                        "2025-12-03T07:00:00Z", "--out", str(tmp_path / "o2")], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    only = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert list(only["instances"]) == ["beta"]
    assert only["instances"]["beta"]["rebuilt"] == got["instances"]["beta"]["rebuilt"]


def test_since_parses_times_and_ages() -> None:
    from fastmm.db.report import parse_since

    assert parse_since("2025-12-03T08:00:00Z", 0) == 1_764_748_800 * 10**9
    assert parse_since("90m", 10**13) == 10**13 - 5400 * 10**9
    assert parse_since(None, 5) == 0
