"""The backtest's event loop: recorded data through the live core on an event-time clock, with latencies.

Clocks: a recorded row happens *at the venue* at its receive time ``t`` (the venue's queue model sees it
then) and reaches *our engine* at ``t + feed_latency`` (the PriceAggregator and the core see it then).
An order action decided at ``now`` reaches the venue at ``now + order_latency``; the venue's answers and
fills reach the core one ``order_latency`` later. Timers (the quoter's periodic tick: aggregator aging,
core timers, the hedger's loop, the samples for the report) run every ``timer_ns`` of event time.

What runs is the live code: :class:`~fastmm.core.trading_core.TradingCore` built as the quoter builds it
(its PriceAggregator, where the recorded book is the one reference source in place of Coinbase, quote
engine, inventory, PnL, risk) and :class:`~fastmm.core.hedge.HedgePlanner` (via
:class:`~fastmm.backtest.hedge.HedgeSim`); only the venue (:class:`~fastmm.backtest.queue.QueueVenue`)
and Kraken are models. At equal times the order is: venue data, our messages in flight, engine data,
timer, hedge messages; everything else is in time order, so a run is deterministic.

Two input reductions keep the Python loop short without changing a single decision (a test replays
with both off and compares every fill):

* ``conflate``: a recorded top whose prices did not change feeds the aggregator only if it is the first
  or the last one between two timer ticks (the aggregator's output depends on the prices and, through
  aging, only on the newest receive time a timer tick sees); at the venue only price changes matter;
* market trades reach the core's intensity fit (:meth:`TradingCore.on_trade`) only for the models that
  read it (Avellaneda-Stoikov, GLFT); the ladder model never does (``trades_to_core="always"`` forces it).
"""

from __future__ import annotations

import heapq
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from fastmm.backtest.hedge import HedgeMode, HedgeSim
from fastmm.backtest.market import DEPTH, TOP, TRADE, MarketData
from fastmm.backtest.queue import CancelModel, FullBook, QueueVenue, VenueStats
from fastmm.config import Config
from fastmm.core.basis import BasisEstimator
from fastmm.core.pnl import PnlSummary
from fastmm.core.price_aggregator import PriceAggregator
from fastmm.core.risk import RiskReset, RiskTrip
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import Action
from fastmm.instrument import Instrument

log = logging.getLogger(__name__)

_INF = 1 << 62
_ARRIVE, _DELIVER = 0, 1
SOURCE = "coinbase"     # the aggregator's source name for the recorded reference book
VENUE_TOP = 4           # cross-venue: the quoted recording's top as the engine sees it
REF0 = 10               # cross-venue: kind of reference i's tops is REF0 + i


