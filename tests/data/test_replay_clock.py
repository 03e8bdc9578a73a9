"""Replay timing and the look-ahead cursor shared by the simulators."""

from __future__ import annotations

import pytest

from fastmm.data.replay import Cursor, ReplayClock
from fastmm.units import DataError


def test_replay_cursor_stops_cleanly_on_bad_data() -> None:
    def events():  # type: ignore[no-untyped-def]
        yield 1
        yield 2
        raise DataError("line 3: broken")
    c = Cursor(events())
    assert [c.pop(), c.pop()] == [1, 2]
    assert c.exhausted and c.peek() is None and str(c.error) == "line 3: broken"
    clock = ReplayClock(2.0)
    assert clock.wall_at(5) is None and clock.data_now(0) == float("-inf")
    clock.start(100, 1000)
    assert clock.data_now(150) == 1100 and clock.wall_at(1100) == 150
    with pytest.raises(ValueError):
        ReplayClock(-1.0)
    assert ReplayClock(0).max_speed and ReplayClock(float("inf")).max_speed
