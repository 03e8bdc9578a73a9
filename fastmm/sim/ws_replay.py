"""What the WebSocket replay simulators (Coinbase, Kraken v2) share, sans-I/O: recorded events on a
replay clock, and the connections with their outgoing queues.

A connection's queue is bounded: past ``max_backlog`` messages the connection is marked to be closed as
a slow consumer, as the venues drop a client that cannot keep up. At maximum speed the replay waits while
any queue is at ``high_water`` (flow control instead of loss). Each simulator adds its own protocol: what
a new connection is told, subscriptions, message shapes, faults.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from fastmm.data.replay import Cursor, ReplayClock
from fastmm.logs import OnceLogger


class ReplaySettings(Protocol):
    """Read-only: the simulators' settings are frozen dataclasses."""

    @property
    def speed(self) -> float: ...          # 1.0 real time; 0 or inf as fast as possible
    @property
    def rebase_time(self) -> bool: ...     # shift recorded times so the replay starts "now"
    @property
    def high_water(self) -> int: ...       # max-speed flow control: pause the replay at this backlog
    @property
    def max_backlog(self) -> int: ...      # a connection this far behind is dropped (slow consumer)


class WsConn:
    """One connection: its id, what waits to be written, and why it must close (None: it may stay)."""

    __slots__ = ("close_reason", "id", "out")

    def __init__(self, cid: int) -> None:
        self.id = cid
        self.out: deque[Any] = deque()
        self.close_reason: str | None = None


E = TypeVar("E")
C = TypeVar("C", bound=WsConn)


class WsReplayCore(Generic[E, C]):
    def __init__(self, events: Iterable[E], settings: ReplaySettings, log: logging.Logger) -> None:
        self.clock = ReplayClock(settings.speed)
        self._cursor: Cursor[E] = Cursor(events)
        self._conns: dict[int, C] = {}
        self._next_id = 1
        self._offset = 0            # added to recorded times (rebase_time)
        self._replay_settings = settings
        self.bad = OnceLogger(log)

    # -- connections -------------------------------------------------------------------------------
    def _add(self, make: Callable[..., C], *args: Any) -> C:
        """A new connection built by ``make(cid, *args)``, registered."""
        cid = self._next_id
        self._next_id += 1
        c = make(cid, *args)
        self._conns[cid] = c
        return c

    def close(self, cid: int) -> None:
        self._conns.pop(cid, None)

    def should_close(self, cid: int) -> str | None:
        c = self._conns.get(cid)
        return None if c is None else c.close_reason

    @property
    def connections(self) -> int:
        return len(self._conns)

    def _enqueue(self, c: C, item: Any) -> None:
        c.out.append(item)
        if len(c.out) > self._replay_settings.max_backlog and c.close_reason is None:
            c.close_reason = "slow consumer"
            self.bad("slow consumer dropped", f"connection {c.id}")

    def backlog(self) -> int:
        return max((len(c.out) for c in self._conns.values()), default=0)

    @property
    def flow_blocked(self) -> bool:
        """At max speed the replay waits for the slowest connection to drain below ``high_water``."""
        return self.clock.max_speed and self.backlog() >= self._replay_settings.high_water

    # -- replay ------------------------------------------------------------------------------------
    def start_replay(self, now_ns: int) -> None:
        if self.clock.started:
            return
        first = self._cursor.peek()
        t0 = first.recv_ns if first is not None else now_ns  # type: ignore[attr-defined]
        self.clock.start(now_ns, t0)
        self._offset = now_ns - t0 if self._replay_settings.rebase_time else 0

    @property
    def finished(self) -> bool:
        return self._cursor.exhausted

    def _replay_due(self, now_ns: int, budget: int, apply: Callable[[E], None]) -> bool:
        """Hand the recorded events due by ``now_ns`` (at most ``budget``) to ``apply``; stop while the
        flow is blocked. True when more are due already (call again after draining)."""
        if not self.clock.started:
            return False
        data_now = self.clock.data_now(now_ns)
        cursor = self._cursor
        for _ in range(budget):
            ev = cursor.peek()
            if ev is None or ev.recv_ns > data_now or self.flow_blocked:  # type: ignore[attr-defined]
                return False
            apply(cursor.pop())
        return cursor.peek() is not None and not self.flow_blocked

    def _replay_wakeup(self, times: list[int]) -> int | None:
        """The earliest of ``times`` and the wall time of the next recorded event (unless blocked)."""
        ev = self._cursor.peek()
        if ev is not None and self.clock.started and not self.flow_blocked:
            w = self.clock.wall_at(ev.recv_ns)  # type: ignore[attr-defined]
            if w is not None:
                times.append(w)
        return min(times) if times else None
