"""The WebSocket feeds publish one top per burst of frames already read (fastmm.venues.ws_feed)."""

from __future__ import annotations

from fastmm.venues.events import Resubscribe, TopChanged
from fastmm.venues.ws_feed import conflate_tops, queued_frames


def _top(seq: int) -> TopChanged:
    return TopChanged(seq * 10, seq * 100, seq)


def test_a_lone_frame_publishes_at_once() -> None:
    events, held = conflate_tops([_top(1)], None, 0)
    assert events == [_top(1)] and held is None


def test_a_burst_publishes_its_newest_top_once_on_its_last_frame() -> None:
    trade = object()
    events, held = conflate_tops([_top(1)], None, 2)
    assert events == [] and held == _top(1)
    events, held = conflate_tops([_top(2)], held, 1)
    assert events == [] and held == _top(2)
    events, held = conflate_tops([trade], held, 0)          # the last frame changed no top: it carries it
    assert events == [trade, _top(2)] and held is None


def test_other_events_pass_at_once_and_a_resubscription_drops_the_held_top() -> None:
    r = Resubscribe("sequence gap")
    events, held = conflate_tops([_top(1)], None, 3)
    events, held = conflate_tops([r], held, 2)
    assert events == [r] and held is None
    events, held = conflate_tops([], held, 0)
    assert events == [] and held is None


def test_without_the_assemblers_queue_nothing_is_held() -> None:
    class Ws:
        pass

    assert queued_frames(Ws())() == 0

    class Queue:
        def __len__(self) -> int:
            return 4

    class Assembler:
        frames = Queue()

    ws = Ws()
    ws.recv_messages = Assembler()  # type: ignore[attr-defined]
    assert queued_frames(ws)() == 4
