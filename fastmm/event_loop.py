"""Running a coroutine to completion: on uvloop where it is installed (a dependency on Linux), on asyncio's
default loop otherwise. Every process and command that runs a loop goes through :func:`run`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; kept for other platforms
        return asyncio.run(main)
    return uvloop.run(main)
