"""RateLimiter: per-second and per-minute windows, duplicate window, cancels first, prefix semantics."""

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


def test_eight_per_second_then_wait_for_the_window() -> None:
    r = RateLimiter(8, 300, 500 * MS, guard_ns=0)
    assert [r.try_acquire(T0) for _ in range(9)] == [True] * 8 + [False]
    assert not r.try_acquire(T0 + S - 1)
    assert r.try_acquire(T0 + S)  # the first eight left the window (now - 1 s, now]
    assert r.available(T0 + S) == 7


def test_per_minute_limit() -> None:
    r = RateLimiter(8, 20, 0, guard_ns=0)
    sent = sum(r.try_acquire(T0 + i * 200 * MS) for i in range(100))  # 5/s offered for 20 s
    assert sent == 20
    assert not r.try_acquire(T0 + 59 * S)
    assert r.try_acquire(T0 + 60 * S)


def test_guard_lengthens_the_windows_against_jitter() -> None:
    r = RateLimiter(8, 300, 0, guard_ns=50 * MS)
    assert sum(r.try_acquire(T0) for _ in range(8)) == 8
    assert not r.try_acquire(T0 + S)  # sent 1 s apart, they could arrive within one venue second
    assert not r.try_acquire(T0 + S + 50 * MS - 1)
    assert r.try_acquire(T0 + S + 50 * MS)


def test_clock_going_back_does_not_reopen_a_window() -> None:
    r = RateLimiter(2, 300, 0)
    assert r.try_acquire(T0) and r.try_acquire(T0)
    assert not r.try_acquire(T0 - 10 * S)


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


@settings(max_examples=200, deadline=None)
@given(per_sec=st.integers(1, 10), per_min=st.integers(1, 40), guard=st.sampled_from([0, 50 * MS]),
       gaps=st.lists(st.integers(0, 400 * MS), min_size=1, max_size=200),
       batch=st.lists(st.integers(1, 6), min_size=200, max_size=200))
def test_property_never_exceeds_the_rate_in_any_window(per_sec: int, per_min: int, guard: int,
                                                        gaps: list[int], batch: list[int]) -> None:
    r = RateLimiter(per_sec, per_min, 0, guard_ns=guard)
    o = TrackedOrder("x", Side.BUY, 100, 10, 0)
    times: list[int] = []
    t = T0
    for i, gap in enumerate(gaps):
        t += gap
        plan = [(CANCEL if j % 2 else NEW, o, 1, 100 + j, 10) for j in range(batch[i])]
        sent, waiting = r.admit(plan, t)
        assert len(sent) + waiting == len(plan)
        times.extend([t] * len(sent))
    # every window (s - W - guard, s] ending at a send holds at most the limit
    for i, s in enumerate(times):
        in_sec = sum(1 for x in times[: i + 1] if x > s - S - guard)
        in_min = sum(1 for x in times[: i + 1] if x > s - 60 * S - guard)
        assert in_sec <= per_sec and in_min <= per_min
    assert r.sent == len(times)
