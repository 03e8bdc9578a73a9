"""A WebSocket text frame as a JSON object: every feed codec's first step on a frame, with the one size
limit the shell also gives its connection, so bad input is refused the same way by every venue."""

from __future__ import annotations

import orjson

from fastmm.logs import OnceLogger

MAX_FRAME_BYTES = 16 * 1024 * 1024


def decode_frame(frame: bytes | bytearray | str, bad: OnceLogger) -> dict | None:
    """One WebSocket text frame as a JSON object, or None (too large, not JSON, not an object), the
    reason counted and logged once: every feed's first step on bad input."""
    if len(frame) > MAX_FRAME_BYTES:
        bad("frame too large", f"{len(frame)} bytes")
        return None
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        bad("not JSON", str(e)[:80])
        return None
    if not isinstance(msg, dict):
        bad("not a JSON object")
        return None
    return msg
