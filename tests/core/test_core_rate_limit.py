"""RateLimiter: slots freed by acknowledgements, per-second and per-minute windows, the venue's budget for
cancels, duplicate window, cancels first, prefix semantics; and, against a venue that handles messages
late (FIFO, any delay), never more than the venue's limit in any of its windows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fastmm.core.order_tracker import TrackedOrder
from fastmm.core.rate_limit import RateLimiter
from fastmm.core.reconcile import CANCEL, MOVE, NEW
from fastmm.core.types import Side

MS = 1_000_000
S = 1000 * MS
T0 = 10**15


def take(r: RateLimiter, now: int, n: int, prefix: str = "m", cancel: bool = False) -> list[str]:
    """Take up to ``n`` slots at ``now``, naming each message; returns the names of those taken."""
    names = []
    for i in range(n):
        if not r.try_acquire(now, cancel=cancel):
            break
        name = f"{prefix}{r.sent}.{i}"
        r.name((name,))
        names.append(name)
    return names


def test_eight_per_second_then_wait_for_the_window_after_the_acks() -> None:
    r = RateLimiter(8, 300, 500 * MS, guard_ns=0)
    names = take(r, T0, 9)
    assert len(names) == 8
    for n in names:
        r.on_ack(n, T0 + 1 * MS)
    assert not r.try_acquire(T0 + S)                 # acknowledged 1 ms after sending: free 1 s after that
    assert r.try_acquire(T0 + 1 * MS + S)
    assert r.available(T0 + 1 * MS + S) == 7


def test_an_unacknowledged_message_keeps_its_slot_until_the_timeout() -> None:
    r = RateLimiter(2, 300, 0, guard_ns=0, unacked_timeout_ns=5 * S)
    a, b = take(r, T0, 2)
    assert r.available(T0 + 4 * S) == 0              # the venue may not have seen them yet
    r.on_ack(b, T0 + 4 * S)                          # the answer to b: a was handled before it
    assert r.in_flight == 0
    assert r.available(T0 + 5 * S - 1) == 0
    assert r.available(T0 + 5 * S) == 2
    r.on_ack(a, T0 + 5 * S)                          # a's own answer, late: changes nothing
    assert r.available(T0 + 5 * S) == 2
    assert len(take(r, T0 + 6 * S, 2)) == 2
    assert r.available(T0 + 11 * S - 1) == 0         # never answered: held for the timeout
    assert r.available(T0 + 11 * S) == 0            # then released, counted one more window
    assert r.available(T0 + 12 * S) == 2
    r.on_ack("never-sent", T0 + 12 * S)              # an unknown name is ignored
    assert r.available(T0 + 12 * S) == 2


def test_a_new_session_releases_what_the_old_connection_carried() -> None:
    r = RateLimiter(4, 300, 0, guard_ns=0, unacked_timeout_ns=5 * S)
    take(r, T0, 4)
    r.release_in_flight(T0 + 200 * MS)                # logged on again: their answers went to the old one
    assert r.in_flight == 0
    assert r.available(T0 + 200 * MS + S - 1) == 0    # still counted one window from the logon
    assert r.available(T0 + 200 * MS + S) == 4        # not held for the 5 s timeout


def test_cancels_may_use_the_venues_budget_quoting_only_ours() -> None:
    r = RateLimiter(8, 300, 0, guard_ns=0, venue_per_sec=10)
    assert len(take(r, T0, 10)) == 8                  # quoting stops at 8
    assert r.available(T0) == 0 and r.available_for_cancels(T0) == 2
    assert len(take(r, T0, 5, "c", cancel=True)) == 2  # a pull still finds two slots at once
    o = TrackedOrder("x", Side.BUY, 100, 10, 0)
    sent, waiting = r.admit([(CANCEL, o, 1, 100, 10), (NEW, None, 1, 99, 10)], T0)
    assert sent == [] and waiting == 2


def test_admit_gives_a_pull_the_whole_venue_budget() -> None:
    r = RateLimiter(8, 300, 0, guard_ns=0, venue_per_sec=10)
    o = TrackedOrder("x", Side.BUY, 100, 10, 0)
    sent, waiting = r.admit([(CANCEL, o, 1, 100 + i, 10) for i in range(12)], T0)
    assert len(sent) == 10 and waiting == 2
    r2 = RateLimiter(8, 300, 0, guard_ns=0, venue_per_sec=10)
    sent, waiting = r2.admit([(CANCEL, o, 1, 100, 10)] * 3 + [(NEW, None, 1, 90 + i, 10) for i in range(8)], T0)
    assert [it[0] for it in sent] == [CANCEL] * 3 + [NEW] * 5   # the cancels used 3 of the 8 for quoting
    assert waiting == 3


def test_retract_gives_back_what_was_not_sent() -> None:
    r = RateLimiter(4, 300, 0, guard_ns=0)
    o = TrackedOrder("x", Side.BUY, 100, 10, 0)
    sent, _ = r.admit([(NEW, o, 1, 100 + i, 10) for i in range(4)], T0)
    assert len(sent) == 4 and r.available(T0) == 0
    r.retract(3)
    r.name(["only"])
    assert r.available(T0) == 3 and r.sent == 1 and r.in_flight == 1
    r.on_ack("only", T0)
    assert r.in_flight == 0


def test_per_minute_limit() -> None:
    r = RateLimiter(8, 20, 0, guard_ns=0)
    sent = 0
    for i in range(100):                              # 5/s offered for 20 s, each answered at once
        t = T0 + i * 200 * MS
        names = take(r, t, 1)
        for n in names:
            r.on_ack(n, t)
        sent += len(names)
    assert sent == 20
    assert not r.try_acquire(T0 + 59 * S)
    assert r.try_acquire(T0 + 60 * S)


def test_guard_lengthens_the_windows_after_the_ack() -> None:
    r = RateLimiter(8, 300, 0, guard_ns=50 * MS)
    for n in take(r, T0, 8):
        r.on_ack(n, T0)
    assert not r.try_acquire(T0 + S)
    assert not r.try_acquire(T0 + S + 50 * MS - 1)
    assert r.try_acquire(T0 + S + 50 * MS)


def test_clock_going_back_does_not_reopen_a_window() -> None:
    r = RateLimiter(2, 300, 0)
    assert r.try_acquire(T0) and r.try_acquire(T0)
    assert not r.try_acquire(T0 - 10 * S)


def test_preloaded_messages_of_a_previous_run_count_from_when_they_were_sent() -> None:
    r = RateLimiter(4, 300, 0, guard_ns=0)
    r.preload([T0, T0 + 1, T0 + 2])
    assert r.available(T0 + 500 * MS) == 1
    assert r.available(T0 + S + 2) == 4


def test_admit_puts_cancels_first_and_stops_at_the_first_waiting_order() -> None:
    r = RateLimiter(4, 300, 500 * MS)
    o = TrackedOrder("x", Side.BUY, 100, 10, 0)
    plan = [(MOVE, o, 1, 99, 10), (NEW, None, 1, 98, 10), (CANCEL, o, 2, 120, 10), (NEW, None, 2, 121, 10),
            (NEW, None, 1, 97, 10)]
    sent, waiting = r.admit(plan, T0)
    assert [it[0] for it in sent] == [CANCEL, MOVE, NEW, NEW]
    assert [it[3] for it in sent] == [120, 99, 98, 121]
    assert waiting == 1


def test_identical_order_waits_for_the_duplicate_window() -> None:
    r = RateLimiter(8, 300, 500 * MS)
    sent, _ = r.admit([(NEW, None, 1, 100, 10)], T0)
    assert len(sent) == 1
    sent, waiting = r.admit([(NEW, None, 1, 100, 10), (NEW, None, 1, 99, 10)], T0 + 499 * MS)
    assert sent == [] and waiting == 2  # strict prefix: nothing after the waiting order goes either
    sent, waiting = r.admit([(NEW, None, 1, 100, 10)], T0 + 500 * MS)
    assert len(sent) == 1 and waiting == 0
    assert not r.is_duplicate(1, 100, 11, T0 + 500 * MS)  # another size is another order


def test_a_venue_stalled_for_seconds_never_gets_more_than_its_limit_at_once() -> None:
    """What a busy machine did to the old limiter (slots freed a window after sending): messages sent in
    three successive windows reached the venue together after a stall, and it threw out the surplus."""
    r = RateLimiter(8, 300, 0, guard_ns=250 * MS, venue_per_sec=10)
    o = TrackedOrder("x", Side.BUY, 100, 10, 0)
    sent_during_stall: list[str] = []
    for step in range(50):                           # the venue handles nothing for 2.5 s
        t = T0 + step * 50 * MS
        plan = [(NEW, None, 1, 1000 + step * 20 + i, 10) for i in range(4)] + [(CANCEL, o, 2, 0, 0)]
        sent, _ = r.admit(plan, t)
        names = [f"s{step}.{i}" for i in range(len(sent))]
        r.name(names)
        sent_during_stall += names
    assert len(sent_during_stall) == 10, "in flight, unanswered: no more than the venue takes in one go"
    for n in sent_during_stall:                      # the venue handles them all at once, answers each
        r.on_ack(n, T0 + 2500 * MS)
    assert r.available_for_cancels(T0 + 2500 * MS + S + 250 * MS - 1) == 0
    assert r.available_for_cancels(T0 + 2500 * MS + S + 250 * MS) == 10


@settings(max_examples=300, deadline=None)
@given(per_sec=st.integers(1, 10), extra=st.integers(0, 3), per_min=st.integers(1, 40),
       guard=st.sampled_from([0, 50 * MS]),
       steps=st.lists(st.tuples(st.sampled_from([0, 50 * MS, 250 * MS, 400 * MS]),  # to the next attempt
                                st.integers(1, 6),                                 # intents offered
                                st.booleans(),                                     # a pull or quoting
                                st.sampled_from([0, 1 * MS, 600 * MS, 3000 * MS]),  # venue handles it late
                                st.sampled_from([0, 1 * MS, 200 * MS])),           # its answer read late
                      min_size=1, max_size=60))
def test_property_the_venue_never_counts_more_than_its_limit_however_late_it_handles_them(
        per_sec: int, extra: int, per_min: int, guard: int,
        steps: list[tuple[int, int, bool, int, int]]) -> None:
    r = RateLimiter(per_sec, per_min, 0, guard_ns=guard, venue_per_sec=per_sec + extra,
                    venue_per_min=per_min + extra)
    o = TrackedOrder("x", Side.BUY, 100, 10, 0)
    handled: list[int] = []                           # venue times, FIFO: never before an earlier one
    answers: list[tuple[int, str]] = []               # (when we read the answer, name)
    t = T0
    for n, (gap, batch, pull, late, read_late) in enumerate(steps):
        t += gap
        for when, name in sorted(a for a in answers if a[0] <= t):
            r.on_ack(name, when)
        answers = [a for a in answers if a[0] > t]
        plan = [(CANCEL, o, 1, 0, 0) if pull else (NEW, None, 1, 100 + n * 10 + j, 10) for j in range(batch)]
        sent, waiting = r.admit(plan, t)
        assert len(sent) + waiting == len(plan)
        names = [f"{n}.{j}" for j in range(len(sent))]
        r.name(names)
        for name in names:
            v = max(t + late, handled[-1] if handled else 0)
            handled.append(v)
            answers.append((v + read_late, name))
    for i, v in enumerate(handled):
        in_sec = sum(1 for x in handled[: i + 1] if x > v - S)
        in_min = sum(1 for x in handled[: i + 1] if x > v - 60 * S)
        assert in_sec <= per_sec + extra and in_min <= per_min + extra
    assert r.sent == len(handled)
