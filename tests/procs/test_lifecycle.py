"""Start and stop sequences of the engine as a transition table."""

from __future__ import annotations

import pytest

from fastmm.procs.lifecycle import (
    FeedFresh,
    FeedStale,
    Lifecycle,
    LifecycleError,
    MarketDataDown,
    MarketDataUp,
    OrderEntryDown,
    OrderEntryUp,
    Phase,
    QuotingStarted,
    StepDone,
    StepTimeouts,
    StopRequested,
    StopStep,
)

S = 1_000_000_000


def names(cmds: list) -> list[str]:
    return [c.name for c in cmds]


def quoting() -> Lifecycle:
    lc = Lifecycle(frozenset({"coinbase", "kraken"}))
    lc.handle(FeedFresh("coinbase"), 0)
    lc.handle(OrderEntryUp(), 0)
    lc.handle(MarketDataUp(), 0)
    lc.handle(QuotingStarted(), 0)
    assert lc.phase == Phase.QUOTING
    return lc


def test_start_sequence_in_order() -> None:
    lc = Lifecycle(frozenset({"coinbase", "kraken"}))
    assert lc.phase == Phase.STARTING
    assert lc.handle(OrderEntryUp(), 0) == [] and lc.phase == Phase.STARTING  # feeds first
    assert lc.handle(FeedFresh("kraken"), 0) == []
    assert lc.phase == Phase.OE_LOGGED_ON
    assert names(lc.handle(MarketDataUp(), 0)) == ["start_quoting"]
    assert lc.phase == Phase.MD_SUBSCRIBED
    assert lc.handle(QuotingStarted(), 0) == [] and lc.phase == Phase.QUOTING


def test_phases_step_through_each_precondition() -> None:
    lc = Lifecycle(frozenset({"coinbase"}))
    seen = [lc.phase]
    for ev in (FeedFresh("coinbase"), OrderEntryUp(), MarketDataUp(), QuotingStarted()):
        lc.handle(ev, 0)
        seen.append(lc.phase)
    assert seen == [Phase.STARTING, Phase.FEEDS_UP, Phase.OE_LOGGED_ON, Phase.MD_SUBSCRIBED, Phase.QUOTING]


def test_one_fresh_feed_is_enough_and_losing_all_pulls_quotes() -> None:
    lc = quoting()
    assert lc.handle(FeedFresh("kraken"), 0) == []
    assert lc.handle(FeedStale("coinbase"), 0) == [] and lc.phase == Phase.QUOTING
    cmds = lc.handle(FeedStale("kraken"), 0)
    assert names(cmds) == ["pull_quotes"] and cmds[0].detail == "no fresh reference feed"
    assert lc.phase == Phase.STARTING
    lc.handle(FeedFresh("coinbase"), 0)
    assert names(lc.handle(MarketDataUp(), 0)) == []  # already up: start_quoting came with the feed
    assert lc.phase == Phase.MD_SUBSCRIBED


def test_order_entry_loss_pulls_quotes() -> None:
    lc = quoting()
    cmds = lc.handle(OrderEntryDown(), 0)
    assert names(cmds) == ["pull_quotes"] and cmds[0].detail == "order-entry session down"
    assert lc.phase == Phase.FEEDS_UP
    assert names(lc.handle(OrderEntryUp(), 0)) == ["start_quoting"]
    assert names(quoting().handle(MarketDataDown(), 0)) == ["pull_quotes"]


def test_stop_sequence_with_confirmations() -> None:
    lc = quoting()
    assert names(lc.handle(StopRequested("SIGTERM"), 10)) == ["pull_quotes", "cancel_all"]
    assert lc.phase == Phase.STOPPING and lc.step == StopStep.CANCEL_QUOTES
    assert lc.handle(StopRequested("again"), 11) == []  # a second signal changes nothing
    assert names(lc.handle(StepDone(StopStep.CANCEL_QUOTES), 12)) == ["hedge_flat"]
    assert lc.handle(StepDone(StopStep.REPORT), 12) == []  # not the current step: ignored
    assert names(lc.handle(StepDone(StopStep.HEDGE), 13)) == ["logout"]
    assert names(lc.handle(StepDone(StopStep.LOGOUT), 14)) == ["write_report"]
    assert names(lc.handle(StepDone(StopStep.REPORT), 15)) == ["unlink_segments"]
    assert lc.handle(StepDone(StopStep.UNLINK), 16) == []
    assert lc.phase == Phase.STOPPED and lc.stop_reason == "SIGTERM" and lc.timed_out == []


def test_stop_step_timeouts_are_recorded_and_the_stop_still_ends() -> None:
    lc = Lifecycle(frozenset({"coinbase"}), StepTimeouts(1 * S, 1 * S, 1 * S, 1 * S, 1 * S),
                   hedge_on_stop=False)
    lc.handle(StopRequested("kill switch"), 0)
    assert lc.on_timer(S - 1) == []
    cmds = lc.on_timer(S)
    assert names(cmds) == ["step_timed_out", "logout"] and cmds[0].detail == "CANCEL_QUOTES"
    t = S
    while lc.phase != Phase.STOPPED:
        t += S
        lc.on_timer(t)
    assert lc.timed_out == [StopStep.CANCEL_QUOTES, StopStep.LOGOUT, StopStep.REPORT, StopStep.UNLINK]


def test_bad_events_are_errors() -> None:
    with pytest.raises(LifecycleError):
        Lifecycle(frozenset())
    lc = Lifecycle(frozenset({"coinbase"}))
    with pytest.raises(LifecycleError, match="unknown feed"):
        lc.handle(FeedFresh("gemini"), 0)
    with pytest.raises(LifecycleError, match="StepDone"):
        lc.handle(StepDone(StopStep.HEDGE), 0)
