"""Our own order-message throttle, under TrueX's (10/s, 300/min, no identical order within 500 ms).

Every message counts (new, cancel, replace). A message may go at ``now`` when fewer than the limit were
sent in each sliding window (now - W, now]; so no window of length W ever holds more than the limit.
The windows are ``guard_ns`` longer than the venue's (1 s, 60 s): the venue counts arrivals, and jitter
on the way can squeeze messages sent a window apart into one venue window; with the guard, messages
sent within any W + guard stay under the limit, so arrivals jittered by less than the guard do too.
An identical order (side, price, quantity) within the duplicate window waits.

:meth:`RateLimiter.admit` takes a plan in the order the reconciler made it safe to send and returns
what may go now: every cancel that fits first (cancels only ever reduce risk), then the other actions
as a strict prefix, stopping at the first that must wait, since later moves rely on earlier ones (see
:mod:`fastmm.core.reconcile`). What waits is recomputed by the next reconcile, not queued.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from fastmm.core.reconcile import CANCEL, Intent

_SEC = 1_000_000_000
_MIN = 60 * _SEC


class RateLimiter:
    __slots__ = ("_dup", "_dup_ns", "_last_ns", "_min", "_per_min", "_per_sec", "_sec", "_w_min", "_w_sec",
                 "sent")

    def __init__(self, per_sec: int = 8, per_min: int = 300, duplicate_window_ns: int = 500_000_000,
                 guard_ns: int = 50_000_000) -> None:
        if per_sec < 1 or per_min < 1 or guard_ns < 0:
            raise ValueError("rate limits must be at least one message, the guard not negative")
        self._w_sec = _SEC + guard_ns
        self._w_min = _MIN + guard_ns
        self._per_sec = per_sec
        self._per_min = per_min
        self._dup_ns = duplicate_window_ns
        self._sec: deque[int] = deque()
        self._min: deque[int] = deque()
        self._dup: dict[tuple[int, int, int], int] = {}
        self._last_ns = 0
        self.sent = 0

    def _now(self, now_ns: int) -> int:
        # a clock that steps back must not reopen a window: time here never goes backwards
        if now_ns < self._last_ns:
            return self._last_ns
        self._last_ns = now_ns
        return now_ns

    def preload(self, sent_ns: list[int]) -> None:
        """Messages a previous run sent (its journal, on this clock): a restarted process must count
        them, or its first burst and theirs together go over the venue's window."""
        for t in sorted(sent_ns):
            self._sec.append(t)
            self._min.append(t)
            if t > self._last_ns:
                self._last_ns = t

    def available(self, now_ns: int) -> int:
        """How many messages may go at ``now_ns``."""
        # runs on every price event: _now() and min() inlined
        now = self._last_ns
        if now_ns > now:
            self._last_ns = now = now_ns
        sec = self._sec
        edge = now - self._w_sec
        while sec and sec[0] <= edge:
            sec.popleft()
        mn = self._min
        edge = now - self._w_min
        while mn and mn[0] <= edge:
            mn.popleft()
        a = self._per_sec - len(sec)
        b = self._per_min - len(mn)
        return a if a < b else b

    def try_acquire(self, now_ns: int) -> bool:
        """Take one message slot if one is free."""
        if self.available(now_ns) <= 0:
            return False
        now = self._last_ns
        self._sec.append(now)
        self._min.append(now)
        self.sent += 1
        return True

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

    def admit(self, plan: Sequence[Intent], now_ns: int,
              budget: int | None = None) -> tuple[list[Intent], int]:
        """(intents that may be sent now, in order; how many wait). ``budget`` is :meth:`available` at
        ``now_ns`` when the caller has just asked for it (saves asking twice on the hot path)."""
        if not plan:
            return [], 0
        if budget is None or now_ns != self._last_ns:
            budget = self.available(now_ns)
        if budget <= 0:
            return [], len(plan)
        now = self._last_ns
        cancels = [it for it in plan if it[0] == CANCEL]
        if cancels:
            out = cancels[:budget]
            budget -= len(out)
            waiting = len(cancels) - len(out)
            others = [it for it in plan if it[0] != CANCEL]
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
        sent = len(out)
        self._sec.extend([now] * sent)
        self._min.extend([now] * sent)
        self.sent += sent
        return out, waiting
