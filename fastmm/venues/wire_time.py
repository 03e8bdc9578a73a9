"""Venue timestamp text (RFC 3339 with nanoseconds) from integer ns, and back: the simulators write it,
the feeds' codecs read it, so both use these functions and the two sides cannot drift apart."""

from __future__ import annotations

import time
from datetime import datetime

from fastmm.units import DataError

_cache: tuple[int, str] = (-1, "")


def _seconds_text(sec: int) -> str:
    global _cache
    if _cache[0] != sec:
        _cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return _cache[1]


def rfc3339_ns(ns: int) -> str:
    """``2023-02-09T20:32:50.714964855Z`` (Coinbase's envelope format)."""
    sec, frac = divmod(ns, 1_000_000_000)
    return f"{_seconds_text(sec)}.{frac:09d}Z"


def rfc3339_us(ns: int) -> str:
    """``2023-10-06T17:35:55.440295Z`` (Kraken WebSocket v2's format)."""
    sec, frac = divmod(ns, 1_000_000_000)
    return f"{_seconds_text(sec)}.{frac // 1000:06d}Z"


def go_time_ns(ns: int, mono_ns: int) -> str:
    """Go's ``time.Time`` text as Coinbase heartbeats carry it: ``2023-06-23 20:31:56.121961769 +0000 UTC
    m=+91717.525857105``."""
    sec, frac = divmod(ns, 1_000_000_000)
    msec, mfrac = divmod(mono_ns, 1_000_000_000)
    return f"{_seconds_text(sec).replace('T', ' ')}.{frac:09d} +0000 UTC m=+{msec}.{mfrac:09d}"


def parse_rfc3339_ns(text: str) -> int | None:
    """Inverse of :func:`rfc3339_ns` for any 0-9 fraction digits; None when the text is not such a time.
    The feeds parse every venue timestamp with it, so it uses ``fromisoformat`` (a strict
    ``YYYY-MM-DDTHH:MM:SS`` head is checked first), several times faster than ``strptime``."""
    if not isinstance(text, str) or not text.endswith("Z") or len(text) < 20 or text[10:11] != "T":
        return None
    head, _dot, frac = text[:-1].partition(".")
    if len(head) != 19 or (frac and not (frac.isascii() and frac.isdigit() and len(frac) <= 9)):
        return None
    seconds = _HEAD_SECONDS.get(head)
    if seconds is None:
        try:
            seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
        except ValueError:
            return None
        if len(_HEAD_SECONDS) >= 4096:
            _HEAD_SECONDS.clear()
        _HEAD_SECONDS[head] = seconds
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


# A feed sees the same whole second many times in a row: its conversion is looked up, not redone.
_HEAD_SECONDS: dict[str, int] = {}


def parse_timestamp_ns(text: str) -> int:
    """:func:`parse_rfc3339_ns` for a codec: anything that is not such a time is a DataError."""
    ns = parse_rfc3339_ns(text)
    if ns is None:
        raise DataError(f"bad timestamp {text!r}")
    return ns