@dataclass(frozen=True, slots=True)
class BacktestOptions:
    """Settings of the backtest itself (models and clocks); the strategy's are in :class:`Config`."""

    feed_latency_ns: int = 1_000_000        # recorded row -> our engine
    order_latency_ns: int = 5_000_000       # our engine -> TrueX, and TrueX -> our engine
    hedge_latency_ns: int = 100_000_000     # hedger <-> Kraken, each way
    timer_ns: int = 100_000_000             # the quoter's timer tick
    cancels: CancelModel = "prorata"        # how much of a level's cancels were ahead of us
    hedge_mode: HedgeMode = "planner"       # limit then market (HedgePlanner), or taker at once
    conflate: bool = True
    trades_to_core: Literal["auto", "always", "never"] = "auto"
    sample_ns: int = 1_000_000_000          # PnL grid for Sharpe and the report's series

    def check(self) -> None:
        for name in ("feed_latency_ns", "order_latency_ns", "hedge_latency_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.timer_ns <= 0 or self.sample_ns <= 0:
            raise ValueError("timer_ns and sample_ns must be positive")


@dataclass(slots=True)
class BacktestResult:
    name: str
    cfg: Config
    opts: BacktestOptions
    data: dict[str, object]
    start_ns: int
    end_ns: int
    summary: PnlSummary
    venue: VenueStats
    venue_ledger: dict[str, int]
    core_ledger: dict[str, int]
    series: dict[str, np.ndarray]                  # per timer tick: t, mid, bid, ask, position, pnl, ...
    fills: list[tuple[int, int, int, int, int]]    # t, side, px ticks, lots, liquidity
    hedges: list[tuple[int, str, int, int, int]]   # t, side, volume e8, price e8, liquidity
    risk_events: list[str]
    replay_s: float
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Streams:
    venue: list[tuple[int, int, int, int, int]]   # t, kind, a, b, c
    core: list[tuple[int, int, int, int, int, int, int]]    # t_local, kind, a, b, t_recv, c, d
    full_book: FullBook


def backtest_core(cfg: Config) -> TradingCore:
    """The live core as the quoter builds it, from :func:`backtest_config` (``run_backtest`` passes the
    config through it already; doing it again changes nothing)."""
    return TradingCore.from_config(backtest_config(cfg), cl_ord_prefix="bt")


def backtest_config(cfg: Config) -> Config:
    """The recorded book is the only reference: one aggregator source, Kraken's feed off."""
    return replace(cfg, coinbase=replace(cfg.coinbase, enabled=True),
                   kraken=replace(cfg.kraken, enabled=False))


def _wants_trades(cfg: Config, opts: BacktestOptions) -> bool:
    if opts.trades_to_core == "auto":
        return cfg.quoting.model != "ladder"
    return opts.trades_to_core == "always"


def _engine_tops(md: MarketData, lat: int, opts: BacktestOptions, code: int) -> tuple[np.ndarray, ...]:
    """The tops of ``md`` as the engine sees them, ``lat`` later: each price change, and (``conflate``)
    only the first and last unchanged one between two timer ticks. Rows: t_local, kind, bid, ask, t_recv,
    bid size, ask size."""
    k, t, a, b = md.kind, md.t, md.a, md.b
    top_idx = np.flatnonzero(k == TOP)
    tb, ta = a[top_idx], b[top_idx]
    moved = np.ones(len(top_idx), dtype=bool)
    moved[1:] = (tb[1:] != tb[:-1]) | (ta[1:] != ta[:-1])
    tl = t[top_idx] + lat
    keep = moved
    if opts.conflate and len(tl):
        bucket = (tl - md.start_ns + opts.timer_ns - 1) // opts.timer_ns   # timer tick k handles (T_k-1, T_k]
        first = np.ones(len(tl), dtype=bool)
        first[1:] = bucket[1:] != bucket[:-1]
        last = np.ones(len(tl), dtype=bool)
        last[:-1] = bucket[:-1] != bucket[1:]
        keep = moved | first | last
    elif not opts.conflate:
        keep = np.ones(len(tl), dtype=bool)
    ci = top_idx[keep]
    return t[ci] + lat, np.full(len(ci), code, dtype=np.int64), a[ci], b[ci], t[ci], md.c[ci], md.d[ci]


def _venue_rows(md: MarketData, cfg: Config) -> list[tuple[int, int, int, int, int]]:
    """What the venue's queue model must see: every trade, the depth rows on our tick grid, moved tops."""
    tick_e8 = Instrument.from_config(cfg.instrument).tick_e8
    k, t, a, b, c = md.kind, md.t, md.a, md.b, md.c
    top_idx = np.flatnonzero(k == TOP)
    tb, ta = a[top_idx], b[top_idx]
    moved = np.ones(len(top_idx), dtype=bool)
    moved[1:] = (tb[1:] != tb[:-1]) | (ta[1:] != ta[:-1])
    vmask = (k == TRADE) | ((k == DEPTH) & (b % tick_e8 == 0))
    vmask[top_idx[moved]] = True
    vi = np.flatnonzero(vmask)
    return list(zip(t[vi].tolist(), k[vi].tolist(), a[vi].tolist(), b[vi].tolist(), c[vi].tolist(),
                    strict=True))


def prepare(md: MarketData, cfg: Config, opts: BacktestOptions,
            references: tuple[MarketData, ...] = ()) -> _Streams:
    """Split the recorded streams into what the venue and what the engine must see (vectorized).

    Single recording: its tops are the reference (``feed_latency_ns`` late). Cross-venue: each
    reference's tops arrive ``feed_latency_ns`` late as ``REF0 + i``; the quoted recording's own tops
    (the venue's book, for post-only and the basis) and trades arrive ``order_latency_ns`` late.
    """
    venue = _venue_rows(md, cfg)
    k, t = md.kind, md.t
    parts: list[tuple[np.ndarray, ...]] = []
    if not references:
        lat = opts.feed_latency_ns
        parts.append(_engine_tops(md, lat, opts, TOP))
    else:
        lat = opts.order_latency_ns
        for i, r in enumerate(references):
            parts.append(_engine_tops(r, opts.feed_latency_ns, opts, REF0 + i))
        parts.append(_engine_tops(md, lat, opts, VENUE_TOP))
    if _wants_trades(cfg, opts):
        ti = np.flatnonzero(k == TRADE)
        parts.append((t[ti] + lat, np.full(len(ti), TRADE, dtype=np.int64), md.a[ti], md.b[ti], t[ti],
                      md.c[ti], md.d[ti]))
    cols = [np.concatenate([p[j] for p in parts]) for j in range(7)]
    order = np.argsort(cols[0], kind="stable")
    core = list(zip(*(c[order].tolist() for c in cols), strict=True))
    di = np.flatnonzero(k == DEPTH)
    full = FullBook(md.snap_bids, md.snap_asks, t[di], md.a[di], md.b[di], md.c[di])
    return _Streams(venue, core, full)


def reference_aggregator(cfg: Config, n: int) -> PriceAggregator:
    """The aggregator of a cross-venue run: one source per reference recording (equal weights, the
    Coinbase feed's staleness); the configured PYUSD basis is left out, the online estimate replaces it."""
    stale = cfg.coinbase.stale_after_ms * 1_000_000
    return PriceAggregator({f"ref{i}": (1.0, stale) for i in range(n)}, basis_bps=0.0,
                           max_dispersion_bps=cfg.pricing.max_dispersion_bps)


def run_backtest(cfg: Config, md: MarketData, opts: BacktestOptions | None = None, *,
                 name: str = "configured", references: tuple[MarketData, ...] = ()) -> BacktestResult:
    """Replay ``md`` through the core configured by ``cfg``; see the module docstring. With
    ``references``, quote and fill on ``md`` and take the fair price from the references (cross-venue)."""
    opts = opts or BacktestOptions()
    opts.check()
    cfg = backtest_config(cfg)
    wall0 = time.perf_counter()
    streams = prepare(md, cfg, opts, references)
    core = backtest_core(cfg)
    if references:
        core.estimate_basis(BasisEstimator(cfg.backtest.basis_halflife_s),
                            reference_aggregator(cfg, len(references)))
    ref_names = core.aggregator.source_names
    fees = cfg.fees
    venue = QueueVenue(core.instrument, maker_bps=fees.truex_maker_bps, taker_bps=fees.truex_taker_bps,
                       cancels=opts.cancels, min_notional=cfg.venue_rules.min_notional,
                       price_band_pct=cfg.venue_rules.price_band_pct, full_book=streams.full_book,
                       crossing_replace=cfg.sim.crossing_replace)
    venue.load_levels(md.snap_bids, md.snap_asks)
    hedge = HedgeSim(cfg, opts.hedge_latency_ns, opts.hedge_mode)
    tick_e8 = venue.tick_e8
    lat_feed, lat_order = opts.feed_latency_ns, opts.order_latency_ns
    timer_ns = opts.timer_ns
    start, end = md.start_ns, md.end_ns + lat_feed
    if references:
        end = min(md.end_ns, *(r.end_ns for r in references)) + lat_feed

    venue_ev = streams.venue
    core_ev = streams.core
    venue_ev.append((_INF, -1, 0, 0, 0))
    core_ev.append((_INF, -1, 0, 0, 0, 0, 0))
    heap: list[tuple[int, int, int, object]] = []
    seq = 0
    push = heapq.heappush
    pop = heapq.heappop
    on_action = venue.on_action
    on_depth = venue.on_depth
    on_trade_v = venue.on_trade
    on_top_v = venue.on_top
    on_reference = core.on_reference
    on_truex_top = core.on_truex_top
    on_venue_mid = core.on_venue_mid
    decide = core.decide
    on_event = core.on_order_event
    on_trade_c = core.on_trade
    # what each side sees of the reference touch
    v_bid = int(md.snap_bids[0][0]) if len(md.snap_bids) else 0
    v_ask = int(md.snap_asks[0][0]) if len(md.snap_asks) else 0
    c_bid = c_ask = 0
    last_bb = last_ba = -1
    # series (per timer tick)
    s_t: list[int] = []
    s_mid: list[float] = []
    s_bid: list[int] = []
    s_ask: list[int] = []
    s_pos: list[int] = []
    s_pnl: list[int] = []
    s_real: list[int] = []
    s_fees: list[int] = []
    risk_events: list[str] = []
    pnl = core.pnl
    inv = core.inventory
    n_msgs = n_timer = 0

    iv = ic = 0
    ev_v = venue_ev[0]
    ev_c = core_ev[0]
    t_timer = start + timer_ns
    while True:
        tc = ev_c[0]
        th = heap[0][0] if heap else _INF
        thg = hedge.next_ns
        # venue data first at equal times, then messages, engine data, timer, hedge; the venue's rows
        # run in an inner loop up to the next other event (most of them change nothing)
        tv = ev_v[0]
        lim = min(tc, th, t_timer, thg, end)
        if tv <= lim:
            resting = hedge.resting
            while tv <= lim:
                kind = ev_v[1]
                if kind == TRADE:
                    out = on_trade_v(tv, ev_v[2], ev_v[3], ev_v[4])
                    if resting:
                        hedge.check_limit(tv, v_bid, v_ask, ev_v[3])
                        resting = hedge.resting
                elif kind == DEPTH:
                    on_depth(tv, ev_v[2], ev_v[3], ev_v[4])
                    out = None
                else:
                    v_bid, v_ask = ev_v[2], ev_v[3]
                    out = on_top_v(tv, v_bid, v_ask)
                    if resting:
                        hedge.check_limit(tv, v_bid, v_ask)
                        resting = hedge.resting
                if out:
                    due = tv + lat_order
                    for e in out:
                        seq += 1
                        push(heap, (due, seq, _DELIVER, e))
                    if due < lim:
                        lim = due
                iv += 1
                ev_v = venue_ev[iv]
                tv = ev_v[0]
            continue
        if th <= tc and th <= t_timer and th <= thg:
            if th > end:
                break
            t, _, what, payload = pop(heap)
            n_msgs += 1
            if what == _ARRIVE:
                due = t + lat_order
                for e in on_action(t, payload):  # type: ignore[arg-type]
                    seq += 1
                    push(heap, (due, seq, _DELIVER, e))
                continue
            actions: list[Action] | None = on_event(payload, t)  # type: ignore[arg-type]
            if actions:
                due = t + lat_order
                for a in actions:
                    seq += 1
                    push(heap, (due, seq, _ARRIVE, a))
            continue
        if tc <= t_timer and tc <= thg:
            if tc > end:
                break
            kind = ev_c[1]
            actions = None
            if kind == TOP:
                c_bid, c_ask = ev_c[2], ev_c[3]
                changed = on_reference(tc, SOURCE, c_bid, c_ask, ev_c[4], False, ev_c[5], ev_c[6])
                bb = c_bid // tick_e8
                ba = -(-c_ask // tick_e8)
                if changed or bb != last_bb or ba != last_ba:
                    last_bb, last_ba = bb, ba
                    on_truex_top(bb, ba)
                    actions = decide(tc)
            elif kind == TRADE:
                on_trade_c(tc, (ev_c[3] + tick_e8 // 2) // tick_e8, ev_c[2], ev_c[5])
            elif kind == VENUE_TOP:         # cross-venue: the quoted venue's book reaches the engine
                on_venue_mid(tc, (ev_c[2] + ev_c[3]) * 0.5e-8)
                bb = ev_c[2] // tick_e8
                ba = -(-ev_c[3] // tick_e8)
                if bb != last_bb or ba != last_ba:
                    last_bb, last_ba = bb, ba
                    on_truex_top(bb, ba)
                    actions = decide(tc)
            else:                           # cross-venue: a reference's top
                if kind == REF0:
                    c_bid, c_ask = ev_c[2], ev_c[3]     # the first reference prices the hedges
                if on_reference(tc, ref_names[kind - REF0], ev_c[2], ev_c[3], ev_c[4], False, ev_c[5],
                                ev_c[6]):
                    actions = decide(tc)
            if actions:
                due = tc + lat_order
                for a in actions:
                    seq += 1
                    push(heap, (due, seq, _ARRIVE, a))
            ic += 1
            ev_c = core_ev[ic]
            continue
        if t_timer <= thg:
            if t_timer > end:
                break
            t = t_timer
            t_timer += timer_ns
            n_timer += 1
            actions = core.on_timer(t)      # ages the reference first: a decision if that moved the price
            if actions:
                due = t + lat_order
                for a in actions:
                    seq += 1
                    push(heap, (due, seq, _ARRIVE, a))
            hedge.step(t, inv.position_lots, c_bid, c_ask)
            for ce in core.events():
                if isinstance(ce, RiskTrip | RiskReset):
                    risk_events.append(f"{ce.now_ns} {type(ce).__name__} {getattr(ce, 'reason', '')} "
                                       f"{getattr(ce, 'detail', '')}".rstrip())
            qb, qa = venue.quotes()
            s_t.append(t)
            s_mid.append(core.venue_fair_mid)
            s_bid.append(qb)
            s_ask.append(qa)
            s_pos.append(inv.position_lots)
            s_pnl.append(pnl.total_units)
            s_real.append(pnl.realized_units)
            s_fees.append(pnl.fees_units)
            continue
        if thg > end:
            break
        for hf in hedge.due(thg, v_bid, v_ask):
            hedge.applied += 1
            actions = core.on_hedge_fill(hf, thg)
            if actions:
                due = thg + lat_order
                for a in actions:
                    seq += 1
                    push(heap, (due, seq, _ARRIVE, a))
    replay_s = time.perf_counter() - wall0
    summary = pnl.summary(end)
    i64 = np.int64
    series = {
        "t": np.array(s_t, dtype=i64), "mid": np.array(s_mid, dtype=np.float64),
        "bid": np.array(s_bid, dtype=i64), "ask": np.array(s_ask, dtype=i64),
        "position": np.array(s_pos, dtype=i64), "pnl_units": np.array(s_pnl, dtype=i64),
        "realized_units": np.array(s_real, dtype=i64), "fees_units": np.array(s_fees, dtype=i64),
    }
    return BacktestResult(
        name=name, cfg=cfg, opts=opts, data=md.describe(), start_ns=start, end_ns=end, summary=summary,
        venue=venue.stats,
        venue_ledger={"cash_units": venue.cash_units + hedge.cash_units,
                      "fees_units": venue.fees_units + hedge.fees_units,
                      "position_lots": venue.position_lots + hedge.position_lots,
                      "truex_cash_units": venue.cash_units, "kraken_cash_units": hedge.cash_units},
        core_ledger={"cash_units": pnl.cash_units, "fees_units": pnl.fees_units,
                     "realized_units": pnl.realized_units, "unrealized_units": pnl.unrealized_units,
                     "capture_units": pnl.capture_units, "hedge_slip_units": pnl.hedge_slip_units,
                     "position_lots": pnl.position_lots, "mark_units_per_lot": pnl.mark or 0,
                     "inventory_lots": inv.position_lots},
        series=series, fills=venue.fill_log, hedges=hedge.fills, risk_events=risk_events, replay_s=replay_s,
        counts={"venue_events": iv, "engine_events": ic, "messages": n_msgs, "timer_ticks": n_timer,
                "basis_bps_x100": round(core.basis.bps * 100) if core.basis else 0,
                "references": len(references),
                "hedge_fills": len(hedge.fills), "kraken_fees_units": hedge.fees_units},
    )
