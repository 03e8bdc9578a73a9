"""Reconnect delays: exponential with seeded jitter, one policy for every connection that retries (the
FIX initiator, the WebSocket feeds).

Why seeded: a test (or an incident replay) sees the same delays every run; jitter spreads the reconnects
of many engines after a venue outage so they do not all arrive in the same instant.
"""

from __future__ import annotations

import random


class Backoff:
    """``initial_s x factor^n`` capped at ``max_s``, times a factor in [1 - jitter, 1 + jitter]."""

    __slots__ = ("_n", "_rng", "factor", "initial_s", "jitter", "max_s")

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, factor: float = 2.0, jitter: float = 0.2,
                 seed: int | None = None) -> None:
        if initial_s <= 0 or max_s < initial_s or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("need 0 < initial_s <= max_s, factor >= 1, 0 <= jitter < 1")
        self.initial_s, self.max_s, self.factor, self.jitter = initial_s, max_s, factor, jitter
        self._rng = random.Random(seed)
        self._n = 0

    def next_delay(self) -> float:
        base = min(self.max_s, self.initial_s * self.factor ** min(self._n, 64))
        self._n += 1
        return base * (1.0 + self.jitter * (2.0 * self._rng.random() - 1.0))

    def reset(self) -> None:
        self._n = 0
