"""Logging set-up for every process, and a once-per-reason logger for bad input.

Bad input is logged once per reason (then only counted), so a hostile or broken peer cannot flood the
log or slow the hot path; the counts stay readable through :class:`OnceLogger.counts`.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter

_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s[%(process)d] %(message)s"


def reason(e: BaseException) -> str:
    """What went wrong, never empty: ``TimeoutError()`` prints as "" and used to log as ``failed ()``."""
    if text := str(e):
        return text
    return "timed out" if isinstance(e, TimeoutError) else f"{type(e).__name__} (no detail given)"


def setup_logging(level: str = "INFO", stream: object = None) -> None:
    """Configure the root logger once for this process (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class OnceLogger:
    """Log the first occurrence of each reason at WARNING, count every occurrence."""

    __slots__ = ("_log", "counts")

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self.counts: Counter[str] = Counter()

    def __call__(self, reason: str, detail: str = "") -> None:
        self.counts[reason] += 1
        if self.counts[reason] == 1:
            self._log.warning("%s%s (further occurrences counted, not logged)", reason,
                              f": {detail}" if detail else "")

    @property
    def total(self) -> int:
        return sum(self.counts.values())
