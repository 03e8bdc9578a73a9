"""Keeps the quoter's price path warm while no price arrives: a rehearsal on a shadow core.

A Python decision that runs right after the process slept for 10 ms takes 5 to 15 times as long as the
same decision run back to back (measured on the 2-vCPU VM: 7.7 us hot, about 100 us after a 10 ms
sleep): while the process sleeps, other processes and the host reuse the CPU and its caches, and the
interpreter's code, the core's objects and the branch history are gone when the next tick comes. HFT
systems written in C++ answer this by running the hot path on dummy data between events without
sending; this is the same for the quoter. While quoting, every ``interval`` of silence the shell calls
:meth:`Rehearsal.run`, which reads the reference channels as a wake does, moves a shadow
:class:`~fastmm.core.trading_core.TradingCore` (built as the quoter's, its own aggregator inside; TrueX's
message limits lifted so that it plans, admits and emits every time) by a tick or two around the last
real price, builds each order's FIX body and frames it with a shadow encoder, and answers its own orders
as the venue would, so that it keeps a live ladder to reconcile against.

Nothing here reaches the real core, the journal, the FIX session or a socket: the shadow's orders are
bytes that are dropped. Cost, measured in a 10x paper session on the 2-vCPU VM: the quoter used 3.5 % of a
CPU without rehearsals, 8.8 % with the default ``shm.warm_every_ms`` = 2 and 14 % with 1 (a rehearsal is
about 35 us hot, ~100 us as it runs, cold itself); 2 ms kept most of 1 ms's gain (wake -> decide p50 at
10x: 60-73 us without, 55 with 2 ms, 48-50 with 1 ms). 0 turns it off.
"""

from __future__ import annotations

import dataclasses

from fastmm.config import Config
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import (
    Action,
    CancelOrder,
    NewOrder,
    OrderAccepted,
    OrderCanceled,
    OrderReplaced,
    ReplaceOrder,
)
from fastmm.fix.codec import Encoder, format_timestamp
from fastmm.journal.records import line_of
from fastmm.procs.book_channel import read_top
from fastmm.procs.order_journal import order_entry
from fastmm.shm import LatestValue
from fastmm.units import E8
from fastmm.venues.truex.codec import TruexCodec

# the shadow's mid walks this many ticks around the last real price, one step per rehearsal, so that
# every rehearsal moves the ladder (reconcile, admit, emit, encode all run)
_WALK = (0, 2, 0, -2)
_FALLBACK_MID_E8 = 100_000 * E8
# the shadow's own clock advances this much per rehearsal: its rate-limit, risk and volatility windows
# (1 s and 60 s) then hold a few dozen entries, not a minute of rehearsals (tens of thousands)
_SHADOW_STEP_NS = 1_100_000_000


class Rehearsal:
    """A shadow price path; :meth:`run` is one rehearsed price event. Not thread-safe (the loop's)."""

    def __init__(self, cfg: Config, codec: TruexCodec, refs: dict[str, LatestValue],
                 truex_book: LatestValue | None) -> None:
        rules = dataclasses.replace(cfg.venue_rules, max_orders_per_sec=1_000_000,
                                    max_orders_per_min=1_000_000_000, duplicate_window_ms=0)
        risk = dataclasses.replace(cfg.risk, max_order_rate_per_min=1_000_000_000)
        shadow = dataclasses.replace(cfg, venue_rules=rules, risk=risk)
        self.core = TradingCore.from_config(shadow, cl_ord_prefix="rehearse")
        self.codec = codec
        self.refs = refs
        self.truex_book = truex_book
        self.tick_e8 = self.core.instrument.tick_e8
        self._enc = Encoder("FIXT.1.1", "REHEARSAL", "NOBODY")
        self._names = self.core.aggregator.source_names
        self._step = 0
        self._seq = 0
        self._now = 0
        self.runs = 0
        self.orders = 0

    def run(self, now_ns: int, wall_ns: int) -> int:
        """One rehearsed price event (``now_ns`` monotonic, only to start the shadow's own clock; ``wall_ns``
        for the FIX timestamp); returns how many shadow order actions it decided."""
        self._now = now = max(now_ns, self._now + _SHADOW_STEP_NS)
        mid_e8 = 0
        for ch in self.refs.values():
            top = read_top(ch)
            if top is not None and top.usable:
                mid_e8 = (top.bid_e8 + top.ask_e8) // 2
        book = self.truex_book
        if book is not None:
            read_top(book)
        if mid_e8 <= 0:
            mid_e8 = _FALLBACK_MID_E8
        step = self._step = (self._step + 1) % len(_WALK)
        tick = self.tick_e8
        mid_e8 += _WALK[step] * tick
        core = self.core
        changed = False
        for name in self._names:      # every source at the walked price: the fair mid moves a whole step
            changed = core.on_reference(now, name, mid_e8 - tick, mid_e8 + tick, now) or changed
        if not changed:
            return 0
        actions = core.decide(now)
        self._build(actions, wall_ns)
        self.runs += 1
        self.orders += len(actions)
        self._answer(actions, now)
        core.events()       # PnL and risk events of the shadow: nobody reads them, none may pile up
        return len(actions)

    def _build(self, actions: list[Action], wall_ns: int) -> None:
        """What the quoter does with an action, up to the bytes (journal line, FIX message), for the first
        action of each kind: one of each warms the code, more would only cost CPU."""
        codec, enc, ts = self.codec, self._enc, format_timestamp(wall_ns)
        seen: set[type] = set()
        for a in actions:
            if type(a) in seen:
                continue
            seen.add(type(a))
            self._seq += 1
            tail, msg_type, body = order_entry(codec, a, wall_ns)
            line_of(self._seq, tail)
            enc.encode(msg_type, self._seq, ts, body)

    def _answer(self, actions: list[Action], now_ns: int) -> None:
        """The shadow venue accepts everything at once, so the next rehearsal finds live orders (straight
        into the order tracker: the real quoter's answers arrive on other wakes, not on this path)."""
        apply = self.core.track_only
        get = self.core.order
        for a in actions:
            if isinstance(a, NewOrder):
                apply(OrderAccepted(a.cl_ord_id, "R"), now_ns)
            elif isinstance(a, CancelOrder):
                apply(OrderCanceled(a.cl_ord_id, a.orig_cl_ord_id), now_ns)
            elif isinstance(a, ReplaceOrder):
                o = get(a.orig_cl_ord_id)
                leaves = a.qty_lots - (o.cum if o else 0)
                apply(OrderReplaced(a.cl_ord_id, a.orig_cl_ord_id, a.price_ticks, a.qty_lots, leaves), now_ns)
