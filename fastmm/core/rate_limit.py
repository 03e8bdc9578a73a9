"""Our own order-message throttle, under TrueX's (10/s, 300/min, no identical order within 500 ms).

Every message counts (new, cancel, replace). The venue counts a message when it handles it, which may be
long after we wrote it (a busy machine, a slow link, a stalled gateway): messages sent a window apart can
reach it together. So a message's slot is not freed by the clock since it was sent but by its
acknowledgement: any report naming its ClOrdID (ack, fill, reject, cancel, throttle reject) proves the
venue handled it, and everything sent before it on the same FIFO session, no later than we read that
report. A message occupies its slot from the send until ``W + guard`` after its acknowledgement (W = 1 s
and 60 s); a message never acknowledged keeps it for ``unacked_timeout_ns``, then for another window.
Any window of the venue's therefore holds at most the limit, however late the messages arrive.

Two budgets share the windows: new orders and replaces may use ``per_sec`` (our quoting budget, under the
venue's), cancels up to ``venue_per_sec`` (the venue's own limit): quoting can never take the last slots,
so a cancel (a stale reference, a stop, a kill switch) always finds one, and a ladder is pulled at the
venue's pace, not ours.

:meth:`RateLimiter.admit` takes a plan in the order the reconciler made it safe to send and returns
what may go now: every cancel that fits first (cancels only ever reduce risk), then the other actions
as a strict prefix, stopping at the first that must wait, since later moves rely on earlier ones (see
:mod:`fastmm.core.reconcile`). What waits is recomputed by the next reconcile, not queued. The caller
names what it sent (:meth:`RateLimiter.name`) so the acknowledgement (:meth:`RateLimiter.on_ack`) finds it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from fastmm.core.reconcile import CANCEL, Intent

_SEC = 1_000_000_000
_MIN = 60 * _SEC


class RateLimiter:
    __slots__ = ("_acked", "_dup", "_dup_ns", "_flight", "_ids", "_last_ns", "_min", "_per_min", "_per_sec",
                 "_sec", "_timeout_ns", "_v_min", "_v_sec", "_w_min", "_w_sec", "sent")

    def __init__(self, per_sec: int = 8, per_min: int = 300, duplicate_window_ns: int = 500_000_000,
                 guard_ns: int = 50_000_000, *, venue_per_sec: int | None = None,
                 venue_per_min: int | None = None, unacked_timeout_ns: int = 5 * _SEC) -> None:
        if per_sec < 1 or per_min < 1 or guard_ns < 0 or unacked_timeout_ns < 0:
            raise ValueError("rate limits must be at least one message, the guard and timeout not negative")
        # cancels get at least our own budget (a lifted limit, as in a rehearsal or a benchmark, lifts both)
        v_sec = max(per_sec, venue_per_sec or 0)
        v_min = max(per_min, venue_per_min or 0)
        self._w_sec = _SEC + guard_ns
        self._w_min = _MIN + guard_ns
        self._per_sec = per_sec
        self._per_min = per_min
        self._v_sec = v_sec
        self._v_min = v_min
        self._timeout_ns = unacked_timeout_ns
        self._dup_ns = duplicate_window_ns
        # in flight: [sent ns, message number] per message not yet acknowledged, in send order
        self._flight: deque[tuple[int, int]] = deque()
        self._ids: dict[str, int] = {}        # ClOrdID -> message number, while in flight
        self._acked = 0                       # every message up to this number is acknowledged
        # acknowledged: the time each was released, in send order (non-decreasing)
        self._sec: deque[int] = deque()
        self._min: deque[int] = deque()
        self._dup: dict[tuple[int, int, int], int] = {}
        self._last_ns = 0
        self.sent = 0

    def preload(self, sent_ns: list[int]) -> None:
        """Messages a previous run sent (its journal, on this clock): a restarted process must count
        them, or its first burst and theirs together go over the venue's window. Their answers went to
        the dead process: each counts as acknowledged when it was sent."""
        for t in sorted(sent_ns):
            self._sec.append(t)
            self._min.append(t)
            if t > self._last_ns:
                self._last_ns = t

    # -- counting ---------------------------------------------------------------------------------
    def _used(self, now_ns: int) -> tuple[int, int]:
        """(messages in the 1 s window, in the 60 s window) at ``now_ns``: in flight, or released within
        the window. ``now_ns`` is clamped so a clock that steps back never reopens a window."""
        now = self._last_ns
        if now_ns > now:
            self._last_ns = now = now_ns
        flight = self._flight
        if flight and flight[0][0] <= now - self._timeout_ns:
            # never acknowledged (lost with a connection, or the venue stays silent): released now, so it
            # still counts for one more window
            while flight and flight[0][0] <= now - self._timeout_ns:
                self._acked = flight.popleft()[1]
                self._sec.append(now)
                self._min.append(now)
        sec = self._sec
        edge = now - self._w_sec
        while sec and sec[0] <= edge:
            sec.popleft()
        mn = self._min
        edge = now - self._w_min
        while mn and mn[0] <= edge:
            mn.popleft()
        n = len(flight)
        return n + len(sec), n + len(mn)

    def available(self, now_ns: int) -> int:
        """How many new orders or replaces may go at ``now_ns``."""
        s, m = self._used(now_ns)
        a = self._per_sec - s
        b = self._per_min - m
        return a if a < b else b

    def available_for_cancels(self, now_ns: int) -> int:
        """How many cancels may go at ``now_ns`` (the venue's own budget)."""
        s, m = self._used(now_ns)
        a = self._v_sec - s
        b = self._v_min - m
        return a if a < b else b

    def _record(self, n: int) -> None:
        now = self._last_ns
        first = self.sent + 1
        self._flight.extend([(now, k) for k in range(first, first + n)])
        self.sent += n

    def try_acquire(self, now_ns: int, cancel: bool = False) -> bool:
        """Take one message slot if one is free (``cancel``: from the venue's budget)."""
        if (self.available_for_cancels(now_ns) if cancel else self.available(now_ns)) <= 0:
            return False
        self._record(1)
        return True

    # -- acknowledgements -------------------------------------------------------------------------
    def name(self, cl_ord_ids: Sequence[str]) -> None:
        """The last ``len(cl_ord_ids)`` messages taken were sent with these ClOrdIDs, in order."""
        ids = self._ids
        k = self.sent - len(cl_ord_ids)
        for cl in cl_ord_ids:
            k += 1
            ids[cl] = k
        if len(ids) > 1024 + 2 * len(self._flight):
            self._forget_released()

    def retract(self, n: int) -> None:
        """The last ``n`` messages taken were not sent after all (held back after admission)."""
        flight = self._flight
        for _ in range(min(n, len(flight))):
            flight.pop()
            self.sent -= 1

    def on_ack(self, cl_ord_id: str, now_ns: int) -> None:
        """A report naming ``cl_ord_id`` arrived: the venue has handled that message and every one sent
        before it. Their slots free one window (plus guard) from now."""
        k = self._ids.pop(cl_ord_id, None)
        if k is None or k <= self._acked:
            return
        now = self._last_ns
        if now_ns > now:
            self._last_ns = now = now_ns
        flight, sec, mn = self._flight, self._sec, self._min
        while flight and flight[0][1] <= k:
            flight.popleft()
            sec.append(now)
            mn.append(now)
        self._acked = k
        if len(self._ids) > 1024 + 2 * len(flight):
            self._forget_released()

    def _forget_released(self) -> None:
        """Drop the names of messages no longer in flight (released by a later ack or the timeout: their
        own answer never came), so the names stay bounded by what is in flight."""
        acked = self._acked
        ids = self._ids
        for cl in [cl for cl, n in ids.items() if n <= acked]:
            del ids[cl]

    def release_in_flight(self, now_ns: int) -> None:
        """A new order-entry session is up: what the old connection carried was handled or lost before
        it, so every message still in flight counts as acknowledged now (one more window, no timeout)."""
        flight = self._flight
        if flight:
            self._acked = flight[-1][1]
            now = max(now_ns, self._last_ns)
            self._sec.extend([now] * len(flight))
            self._min.extend([now] * len(flight))
            flight.clear()

    @property
    def in_flight(self) -> int:
        """Messages sent and not acknowledged yet."""
        return len(self._flight)

    # -- duplicates -------------------------------------------------------------------------------
    def is_duplicate(self, side: int, price_ticks: int, qty_lots: int, now_ns: int) -> bool:
        t = self._dup.get((side, price_ticks, qty_lots))
        return t is not None and now_ns - t < self._dup_ns

    def note_order(self, side: int, price_ticks: int, qty_lots: int, now_ns: int) -> None:
        dup = self._dup
        dup[(side, price_ticks, qty_lots)] = now_ns
        if len(dup) > 512:
            edge = now_ns - self._dup_ns
            for k in [k for k, t in dup.items() if t <= edge]:
                del dup[k]

    # -- plans ------------------------------------------------------------------------------------
    def admit(self, plan: Sequence[Intent], now_ns: int) -> tuple[list[Intent], int]:
        """(intents that may be sent now, in order; how many wait), taken as sent: :meth:`retract` what
        is held back after all, :meth:`name` the rest."""
        if not plan:
            return [], 0
        s, m = self._used(now_ns)
        a, b = self._per_sec - s, self._per_min - m
        budget = a if a < b else b
        now = self._last_ns
        cancels = [it for it in plan if it[0] == CANCEL]
        if cancels:
            a, b = self._v_sec - s, self._v_min - m
            c_budget = a if a < b else b
            out = cancels[:c_budget] if c_budget > 0 else []
            budget -= len(out)
            waiting = len(cancels) - len(out)
            others: Sequence[Intent] = [it for it in plan if it[0] != CANCEL]
        else:
            out = []
            waiting = 0
            others = plan
        dup = self._dup
        edge = now - self._dup_ns
        for n, it in enumerate(others):
            key = (it[2], it[3], it[4])
            t = dup.get(key)
            if budget <= 0 or (t is not None and t > edge):
                waiting += len(others) - n
                break
            dup[key] = now
            out.append(it)
            budget -= 1
        if len(dup) > 512:
            for k in [k for k, t in dup.items() if t <= edge]:
                del dup[k]
        self._record(len(out))
        return out, waiting
