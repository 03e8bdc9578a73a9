"""Replay timing shared by the simulators: a data clock mapped onto the caller's clock at a speed.

``speed`` 1.0 is real time, 2.0 twice as fast; 0 or infinity means as fast as possible (everything is
due at once, and the shells apply flow control instead of timing). Sans-I/O: every method takes the
caller's ``now_ns``; nothing here reads a clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from fastmm.units import DataError

log = logging.getLogger(__name__)


class Timed(Protocol):
    @property
    def recv_ns(self) -> int: ...


T = TypeVar("T")


def is_max_speed(speed: float) -> bool:
    return speed == 0 or math.isinf(speed)


class ReplayClock:
    """Maps data time (the capture's receive ns) to the caller's time, once started."""

    __slots__ = ("data_t0", "speed", "wall_t0")

    def __init__(self, speed: float = 1.0) -> None:
        if not (speed >= 0):  # also rejects NaN
            raise ValueError(f"replay speed must be >= 0 (0 = as fast as possible), got {speed}")
        self.speed = speed
        self.wall_t0: int | None = None
        self.data_t0: int | None = None

    @property
    def max_speed(self) -> bool:
        return is_max_speed(self.speed)

    @property
    def started(self) -> bool:
        return self.wall_t0 is not None

    def start(self, now_ns: int, data_t0: int) -> None:
        self.wall_t0, self.data_t0 = now_ns, data_t0

    def data_now(self, now_ns: int) -> float:
        """The data time that is due at ``now_ns`` (-inf before start, +inf at max speed)."""
        if self.wall_t0 is None or self.data_t0 is None:
            return -math.inf
        if self.max_speed:
            return math.inf
        return self.data_t0 + (now_ns - self.wall_t0) * self.speed

    def wall_at(self, data_ns: int) -> int | None:
        """When ``data_ns`` becomes due on the caller's clock (None before start)."""
        if self.wall_t0 is None or self.data_t0 is None:
            return None
        if self.max_speed:
            return self.wall_t0
        return self.wall_t0 + math.ceil((data_ns - self.data_t0) / self.speed)


class Cursor(Generic[T]):
    """An event iterator with one event of look-ahead, so a caller can ask what is due next.

    Unreadable recorded data (a bad line, an update-id gap) ends the replay with one logged error
    instead of killing the server that replays it; ``error`` keeps the reason."""

    __slots__ = ("_it", "_next", "consumed", "error", "exhausted")

    def __init__(self, events: Iterable[T]) -> None:
        self._it: Iterator[T] = iter(events)
        self._next: T | None = None
        self.exhausted = False
        self.consumed = 0
        self.error: DataError | None = None
        self._fill()

    def _fill(self) -> None:
        try:
            self._next = next(self._it)
        except StopIteration:
            self._next, self.exhausted = None, True
        except DataError as e:
            self._next, self.exhausted, self.error = None, True, e
            log.error("replay stopped after %d events: %s", self.consumed, e)

    def peek(self) -> T | None:
        return self._next

    def pop(self) -> T:
        ev = self._next
        if ev is None:
            raise IndexError("replay exhausted")
        self.consumed += 1
        self._fill()
        return ev
