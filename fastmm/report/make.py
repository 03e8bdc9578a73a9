"""``session.png``, ``session.html`` and ``summary.json`` from a journal and the files the engine leaves
beside it (``supervisor.jsonl``, ``latency.quoter.txt``, ``report.json``)."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from fastmm.config import Config, ConfigError
from fastmm.journal.reader import exists
from fastmm.monitor.journal_stats import parse_latency_table
from fastmm.report.html import render_html
from fastmm.report.plots import plot_session
from fastmm.report.session import build_session, read_records, summary

log = logging.getLogger("fastmm.report")


def read_phases(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    records, _ = read_records(path)
    return [(r["t_ns"], str(r["phase"])) for r in records if r.get("kind") == "phase" and "previous" in r
            and isinstance(r.get("t_ns"), int)]


def make_report(journal: Path, out_dir: Path, cfg: Config) -> dict[str, Any]:
    """Build ``session.png``, ``session.html`` and ``summary.json`` in ``out_dir``; returns the summary."""
    if not exists(journal):
        raise ConfigError(f"{journal}: no such journal")
    if journal.is_dir():
        raise ConfigError(f"{journal}: is a folder; give the journal file (e.g. {journal}/journal.jsonl)")
    records, corrupt = read_records(journal)
    if corrupt:
        log.warning("report: %d corrupt line(s) in %s skipped", corrupt, journal)
    s = build_session(records, cfg)
    here = journal.parent
    extras: dict[str, Any] = {"journal": str(journal), "corrupt": corrupt}
    with contextlib.suppress(OSError, ValueError):
        extras["engine_report"] = json.loads((here / "report.json").read_text())
    with contextlib.suppress(OSError):
        extras["latency"] = parse_latency_table((here / "latency.quoter.txt").read_text())
    phases = read_phases(here / "supervisor.jsonl")
    out_dir.mkdir(parents=True, exist_ok=True)
    png_path = plot_session(s, phases, out_dir / "session.png")
    summ = summary(s, extras)
    (out_dir / "session.html").write_text(render_html(s, summ, png_path.read_bytes(), phases))
    (out_dir / "summary.json").write_text(json.dumps(summ, indent=2, default=str))
    return summ
