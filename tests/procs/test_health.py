"""The children's health records read as silence, state and lifecycle events, with no process or segment."""

from __future__ import annotations

from fastmm.procs import lifecycle as lc
from fastmm.procs.health import Health, HealthObserver, alive_with, silent
from fastmm.procs.plan import FEED_COINBASE, FEED_KRAKEN, FEED_TRUEX_MD, PROCESSES, QUOTER
from fastmm.shm.records import (
    STATE_FRESH,
    STATE_LOGGED_ON,
    STATE_QUOTING,
    STATE_RISK_TRIPPED,
    STATE_SUBSCRIBED,
)

MS = 1_000_000
TIMEOUT = 300 * MS


def test_silence_after_the_heartbeat_timeout_or_the_start_grace() -> None:
    assert not silent(Health(1_000 * MS, 0, 0), 0, 1_300 * MS, TIMEOUT, 5_000 * MS)
    assert silent(Health(1_000 * MS, 0, 0), 0, 1_301 * MS, TIMEOUT, 5_000 * MS)
    # no record yet: the start grace (or the heartbeat timeout when longer) from the start
    assert not silent(None, 100 * MS, 5_100 * MS, TIMEOUT, 5_000 * MS)
    assert silent(None, 100 * MS, 5_101 * MS, TIMEOUT, 5_000 * MS)
    assert silent(None, 0, 301 * MS, TIMEOUT, 0)


def test_a_state_bit_counts_only_from_a_live_child() -> None:
    h = Health(1_000 * MS, STATE_FRESH, 0)
    assert alive_with(h, STATE_FRESH, 1_200 * MS, TIMEOUT)
    assert not alive_with(h, STATE_LOGGED_ON, 1_200 * MS, TIMEOUT)
    assert not alive_with(h, STATE_FRESH, 1_400 * MS, TIMEOUT)
    assert not alive_with(None, STATE_FRESH, 0, TIMEOUT)


def test_events_on_changes_only_through_the_start_sequence() -> None:
    obs = HealthObserver(PROCESSES, TIMEOUT)
    now = 10_000 * MS
    health: dict[str, Health | None] = dict.fromkeys(PROCESSES)
    first = obs.events(health, now)
    assert first == [lc.FeedStale("coinbase"), lc.FeedStale("kraken"), lc.OrderEntryDown(),
                     lc.MarketDataDown()]
    assert obs.events(health, now) == [], "levels are not repeated"
    health[FEED_KRAKEN] = Health(now, STATE_FRESH, 0)
    health[QUOTER] = Health(now, STATE_LOGGED_ON, 0)
    assert obs.events(health, now) == [lc.FeedFresh("kraken"), lc.OrderEntryUp()]
    health[FEED_TRUEX_MD] = Health(now, STATE_SUBSCRIBED, 0)
    health[QUOTER] = Health(now, STATE_LOGGED_ON | STATE_QUOTING, 0)
    assert obs.events(health, now) == [lc.MarketDataUp(), lc.QuotingStarted()]
    health[QUOTER] = Health(now, STATE_LOGGED_ON, 0)
    assert obs.events(health, now) == [], "quoting ending is no lifecycle event"
    # the kraken feed's heartbeat ages out: stale
    assert obs.events(health, now + TIMEOUT + 1) == [lc.FeedStale("kraken"), lc.OrderEntryDown(),
                                                     lc.MarketDataDown()]


def test_absent_processes_count_as_up() -> None:
    obs = HealthObserver((FEED_COINBASE,), TIMEOUT)
    assert obs.events({FEED_COINBASE: Health(0, STATE_FRESH, 0)}, 0) == [
        lc.FeedFresh("coinbase"), lc.OrderEntryUp(), lc.MarketDataUp()]


def test_risk_trip_is_the_quoters() -> None:
    obs = HealthObserver(PROCESSES, TIMEOUT)
    assert obs.risk_tripped({QUOTER: Health(0, STATE_RISK_TRIPPED, 0)}, 0)
    assert not obs.risk_tripped({FEED_COINBASE: Health(0, STATE_RISK_TRIPPED, 0)}, 0)
    assert not obs.risk_tripped({QUOTER: Health(0, STATE_RISK_TRIPPED, 0)}, TIMEOUT + 1), "a dead quoter"
