"""Reader of recorded Coinbase Advanced Trade frames: JSONL lines ``{"t_ns": <recv ns>, "frame": "<raw>"}``.

The frame text is kept raw (exactly as received); decoding it is the consumer's business, so a
recording can be replayed byte for byte. Plain or gzip files.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from fastmm.units import DataError


@dataclass(frozen=True, slots=True)
class RawFrame:
    t_ns: int
    text: str


def parse_frame_line(line: bytes | str) -> RawFrame:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise DataError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise DataError("line is not a JSON object")
    t, frame = obj.get("t_ns"), obj.get("frame")
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise DataError(f"t_ns is not a non-negative integer: {t!r:.40}")
    if not isinstance(frame, str):
        raise DataError("frame is not a string")
    return RawFrame(t, frame)


def read_frames(path: str | Path) -> Iterator[RawFrame]:
    """Frames in file order; a bad line raises DataError naming its line number."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: frames file not found")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield parse_frame_line(line)
            except DataError as e:
                raise DataError(f"{p.name}:{n}: {e}") from None


def write_frames(path: str | Path, frames: Iterable[RawFrame]) -> int:
    """Write frames as JSONL (what a feed recorder produces); returns the count."""
    n = 0
    with open(path, "wb") as fh:
        for f in frames:
            fh.write(orjson.dumps({"t_ns": f.t_ns, "frame": f.text}) + b"\n")
            n += 1
    return n
