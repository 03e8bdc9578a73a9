"""What the children's health records say, turned into the lifecycle's events (sans-I/O).

Each child publishes a heartbeat, state bits and the id of the last command it acknowledged. The
supervisor reads the records; this module decides what they mean: a child is silent once its heartbeat
is older than the timeout (or, before its first one, once it has had its start grace), a state bit
counts only from a live child, and :class:`HealthObserver` answers with a lifecycle event only when
what it observes changes, so the lifecycle sees edges, not levels.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import NamedTuple

from fastmm.procs import lifecycle as lc
from fastmm.procs.plan import FEED_TRUEX_MD, QUOTER, REFERENCE_FEEDS
from fastmm.shm.records import (
    STATE_FRESH,
    STATE_LOGGED_ON,
    STATE_QUOTING,
    STATE_RISK_TRIPPED,
    STATE_SUBSCRIBED,
)


class Health(NamedTuple):
    """One child's health record, as read from its segment."""

    heartbeat_ns: int
    state: int
    acked: int


def silent(h: Health | None, started_ns: int, now_ns: int, heartbeat_timeout_ns: int,
           start_grace_ns: int) -> bool:
    """True when the child should be killed: no heartbeat for the timeout, or none at all since it was
    started longer ago than its grace (an interpreter and its imports take a while on a loaded host)."""
    if h is None:
        return now_ns - started_ns > max(start_grace_ns, heartbeat_timeout_ns)
    return now_ns - h.heartbeat_ns > heartbeat_timeout_ns


def alive_with(h: Health | None, bit: int, now_ns: int, heartbeat_timeout_ns: int) -> bool:
    """The child is alive (heartbeat within the timeout) and says ``bit``."""
    return h is not None and now_ns - h.heartbeat_ns <= heartbeat_timeout_ns and bool(h.state & bit)


class HealthObserver:
    """Lifecycle events from the children's health, each emitted when its input changes.

    A process that is not part of the instance (a test without a quoter or a TrueX market-data feed)
    counts as up, so the start sequence does not wait for it.
    """

    def __init__(self, processes: Collection[str], heartbeat_timeout_ns: int) -> None:
        self.processes = frozenset(processes)
        self.heartbeat_timeout_ns = heartbeat_timeout_ns
        self._last: dict[str, bool] = {}

    def _says(self, health: Mapping[str, Health | None], name: str, bit: int, now_ns: int) -> bool:
        return alive_with(health.get(name), bit, now_ns, self.heartbeat_timeout_ns)

    def risk_tripped(self, health: Mapping[str, Health | None], now_ns: int) -> bool:
        """The quoter's kill switch has tripped: the engine must stop."""
        return self._says(health, QUOTER, STATE_RISK_TRIPPED, now_ns)

    def events(self, health: Mapping[str, Health | None], now_ns: int) -> list[lc.Event]:
        out: list[lc.Event] = []

        def changed(key: str, value: bool, on: lc.Event, off: lc.Event) -> None:
            if self._last.get(key) != value:
                self._last[key] = value
                out.append(on if value else off)

        for proc, source in REFERENCE_FEEDS.items():
            if proc in self.processes:
                changed(f"feed:{source}", self._says(health, proc, STATE_FRESH, now_ns),
                        lc.FeedFresh(source), lc.FeedStale(source))
        changed("oe", QUOTER not in self.processes or self._says(health, QUOTER, STATE_LOGGED_ON, now_ns),
                lc.OrderEntryUp(), lc.OrderEntryDown())
        changed("md", FEED_TRUEX_MD not in self.processes
                or self._says(health, FEED_TRUEX_MD, STATE_SUBSCRIBED, now_ns),
                lc.MarketDataUp(), lc.MarketDataDown())
        quoting = self._says(health, QUOTER, STATE_QUOTING, now_ns)
        if self._last.get("quoting") != quoting:
            self._last["quoting"] = quoting
            if quoting:
                out.append(lc.QuotingStarted())
        return out
