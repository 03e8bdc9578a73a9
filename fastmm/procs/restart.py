"""When to restart a dead process (sans-I/O): exponential backoff with a cap, reset after a good run.

A process that dies right after starting is restarted after 0.2 s, then 0.4, 0.8 ... up to the cap;
one that ran for ``stable_after_ns`` counts as healthy again and starts from the short delay. This is
what keeps a crash loop (bad credentials, a venue down) from spinning a CPU while still bringing a
feed back within a second after a one-off crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RestartPolicy:
    first_delay_ns: int = 200_000_000
    max_delay_ns: int = 10_000_000_000
    stable_after_ns: int = 30_000_000_000
    _delay: dict[str, int] = field(default_factory=dict)
    _started: dict[str, int] = field(default_factory=dict)
    _due: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def started(self, name: str, now_ns: int) -> None:
        self._started[name] = now_ns
        self._due.pop(name, None)

    def exited(self, name: str, now_ns: int) -> int:
        """Record a death; returns when the restart is due."""
        ran = now_ns - self._started.get(name, now_ns)
        delay = self._delay.get(name, 0)
        delay = self.first_delay_ns if (delay == 0 or ran >= self.stable_after_ns) else min(
            delay * 2, self.max_delay_ns)
        self._delay[name] = delay
        self._due[name] = now_ns + delay
        self.restarts[name] = self.restarts.get(name, 0) + 1
        return now_ns + delay

    def due(self, now_ns: int) -> list[str]:
        return sorted(n for n, t in self._due.items() if t <= now_ns)

    def pending(self) -> dict[str, int]:
        return dict(self._due)

    def cancel(self, name: str) -> None:
        self._due.pop(name, None)
