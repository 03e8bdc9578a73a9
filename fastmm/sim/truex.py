"""The TrueX exchange simulator's core, sans-I/O: matching, the replayed market, and TrueX's messages.

:class:`TruexExchange` owns the :class:`~fastmm.sim.truex_matching.MatchingEngine` and drives it from
the recorded data: the recorded book's mid is the reference price (the +/-2.5 % band and market orders
use it), recorded trades become taker orders on this venue (thinned and scaled by the settings, with a
seeded generator), and optional synthetic resting liquidity sits around the reference. Its output is
per-session application messages (TrueX's ExecutionReport, OrderCancelReject, BusinessMessageReject,
and market-data W/X/Y bodies), which the asyncio shell (:mod:`fastmm.sim.truex_server`) frames.

Message shapes follow TrueX's dictionaries and the real UAT frames in the venue facts (section 1):
fills are ExecType F with LastLiquidityInd and MiscFeesGrp (136/137/139=4); an empty book side is an
entry with price 0 and size 0.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from fastmm.data.binance import replay as binance_replay
from fastmm.data.book import L2Book
from fastmm.data.events import BookSnapshot, DepthDiff, Event, Trade
from fastmm.data.replay import Cursor, ReplayClock
from fastmm.fix.codec import Message, fields, format_timestamp
from fastmm.instrument import Instrument
from fastmm.sim.truex_matching import (
    BUY,
    SELL,
    BusinessReject,
    CancelReject,
    ExchangeRules,
    ExecReport,
    ExecType,
    MatchingEngine,
)
from fastmm.units import BPS, E8

SYNTH = "SYNTH"
TAKER = "TAKER"


@dataclass(frozen=True, slots=True)
class TruexSimSettings:
    """Every parameter of the simulated venue; the defaults are the venue facts' values."""

    oe_comp_id: str = "TRUEX_UAT_OE"
    md_comp_id: str = "TRUEX_UAT_MD"
    client_comp_id: str = "FASTMM"
    api_key_id: str = "sim-key"
    api_secret: str = "sim-secret"
    rules: ExchangeRules = field(default_factory=ExchangeRules)
    speed: float = 1.0                 # replay speed; 0 = as fast as possible
    taker_probability: float = 0.2     # chance a recorded trade reaches this venue as a taker order
    taker_size_scale: float = 1.0      # recorded size x this = the taker's size here
    taker_reach_bps: int = 0           # a taker's limit is the recorded price this far through (the
                                       # spread a TrueX taker pays to trade here; 0 = the recorded price)
    synthetic_levels: int = 3          # resting levels per side from the simulator itself (0 = none)
    synthetic_step_bps: int = 5        # distance between synthetic levels, from the reference
    synthetic_lots: int = 500          # size of each synthetic level (lots of the instrument)
    md_depth: int = 10
    seed: int = 0


