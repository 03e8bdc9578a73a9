"""Reading a journal back: every complete line of every segment, oldest first, as typed records.

A torn last line (a writer killed mid-write) is not a record yet and is skipped. A line that is not a
JSON object, or not a readable record of its kind, raises :class:`JournalError`, or with
``skip_corrupt`` is logged and skipped (start-up recovery must not crash-loop on one bad line).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from fastmm.journal.records import Record, RecordError, from_dict

log = logging.getLogger("fastmm.journal")

# called with what a bad line decoded to (None when not JSON at all) and why it was skipped
OnBad = Callable[[Any, str], None]


class JournalError(RuntimeError):
    """A journal that cannot be opened, written or read (the engine must not trade without it)."""


def segments(path: Path) -> list[Path]:
    """Every file of the journal at ``path``, oldest first: rotated segments, then the active file."""
    rotated = sorted(p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit())
    return [*rotated, path] if path.exists() else rotated


def exists(path: Path) -> bool:
    """Whether the journal at ``path`` has any file (the active one or a rotated segment)."""
    return path.exists() or bool(segments(path))


def _lines(path: Path) -> Iterator[tuple[Path, bytes]]:
    for seg in segments(path):
        with seg.open("rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn tail of a crashed writer
                yield seg, line


def _objects(path: Path, skip_corrupt: bool,
             on_bad: OnBad | None) -> Iterator[tuple[Path, bytes, dict[str, Any]]]:
    for seg, line in _lines(path):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            _bad(seg, line, None, str(e), skip_corrupt, on_bad)
            continue
        if not isinstance(obj, dict):
            _bad(seg, line, obj, "not a JSON object", skip_corrupt, on_bad)
            continue
        yield seg, line, obj


def _bad(seg: Path, line: bytes, obj: Any, why: str, skip_corrupt: bool, on_bad: OnBad | None) -> None:
    if not skip_corrupt:
        raise JournalError(f"{seg}: corrupt record {line[:80]!r}: {why}")
    if on_bad is not None:
        on_bad(obj, why)
    else:
        log.warning("journal %s: skipped a corrupt record %r: %s", seg, line[:80], why)


def read_records(path: str | os.PathLike[str], *, skip_corrupt: bool = False,
                 on_bad: OnBad | None = None) -> Iterator[Record]:
    """Every record of the journal, in order, whichever format its line has."""
    for seg, line, obj in _objects(Path(path), skip_corrupt, on_bad):
        try:
            yield from_dict(obj)
        except RecordError as e:
            _bad(seg, line, obj, str(e), skip_corrupt, on_bad)


def read_objects(path: str | os.PathLike[str], *, skip_corrupt: bool = False) -> Iterator[dict[str, Any]]:
    """Every line as the JSON object it is (the database keeps lines as written)."""
    for _seg, _line, obj in _objects(Path(path), skip_corrupt, None):
        yield obj


def read_journal(path: str | os.PathLike[str], *, skip_corrupt: bool = False) -> Iterator[dict[str, Any]]:
    """Every record as a dict in the first format's layout (:meth:`Record.legacy`): for tools and tests
    written against it. A first-format line is given as it is; a line that is JSON but not a record of
    the current format is given as it is, too (these readers never needed more)."""
    for _seg, _line, obj in _objects(Path(path), skip_corrupt, None):
        if "v" not in obj:
            yield obj
            continue
        try:
            yield from_dict(obj).legacy()
        except RecordError:
            yield obj
