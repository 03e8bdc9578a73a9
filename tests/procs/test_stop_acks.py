"""Which acknowledgements finish a stop step, with no process: ids, dead children, the hedge ring."""

from __future__ import annotations

from fastmm.procs.lifecycle import StopStep
from fastmm.procs.plan import FEED_TRUEX_MD, HEDGER, PROCESSES, QUOTER
from fastmm.procs.stop_acks import StopAcks


def test_cancel_step_done_when_the_quoter_acks_this_command() -> None:
    acks = StopAcks()
    acks.sent("cancel_all", 7, PROCESSES)
    assert acks.awaiting == {QUOTER: 7}
    assert acks.update({QUOTER: 6}, (), True) is None, "an older command's ack"
    assert acks.update({QUOTER: None}, (), True) is None, "no record"
    assert acks.update({QUOTER: 7}, (), True) == StopStep.CANCEL_QUOTES


def test_only_processes_of_the_instance_are_awaited() -> None:
    acks = StopAcks()
    acks.sent("logout", 3, (QUOTER,))
    assert acks.awaiting == {QUOTER: 3}
    assert acks.update({QUOTER: 3}, (), True) == StopStep.LOGOUT


def test_logout_waits_for_every_acker_and_the_booked_hedge_ring() -> None:
    acks = StopAcks()
    acks.sent("logout", 9, PROCESSES)
    assert set(acks.awaiting) == {QUOTER, FEED_TRUEX_MD, HEDGER}
    assert acks.update({QUOTER: 9, FEED_TRUEX_MD: 9}, (), True) is None
    assert acks.update({HEDGER: 9}, (), False) is None, "hedge fills not yet booked by the quoter"
    assert acks.awaiting == {}
    assert acks.update({}, (), True) == StopStep.LOGOUT


def test_a_dead_hedger_is_let_off_at_logout_but_not_at_the_hedge_step() -> None:
    acks = StopAcks()
    acks.sent("hedge_flat", 4, PROCESSES)
    assert acks.update({HEDGER: None}, {HEDGER}, True) is None
    acks.sent("logout", 5, PROCESSES)
    assert acks.update({QUOTER: 5, FEED_TRUEX_MD: 5, HEDGER: None}, {HEDGER}, True) == StopStep.LOGOUT


def test_a_dead_quoters_clean_up_confirms_the_cancel_step_only() -> None:
    acks = StopAcks()
    acks.sent("logout", 2, PROCESSES)
    assert not acks.cleaned_up(QUOTER)
    acks.sent("cancel_all", 3, PROCESSES)
    assert acks.cleaned_up(QUOTER)
    assert acks.update({}, {QUOTER}, True) == StopStep.CANCEL_QUOTES


def test_commands_without_ackers_finish_nothing() -> None:
    acks = StopAcks()
    acks.sent("pull_quotes", 1, PROCESSES)
    assert acks.awaiting == {} and acks.update({}, (), True) is None