class TruexExchange:
    """Drive with :meth:`advance`; order entry via :meth:`on_order_message`; drain :meth:`outbox`."""

    def __init__(self, instrument: Instrument, events: Iterable[Event] | None, settings: TruexSimSettings
                 ) -> None:
        self.instrument = instrument
        self.settings = settings
        self.engine = MatchingEngine(instrument, settings.rules)
        self.clock = ReplayClock(settings.speed)
        self._cursor: Cursor[Event] | None = Cursor(binance_replay(events)) if events is not None else None
        self.book = L2Book()
        self._rng = random.Random(settings.seed)
        self._synth_ref = 0
        self._out: dict[str, list[tuple[bytes, bytes]]] = {}   # owner -> [(msg type, body)]
        self.fills: list[ExecReport] = []                       # every fill of a session's order
        # What TrueX's REST API shows (fastmm.sim.truex_rest): fills with their time, each session order's
        # latest state by order id, and the account's cancel_on_disconnect setting.
        self.trade_log: list[tuple[int, ExecReport]] = []
        self.order_state: dict[str, ExecReport] = {}
        self.cancel_on_disconnect = False
        self._rest_cancels = 0
        self.taker_orders = 0
        self.replayed = 0

    # -- replay -----------------------------------------------------------------------------------
    def start(self, now_ns: int) -> None:
        if self._cursor is None:
            return
        first = self._cursor.peek()
        if first is not None:
            self.clock.start(now_ns, first.recv_ns)

    @property
    def finished(self) -> bool:
        return self._cursor is None or self._cursor.exhausted

    def next_wakeup_ns(self) -> int | None:
        if self._cursor is None:
            return None
        nxt = self._cursor.peek()
        return None if nxt is None else self.clock.wall_at(nxt.recv_ns)

    def advance(self, now_ns: int, budget: int = 2000) -> int:
        """Apply every recorded event due at ``now_ns`` (at most ``budget``); returns how many."""
        if self._cursor is None or not self.clock.started:
            return 0
        due = self.clock.data_now(now_ns)
        n = 0
        while n < budget:
            ev = self._cursor.peek()
            if ev is None or ev.recv_ns > due:
                break
            self._cursor.pop()
            self._apply(ev, now_ns)
            n += 1
        self.replayed += n
        return n

    def _apply(self, ev: Event, now_ns: int) -> None:
        if isinstance(ev, BookSnapshot):
            self.book.apply_snapshot(ev)
            self._reference_moved(now_ns)
        elif isinstance(ev, DepthDiff):
            self.book.apply_diff(ev)
            self._reference_moved(now_ns)
        elif isinstance(ev, Trade):
            self._taker(ev, now_ns)

    def _reference_moved(self, now_ns: int) -> None:
        bid, ask = self.book.best_bid(), self.book.best_ask()
        if bid is None or ask is None or bid[0] >= ask[0]:
            return
        mid_e8 = (bid[0] + ask[0]) // 2
        ref = self.instrument.price_floor_ticks(Decimal(mid_e8) / E8)
        if ref != self.engine.reference:
            self.engine.set_reference(ref)
            self._refresh_synthetic(ref, now_ns)

    def _refresh_synthetic(self, ref: int, now_ns: int) -> None:
        s = self.settings
        if s.synthetic_levels <= 0 or abs(ref - self._synth_ref) * BPS < ref * s.synthetic_step_bps // 2:
            return
        self._synth_ref = ref
        self.engine.withdraw(SYNTH)
        for i in range(1, s.synthetic_levels + 1):
            off = max(1, ref * s.synthetic_step_bps * i // BPS)
            for side, px in ((BUY, ref - off), (SELL, ref + off)):
                self._route(self.engine.place_resting(SYNTH, side, px, s.synthetic_lots), now_ns)

    def _taker(self, tr: Trade, now_ns: int) -> None:
        s = self.settings
        if self._rng.random() >= s.taker_probability:
            return
        lots = int(tr.qty * s.taker_size_scale) // self.instrument.lot_e8
        if lots <= 0:
            return
        price = Decimal(tr.price) / E8
        reach = Decimal(s.taker_reach_bps) / BPS
        if tr.taker_side == "buy":
            side, limit = BUY, self.instrument.price_floor_ticks(price * (1 + reach))
        else:
            side, limit = SELL, self.instrument.price_ceil_ticks(price * (1 - reach))
        self.taker_orders += 1
        self._route(self.engine.take(side, lots, limit, owner=TAKER), now_ns)

    # -- order entry ------------------------------------------------------------------------------
    def on_order_message(self, owner: str, msg: Message, now_ns: int) -> None:
        """A D, F or G from a session; the answers go to that session's outbox."""
        get = msg.get
        mt = msg.msg_type

        def text(tag: int) -> str:
            v = get(tag)
            return v.decode("ascii", "replace") if v is not None else ""

        party = text(448)
        if mt == b"D":
            exec_inst = text(18)
            price = text(44) if get(44) is not None else None
            events = self.engine.new_order(owner, text(11), party, text(54), text(40), price, text(38),
                                           text(59) or "1", now_ns, post_only="6" in exec_inst.split())
        elif mt == b"F":
            events = self.engine.cancel(owner, text(11), text(41), party, now_ns)
        elif mt == b"G":
            events = self.engine.replace(owner, text(11), text(41), party, text(44), text(38), now_ns)
        else:
            events = [BusinessReject(owner, mt.decode("ascii", "replace"), "", 3,
                                     "Unsupported message type")]
        self._route(events, now_ns)

    def _route(self, events: list, now_ns: int) -> None:
        for ev in events:
            owner = ev.owner
            if owner in (SYNTH, TAKER):
                continue
            if isinstance(ev, ExecReport):
                if ev.exec_type == ExecType.TRADE:
                    self.fills.append(ev)
                    self.trade_log.append((now_ns, ev))
                if ev.order_id:
                    self.order_state[ev.order_id] = ev
                self._out.setdefault(owner, []).append((b"8", self.execution_report(ev, now_ns)))
            elif isinstance(ev, CancelReject):
                self._out.setdefault(owner, []).append((b"9", self.cancel_reject(ev)))
            elif isinstance(ev, BusinessReject):
                self._out.setdefault(owner, []).append((b"j", self.business_reject(ev)))

    def take(self, side: str, lots: int, now_ns: int) -> None:
        """A taker order from outside the sessions (tests, chaos runs): trades with what rests."""
        self._route(self.engine.take(side, lots, owner=TAKER), now_ns)

    def cancel_by_id(self, order_id: str, now_ns: int) -> bool:
        """Cancel a live order by the exchange's id (REST DELETE, cancel_on_disconnect); the owner's
        session gets the ExecutionReport as for a FIX cancel. False when no such order is live."""
        order = next((o for o in self.engine.live_orders() if o.order_id == order_id
                      and o.owner not in (SYNTH, TAKER)), None)
        if order is None:
            return False
        self._rest_cancels += 1
        client = self.engine.client_id_of(order.owner)
        events = self.engine.cancel(order.owner, f"venue-{self._rest_cancels}", order.last_cl_ord_id, client,
                                    now_ns, throttle=False)
        self._route(events, now_ns)
        return True

    def session_dropped(self, owner: str, now_ns: int) -> int:
        """The owner's order-entry session is gone: with cancel_on_disconnect, cancel its orders."""
        if not self.cancel_on_disconnect:
            return 0
        ids = [o.order_id for o in self.engine.live_orders(owner)]
        return sum(self.cancel_by_id(i, now_ns) for i in ids)

    def outbox(self, owner: str) -> list[tuple[bytes, bytes]]:
        return self._out.pop(owner, [])

    def owners_with_output(self) -> list[str]:
        return list(self._out)

    # -- TrueX's messages -------------------------------------------------------------------------
    def execution_report(self, ev: ExecReport, now_ns: int) -> bytes:
        inst = self.instrument
        px = inst.price_text
        qt = inst.qty_text
        pairs: list[tuple[int, bytes | str | int]] = [(37, ev.order_id)]
        if ev.cl_ord_id:
            pairs.append((11, ev.cl_ord_id))
        if ev.orig_cl_ord_id:
            pairs.append((41, ev.orig_cl_ord_id))
        pairs += [(17, ev.exec_id), (150, ev.exec_type.value), (39, ev.ord_status.value),
                  (55, inst.symbol), (167, inst.security_type), (54, ev.side or "1")]
        pairs.append((38, qt(ev.qty)))          # required by TrueX's dictionary, also on a reject
        if ev.price:
            pairs.append((44, px(ev.price)))
        if ev.exec_type == ExecType.TRADE:
            pairs += [(31, px(ev.last_px)), (32, qt(ev.last_qty))]
        pairs += [(151, qt(ev.leaves)), (14, qt(ev.cum)), (60, format_timestamp(now_ns))]
        if ev.exec_type == ExecType.TRADE:  # the fill's match id is its ExecID here (REST match_id too)
            pairs += [(851, ev.liquidity), (880, ev.exec_id), (136, 1), (137, format(ev.fee, "f")),
                      (139, "4")]
        if ev.text:
            pairs.append((58, ev.text))
        return fields(pairs)

    @staticmethod
    def cancel_reject(ev: CancelReject) -> bytes:
        pairs: list[tuple[int, bytes | str | int]] = [(37, ev.order_id), (11, ev.cl_ord_id)]
        if ev.orig_cl_ord_id:
            pairs.append((41, ev.orig_cl_ord_id))
        pairs += [(39, ev.ord_status.value), (434, ev.response_to), (102, ev.reason), (58, ev.text)]
        return fields(pairs)

    @staticmethod
    def business_reject(ev: BusinessReject) -> bytes:
        pairs: list[tuple[int, bytes | str | int]] = [(372, ev.ref_msg_type)]
        if ev.ref_id:
            pairs.append((379, ev.ref_id))
        pairs += [(380, ev.reason), (58, ev.text)]
        return fields(pairs)

    # -- market data ------------------------------------------------------------------------------
    def md_snapshot(self, md_req_id: str) -> bytes:
        inst = self.instrument
        bids, asks = self.engine.depth(self.settings.md_depth)
        t = b"19700101-00:00:00.000000000"
        entries: list[tuple[int, bytes | str | int]] = []
        n = 0
        for etype, levels in (("0", bids), ("1", asks)):
            if not levels:
                entries += [(269, etype), (270, "0"), (271, "0"), (1023, 1), (273, t)]
                n += 1
            for i, (p, q) in enumerate(levels, 1):
                entries += [(269, etype), (270, inst.price_text(p)), (271, inst.qty_text(q)), (1023, i),
                            (273, t)]
                n += 1
        head: list[tuple[int, bytes | str | int]] = [(262, md_req_id), (55, inst.symbol),
                                                     (167, inst.security_type), (268, n)]
        return fields(head + entries)

    def md_incremental(self, known: dict[tuple[str, int], int], trades: list[tuple[int, int, str]],
                       now_ns: int) -> bytes | None:
        """The body of an X after its MDReqID: level changes since the last call (updating ``known``,
        the book as subscribers have it) and trades; None when there is nothing to say."""
        inst = self.instrument
        entries: list[tuple[int, bytes | str | int]] = []
        n = 0
        for ch in self.engine.drain_level_changes():
            etype = "0" if ch.side == BUY else "1"
            key = (etype, ch.price)
            before = known.get(key, 0)
            if ch.size == before:
                continue
            action = "2" if ch.size == 0 else ("0" if before == 0 else "1")
            if ch.size == 0:
                known.pop(key, None)
            else:
                known[key] = ch.size
            entries += [(279, action), (269, etype), (270, inst.price_text(ch.price)),
                        (271, inst.qty_text(ch.size))]
            n += 1
        ts = format_timestamp(now_ns)
        for price, lots, aggressor in trades:
            entries += [(279, "0"), (269, "2"), (270, inst.price_text(price)), (271, inst.qty_text(lots)),
                        (273, ts), (2446, aggressor)]
            n += 1
        if not n:
            return None
        return fields([(268, n), *entries])

    def drain_trades(self) -> list[tuple[int, int, str]]:
        out, self.engine.trades = self.engine.trades, []
        return out


def levels_of(snapshot: tuple[list[tuple[int, int]], list[tuple[int, int]]]) -> dict[tuple[str, int], int]:
    bids, asks = snapshot
    return {**{("0", p): q for p, q in bids}, **{("1", p): q for p, q in asks}}

