"""The engine's start and stop sequences as one transition table (sans-I/O).

The supervisor feeds this machine what it observes (feeds fresh or stale, the order-entry session
logged on, market data subscribed, quotes confirmed canceled, hedge done, sessions logged out, report
written) and a clock tick; the machine answers with the phase and the commands to issue. All that
decides the phase lives in this file (h11's rule 1); the supervisor only carries the commands out.

Start: ``STARTING -> FEEDS_UP -> OE_LOGGED_ON -> MD_SUBSCRIBED -> QUOTING`` (the last step when the
quoter confirms the ``start_quoting`` command).
Stop (SIGINT, SIGTERM, ``fastmm stop`` or a kill-switch trip, from any phase):
``STOPPING`` walks the steps ``CANCEL_QUOTES -> HEDGE -> LOGOUT -> REPORT -> UNLINK`` and ends in
``STOPPED``. Each step waits for its confirmation or its timeout; a timed-out step is recorded (the
operator must see that a cancel was never confirmed) and the sequence goes on, so a stop always ends.
While quoting, losing every fresh reference feed (or the order-entry session) sends the engine back to
an earlier phase, which pulls the quotes, rather than stopping it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Phase(IntEnum):
    """The phase published in the control segment; values are stable (they are in shared memory)."""

    STARTING = 0
    FEEDS_UP = 1
    OE_LOGGED_ON = 2
    MD_SUBSCRIBED = 3
    QUOTING = 4
    STOPPING = 5
    STOPPED = 6


class StopStep(IntEnum):
    NONE = 0
    CANCEL_QUOTES = 1
    HEDGE = 2
    LOGOUT = 3
    REPORT = 4
    UNLINK = 5
    DONE = 6


# -- events the supervisor observes ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FeedFresh:
    source: str


@dataclass(frozen=True, slots=True)
class FeedStale:
    source: str


@dataclass(frozen=True, slots=True)
class OrderEntryUp:
    pass


@dataclass(frozen=True, slots=True)
class OrderEntryDown:
    pass


@dataclass(frozen=True, slots=True)
class MarketDataUp:
    pass


@dataclass(frozen=True, slots=True)
class MarketDataDown:
    pass


@dataclass(frozen=True, slots=True)
class QuotingStarted:
    """The quoter confirms it has begun quoting (after ``start_quoting``)."""


@dataclass(frozen=True, slots=True)
class StopRequested:
    reason: str


@dataclass(frozen=True, slots=True)
class StepDone:
    """Confirmation of the current stop step (e.g. every cancel confirmed, position hedged)."""

    step: StopStep


Event = (FeedFresh | FeedStale | OrderEntryUp | OrderEntryDown | MarketDataUp | MarketDataDown
         | QuotingStarted | StopRequested | StepDone)


# -- commands the supervisor carries out -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Command:
    """``name`` is one of: start_quoting, pull_quotes, cancel_all, hedge_flat, logout, write_report,
    unlink_segments; ``detail`` says why (for the journal and the log)."""

    name: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StepTimeouts:
    cancel_quotes_ns: int = 5_000_000_000
    hedge_ns: int = 30_000_000_000
    logout_ns: int = 5_000_000_000
    report_ns: int = 5_000_000_000
    unlink_ns: int = 1_000_000_000


_STEP_COMMAND = {
    StopStep.CANCEL_QUOTES: "cancel_all",
    StopStep.HEDGE: "hedge_flat",
    StopStep.LOGOUT: "logout",
    StopStep.REPORT: "write_report",
    StopStep.UNLINK: "unlink_segments",
}


class LifecycleError(RuntimeError):
    pass


@dataclass
class Lifecycle:
    """The machine. ``required_feeds`` are the reference sources configured; one fresh is enough."""

    required_feeds: frozenset[str]
    timeouts: StepTimeouts = field(default_factory=StepTimeouts)
    hedge_on_stop: bool = True
    phase: Phase = Phase.STARTING
    step: StopStep = StopStep.NONE
    stop_reason: str = ""
    timed_out: list[StopStep] = field(default_factory=list)
    _fresh: set[str] = field(default_factory=set)
    _oe_up: bool = False
    _md_up: bool = False
    _step_deadline: int = 0

    def __post_init__(self) -> None:
        if not self.required_feeds:
            raise LifecycleError("at least one reference feed must be configured")

    @property
    def fresh_feeds(self) -> frozenset[str]:
        return frozenset(self._fresh)

    def handle(self, ev: Event, now_ns: int) -> list[Command]:
        if isinstance(ev, StopRequested):
            return self._stop(ev.reason, now_ns)
        if self.phase >= Phase.STOPPING:
            if isinstance(ev, StepDone) and ev.step == self.step:
                return self._next_step(now_ns)
            self._observe(ev)
            return []
        if isinstance(ev, StepDone):
            raise LifecycleError(f"StepDone({ev.step.name}) while {self.phase.name}")
        self._observe(ev)
        return self._advance(ev)

    def on_timer(self, now_ns: int) -> list[Command]:
        if self.phase == Phase.STOPPING and now_ns >= self._step_deadline:
            self.timed_out.append(self.step)
            return [Command("step_timed_out", self.step.name), *self._next_step(now_ns)]
        return []

    # -- internals --------------------------------------------------------------------------------
    def _observe(self, ev: Event) -> None:
        if isinstance(ev, FeedFresh):
            if ev.source not in self.required_feeds:
                raise LifecycleError(f"unknown feed {ev.source!r}")
            self._fresh.add(ev.source)
        elif isinstance(ev, FeedStale):
            self._fresh.discard(ev.source)
        elif isinstance(ev, OrderEntryUp):
            self._oe_up = True
        elif isinstance(ev, OrderEntryDown):
            self._oe_up = False
        elif isinstance(ev, MarketDataUp):
            self._md_up = True
        elif isinstance(ev, MarketDataDown):
            self._md_up = False

    def _target(self) -> Phase:
        if not self._fresh:
            return Phase.STARTING
        if not self._oe_up:
            return Phase.FEEDS_UP
        if not self._md_up:
            return Phase.OE_LOGGED_ON
        return Phase.MD_SUBSCRIBED

    def _advance(self, ev: Event) -> list[Command]:
        """Follow the start sequence; fall back (pulling quotes) when a precondition is lost."""
        target = self._target()
        was_quoting = self.phase >= Phase.MD_SUBSCRIBED
        if self.phase == Phase.QUOTING and target == Phase.MD_SUBSCRIBED:
            return []
        if isinstance(ev, QuotingStarted):
            if self.phase == Phase.MD_SUBSCRIBED:  # a late confirmation after a fall-back is ignored
                self.phase = Phase.QUOTING
            return []
        self.phase = target
        if was_quoting and target < Phase.MD_SUBSCRIBED:
            return [Command("pull_quotes", self._why_not_quoting())]
        if not was_quoting and target == Phase.MD_SUBSCRIBED:
            return [Command("start_quoting", ",".join(sorted(self._fresh)))]
        return []

    def _why_not_quoting(self) -> str:
        if not self._fresh:
            return "no fresh reference feed"
        if not self._oe_up:
            return "order-entry session down"
        return "market data down"

    def _stop(self, reason: str, now_ns: int) -> list[Command]:
        if self.phase >= Phase.STOPPING:
            return []
        self.stop_reason = reason
        self.phase = Phase.STOPPING
        self.step = StopStep.NONE
        return [Command("pull_quotes", reason), *self._next_step(now_ns)]

    def _next_step(self, now_ns: int) -> list[Command]:
        step = StopStep(self.step + 1)
        if step == StopStep.HEDGE and not self.hedge_on_stop:
            step = StopStep.LOGOUT
        self.step = step
        if step == StopStep.DONE:
            self.phase = Phase.STOPPED
            return []
        timeout = {
            StopStep.CANCEL_QUOTES: self.timeouts.cancel_quotes_ns,
            StopStep.HEDGE: self.timeouts.hedge_ns,
            StopStep.LOGOUT: self.timeouts.logout_ns,
            StopStep.REPORT: self.timeouts.report_ns,
            StopStep.UNLINK: self.timeouts.unlink_ns,
        }[step]
        self._step_deadline = now_ns + timeout
        return [Command(_STEP_COMMAND[step], self.stop_reason)]
