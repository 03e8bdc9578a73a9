"""The same recorded data through hftbacktest (optional dependency): an independent reference for the
backtest's PnL and speed.

The strategy follows hftbacktest's GLFT market-making tutorial ("GLFT market making model and grid
trading"): every 100 ms step it measures how deep the market's trades reached from the mid (trading
intensity, fitted as A exp(-k d)), the volatility of the mid, computes the GLFT half-spread and skew
(c1, c2), and keeps a grid of ``levels`` orders a side around the reservation price. Adapted for
fastmm's setting so the numbers are comparable: prices in TrueX ticks (our orders snap to 0.50; the book
keeps the recording's tick), the calibration window is ``quoting.volatility_window_s`` (the tutorial's
10 minutes would leave nothing of a 10.8-minute recording), order size ``quoting.base_size_btc``,
position limit ``inventory.max_position_btc``, risk aversion ``quoting.risk_aversion``.

The venue model mirrors ours: feed latency as local minus exchange time, a constant order latency each
way, partial fills, TrueX fees, and the queue model matching our cancel attribution (``prorata`` ->
``power_prob_queue_model(1)``, ``none`` -> ``risk_adverse_queue_model``; ``all`` has no equivalent and
uses ``prorata``). Depth diffs and trades go in; the recorded bookTicker does not (the tutorial's data
has none), which is one known difference to our engine. No hedging.

:func:`crosscheck` validates the fill model itself: one fixed order schedule (a bid and an ask ``offset``
outside the touch, moved every 100 ms) goes through hftbacktest's exchange and through our
:class:`~fastmm.backtest.queue.QueueVenue` (fed the same depth-book touch), and both fill counts, volumes
and positions come back side by side.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from fastmm.backtest.market import DEPTH, TRADE, MarketData
from fastmm.backtest.queue import QueueVenue
from fastmm.config import Config, InstrumentConfig
from fastmm.core.types import CancelOrder, NewOrder, Side
from fastmm.data.book import L2Book
from fastmm.instrument import Instrument
from fastmm.units import E8

STEP_NS = 100_000_000   # the tutorial's 100 ms step


def unavailable_reason() -> str | None:
    """None when hftbacktest (and numba) import; otherwise why not, in one line."""
    try:
        import hftbacktest  # noqa: F401
        import numba  # noqa: F401
    except Exception as e:  # an ImportError, or numba failing on this CPU / numpy
        return f"{type(e).__name__}: {e}"
    return None


@dataclass(slots=True)
class HbtResult:
    name: str
    series: dict[str, np.ndarray]     # per step: t, equity (PYUSD, float), position (BTC), mid
    final: dict[str, float]
    convert_s: float
    build_s: float
    run_s: float
    params: dict[str, Any]
    compile_s: float | None = None       # time of a first short run that compiled the strategy


def to_events(md: MarketData, feed_latency_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(feed rows, initial snapshot) in hftbacktest's event dtype: exchange time = recorded receive
    time, local time = that plus the feed latency (the same clocks as our engine)."""
    from hftbacktest import (
        BUY_EVENT,
        DEPTH_EVENT,
        DEPTH_SNAPSHOT_EVENT,
        EXCH_EVENT,
        LOCAL_EVENT,
        SELL_EVENT,
        TRADE_EVENT,
        event_dtype,
    )

    k = md.kind
    rows = np.flatnonzero((k == DEPTH) | (k == TRADE))
    ev = np.empty(len(rows), dtype=event_dtype)
    kind = k[rows]
    side = md.a[rows]
    flags = np.where(kind == DEPTH, DEPTH_EVENT, TRADE_EVENT).astype(np.uint64)
    flags |= np.where(side == 1, BUY_EVENT, SELL_EVENT).astype(np.uint64)
    flags |= np.uint64(EXCH_EVENT | LOCAL_EVENT)
    ev["ev"] = flags
    ev["exch_ts"] = md.t[rows]
    ev["local_ts"] = md.t[rows] + feed_latency_ns
    ev["px"] = md.b[rows] / E8
    ev["qty"] = md.c[rows] / E8
    ev["order_id"] = 0
    ev["ival"] = 0
    ev["fval"] = 0.0
    nb, na = len(md.snap_bids), len(md.snap_asks)
    snap = np.zeros(nb + na, dtype=event_dtype)
    base = np.uint64(DEPTH_SNAPSHOT_EVENT | EXCH_EVENT | LOCAL_EVENT)
    snap["ev"][:nb] = base | np.uint64(BUY_EVENT)
    snap["ev"][nb:] = base | np.uint64(SELL_EVENT)
    snap["exch_ts"] = md.start_ns
    snap["local_ts"] = md.start_ns + feed_latency_ns
    if nb:
        snap["px"][:nb] = md.snap_bids[:, 0] / E8
        snap["qty"][:nb] = md.snap_bids[:, 1] / E8
    if na:
        snap["px"][nb:] = md.snap_asks[:, 0] / E8
        snap["qty"][nb:] = md.snap_asks[:, 1] / E8
    return ev, snap


_STRATEGY: Any = None


def _strategy() -> Any:
    """The GLFT grid strategy, compiled by numba on first use (seconds; later calls are free)."""
    global _STRATEGY
    if _STRATEGY is not None:
        return _STRATEGY
    from hftbacktest import BUY, BUY_EVENT, GTC, GTX, LIMIT, SELL
    from numba import njit, uint64
    from numba.typed import Dict

    @njit
    def measure_trading_intensity(arrival_depth: Any, out: Any) -> Any:
        max_tick = 0
        for depth in arrival_depth:
            if not np.isfinite(depth):
                continue
            tick = round(depth / 0.5) - 1
            if tick < 0 or tick >= len(out):
                continue
            out[:tick] += 1
            max_tick = max(max_tick, tick)
        return out[:max_tick]

    @njit
    def linear_regression(x: Any, y: Any) -> tuple[float, float]:
        sx, sy = np.sum(x), np.sum(y)
        sx2, sxy = np.sum(x ** 2), np.sum(x * y)
        w = len(x)
        slope = (w * sxy - sx * sy) / (w * sx2 - sx ** 2)
        return slope, (sy - slope * sx) / w

    @njit
    def compute_coeff(xi: float, gamma: float, delta: float, a: float, k: float) -> tuple[float, float]:
        inv_k = np.divide(1, k)
        c1 = 1 / (xi * delta) * np.log(1 + xi * delta * inv_k)
        c2 = np.sqrt(np.divide(gamma, 2 * a * delta * k)
                     * ((1 + xi * delta * inv_k) ** (k / (xi * delta) + 1)))
        return c1, c2

    @njit
    def glft(hbt: Any, out_t: Any, out_eq: Any, out_pos: Any, out_mid: Any, qty: float, max_pos: float,
             grid_num: int, qtick: float, gamma: float, window: int, per_s: float, post_only: bool,
             adj1: float, adj2: float, delta: float) -> int:
        n = len(out_t)
        dtick = hbt.depth(0).tick_size
        arrival_depth = np.full(n, np.nan, np.float64)
        mid_chg = np.full(n, np.nan, np.float64)
        tmp = np.zeros(500, np.float64)
        ticks = np.arange(len(tmp)) + 0.5
        a_ = np.nan
        k_ = np.nan
        vol = np.nan
        mid = np.nan
        tif = GTX if post_only else GTC
        t = 0
        while t < n and hbt.elapse(100_000_000) == 0:
            if not np.isnan(mid):
                depth = -np.inf
                for tr in hbt.last_trades(0):
                    px_t = tr.px / qtick
                    if tr.ev & BUY_EVENT == BUY_EVENT:
                        depth = max(px_t - mid, depth)
                    else:
                        depth = max(mid - px_t, depth)
                arrival_depth[t] = depth
            hbt.clear_last_trades(0)
            hbt.clear_inactive_orders(0)
            d = hbt.depth(0)
            position = hbt.position(0)
            bb, ba = d.best_bid, d.best_ask
            sv = hbt.state_values(0)
            out_t[t] = hbt.current_timestamp
            out_pos[t] = position
            if not (np.isfinite(bb) and np.isfinite(ba)) or bb <= 0 or ba <= bb:
                out_eq[t] = np.nan
                out_mid[t] = np.nan
                t += 1
                continue
            prev = mid
            mid = (bb + ba) / 2.0 / qtick
            out_mid[t] = mid * qtick
            out_eq[t] = sv.balance + position * mid * qtick - sv.fee
            mid_chg[t] = mid - prev
            if t % 50 == 0 and t >= window - 1:
                tmp[:] = 0
                lam = measure_trading_intensity(arrival_depth[t + 1 - window:t + 1], tmp)
                m = 0
                while m < len(lam) and m < 70 and lam[m] > 0:
                    m += 1
                if m > 2:
                    lam2 = lam[:m] / (window / per_s)
                    slope, log_a = linear_regression(ticks[:m], np.log(lam2))
                    a_ = np.exp(log_a)
                    k_ = -slope
                vol = np.nanstd(mid_chg[t + 1 - window:t + 1]) * np.sqrt(per_s)
            c1, c2 = compute_coeff(gamma, gamma, delta, a_, k_)
            half = (c1 + delta / 2 * c2 * vol) * adj1
            skew = c2 * vol * adj2
            r = mid - skew * position / qty
            bid_t = min(np.round(r - half), np.floor(bb / qtick))
            ask_t = max(np.round(r + half), np.ceil(ba / qtick))
            grid = max(np.round(half), 1.0)
            bid_t = np.floor(bid_t / grid) * grid
            ask_t = np.ceil(ask_t / grid) * grid
            new_bids = Dict.empty(np.uint64, np.float64)
            new_asks = Dict.empty(np.uint64, np.float64)
            if position < max_pos and np.isfinite(bid_t):
                for i in range(grid_num):
                    px = (bid_t - i * grid) * qtick
                    new_bids[uint64(round(px / dtick))] = px
            if position > -max_pos and np.isfinite(ask_t):
                for i in range(grid_num):
                    px = (ask_t + i * grid) * qtick
                    new_asks[uint64(round(px / dtick))] = px
            orders = hbt.orders(0)
            values = orders.values()
            while values.has_next():
                o = values.get()
                if o.cancellable and ((o.side == BUY and o.order_id not in new_bids)
                                      or (o.side == SELL and o.order_id not in new_asks)):
                    hbt.cancel(0, o.order_id, False)
            for oid, px in new_bids.items():
                if oid not in orders:
                    hbt.submit_buy_order(0, oid, px, qty, tif, LIMIT, False)
            for oid, px in new_asks.items():
                if oid not in orders:
                    hbt.submit_sell_order(0, oid, px, qty, tif, LIMIT, False)
            t += 1
        return t

    _STRATEGY = glft
    return glft


def run_hftbacktest(cfg: Config, md: MarketData, *, feed_latency_ns: int, order_latency_ns: int,
                    cancels: str = "prorata", events: tuple[np.ndarray, np.ndarray] | None = None,
                    name: str = "hftbacktest_glft") -> HbtResult:
    """Run the GLFT grid through hftbacktest on ``md``; ``events`` skips the conversion (bench).
    The first call in a process also compiles the strategy (numba): its ``run_s`` includes that."""
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    t0 = time.perf_counter()
    data, snap = events if events is not None else to_events(md, feed_latency_ns)
    t1 = time.perf_counter()
    asset = (BacktestAsset().data(data).initial_snapshot(snap).linear_asset(1.0)
             .constant_order_latency(order_latency_ns, order_latency_ns)
             .partial_fill_exchange()
             .trading_value_fee_model(float(cfg.fees.truex_maker_bps) / 1e4,
                                      float(cfg.fees.truex_taker_bps) / 1e4)
             .tick_size(0.01).lot_size(float(cfg.instrument.lot_size)).last_trades_capacity(100_000))
    asset = asset.risk_adverse_queue_model() if cancels == "none" else asset.power_prob_queue_model(1.0)
    hbt = HashMapMarketDepthBacktest([asset])
    strategy = _strategy()
    t2 = time.perf_counter()
    q = cfg.quoting
    steps = int((md.end_ns - md.start_ns) // STEP_NS) + 2
    out_t = np.zeros(steps, np.int64)
    out_eq = np.full(steps, np.nan)
    out_pos = np.zeros(steps)
    out_mid = np.full(steps, np.nan)
    params: dict[str, Any] = {"qty": float(q.base_size_btc), "max_pos": float(cfg.inventory.max_position_btc),
              "grid_num": q.levels, "qtick": float(cfg.instrument.tick_size), "gamma": q.risk_aversion,
              "window": max(2, int(q.volatility_window_s * 1e9 // STEP_NS)), "per_s": 1e9 / STEP_NS,
              "post_only": q.post_only, "adj1": 1.0, "adj2": 0.05, "delta": 1.0}
    n = strategy(hbt, out_t, out_eq, out_pos, out_mid, params["qty"], params["max_pos"], params["grid_num"],
                 params["qtick"], params["gamma"], params["window"], params["per_s"], params["post_only"],
                 params["adj1"], params["adj2"], params["delta"])
    sv = hbt.state_values(0)
    final = {"position": float(hbt.position(0)), "balance": float(sv.balance), "fee": float(sv.fee),
             "trades": int(sv.num_trades), "volume": float(sv.trading_volume),
             "value": float(sv.trading_value)}
    t3 = time.perf_counter()
    hbt.close()
    series = {"t": out_t[:n], "equity": out_eq[:n], "position": out_pos[:n], "mid": out_mid[:n]}
    params["cancels"] = cancels if cancels != "all" else "prorata (no equivalent of 'all')"
    return HbtResult(name, series, final, t1 - t0, t2 - t1, t3 - t2, params)


# ---------------------------------------------------------------------------------------------------
# Fill-model cross-check
# ---------------------------------------------------------------------------------------------------
_SCHEDULE: Any = None


def _schedule_strategy() -> Any:
    global _SCHEDULE
    if _SCHEDULE is not None:
        return _SCHEDULE
    from hftbacktest import GTX, LIMIT
    from numba import njit

    @njit
    def schedule(hbt: Any, out_t: Any, out_b: Any, out_a: Any, off: float, qtick: float, qty: float) -> int:
        t = 0
        cur_b = 0.0
        cur_a = 0.0
        bid_id = 0
        ask_id = 0
        nid = 1
        while t < len(out_t) and hbt.elapse(100_000_000) == 0:
            hbt.clear_inactive_orders(0)
            d = hbt.depth(0)
            bb, ba = d.best_bid, d.best_ask
            out_t[t] = hbt.current_timestamp
            if np.isfinite(bb) and np.isfinite(ba) and ba > bb:
                b = np.floor((bb - off) / qtick) * qtick
                a = np.ceil((ba + off) / qtick) * qtick
                orders = hbt.orders(0)
                if b != cur_b:
                    if bid_id in orders:
                        hbt.cancel(0, bid_id, False)
                    nid += 1
                    bid_id = nid
                    hbt.submit_buy_order(0, bid_id, b, qty, GTX, LIMIT, False)
                    cur_b = b
                    out_b[t] = b
                if a != cur_a:
                    if ask_id in orders:
                        hbt.cancel(0, ask_id, False)
                    nid += 1
                    ask_id = nid
                    hbt.submit_sell_order(0, ask_id, a, qty, GTX, LIMIT, False)
                    cur_a = a
                    out_a[t] = a
            t += 1
        return t

    _SCHEDULE = schedule
    return schedule


def crosscheck(md: MarketData, *, offset: float = 1.0, qty_btc: float = 0.01, latency_ns: int = 5_000_000,
               cancels: str = "prorata",
               instrument: InstrumentConfig | None = None) -> dict[str, dict[str, float]]:
    """One order schedule through hftbacktest's exchange and through :class:`QueueVenue`; their fills."""
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    inst = Instrument.from_config(instrument or InstrumentConfig())
    qtick, lot = float(inst.tick_size), float(inst.lot_size)
    data, snap = to_events(md, 0)
    asset = (BacktestAsset().data(data).initial_snapshot(snap).linear_asset(1.0)
             .constant_order_latency(latency_ns, latency_ns).partial_fill_exchange()
             .trading_value_fee_model(0.0, 0.0).tick_size(0.01).lot_size(lot).last_trades_capacity(1000))
    asset = asset.risk_adverse_queue_model() if cancels == "none" else asset.power_prob_queue_model(1.0)
    hbt = HashMapMarketDepthBacktest([asset])
    n = int((md.end_ns - md.start_ns) // STEP_NS) + 2
    out_t, out_b, out_a = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
    steps = _schedule_strategy()(hbt, out_t, out_b, out_a, offset, qtick, qty_btc)
    sv = hbt.state_values(0)
    theirs = {"fills": float(sv.num_trades), "volume_btc": float(sv.trading_volume),
              "position_btc": float(hbt.position(0)), "value": float(sv.trading_value)}
    hbt.close()
    # the same requests reach our venue one latency after each step; its touch is the depth book's
    venue = QueueVenue(inst, maker_bps=Decimal(0), taker_bps=Decimal(0), cancels=cancels)  # type: ignore[arg-type]
    venue.load_levels(md.snap_bids, md.snap_asks)
    book = L2Book()
    book.load([tuple(r) for r in md.snap_bids.tolist()], [tuple(r) for r in md.snap_asks.tolist()])
    requests = sorted([(int(out_t[i]) + latency_ns, 1, float(out_b[i])) for i in range(steps) if out_b[i]]
                      + [(int(out_t[i]) + latency_ns, 2, float(out_a[i])) for i in range(steps) if out_a[i]])
    lots = round(qty_btc / lot)
    live: dict[int, str] = {}
    ids = 0
    r = 0
    kind, ts, a, b, c = md.kind.tolist(), md.t.tolist(), md.a.tolist(), md.b.tolist(), md.c.tolist()
    tick_e8 = venue.tick_e8
    for j in range(len(ts)):
        t = ts[j]
        while r < len(requests) and requests[r][0] < t:
            at, side, px = requests[r]
            r += 1
            if side in live:
                ids += 1
                venue.on_action(at, CancelOrder(f"c{ids}", live[side], Side(side)))
            ids += 1
            live[side] = f"o{ids}"
            venue.on_action(at, NewOrder(live[side], Side(side), round(px / qtick), lots, True))
        k = kind[j]
        if k == DEPTH:
            book.set_level("bid" if a[j] == 1 else "ask", b[j], c[j])
            if b[j] % tick_e8 == 0:
                venue.on_depth(t, a[j], b[j], c[j])
            if j + 1 == len(ts) or ts[j + 1] != t or kind[j + 1] != DEPTH:
                bb, ba = book.best_bid(), book.best_ask()
                if bb is not None and ba is not None:
                    venue.on_top(t, bb[0], ba[0])
        elif k == TRADE:
            venue.on_trade(t, a[j], b[j], c[j])
    st = venue.stats
    ours = {"fills": float(st.fills), "volume_btc": st.filled_lots * lot,
            "position_btc": venue.position_lots * lot,
            "value": sum(px * q for _, _, px, q, _ in venue.fill_log) * qtick * lot}
    return {"hftbacktest": theirs, "fastmm": ours}


def run_reference(cfg: Config, md: MarketData, opts: Any,
                  err: Any) -> tuple[HbtResult | None, dict[str, Any]]:
    """hftbacktest's GLFT grid on ``md`` as the reference row: compiled first on one second of data, then
    timed; ``(None, why)`` when hftbacktest is missing or fails (never a fake row). Progress on ``err``."""
    reason = unavailable_reason()
    if reason is not None:
        print(f"hftbacktest reference left out: {reason}", file=err)
        return None, {"included": False, "reason": reason}
    print("hftbacktest: running its GLFT grid on the same data (numba compiles it first: seconds)", file=err)
    t0 = time.perf_counter()
    try:
        kw = {"feed_latency_ns": opts.feed_latency_ns, "order_latency_ns": opts.order_latency_ns,
              "cancels": opts.cancels}
        run_hftbacktest(cfg, md.head(1.0), **kw)     # compiles the strategy (numba)
        first = time.perf_counter() - t0
        h = run_hftbacktest(cfg, md, **kw)            # the timed replay, compiled code only
        h.compile_s = first
    except Exception as e:   # a reference we do not control: report why, never a fake row
        logging.getLogger(__name__).exception("hftbacktest failed")
        reason = f"{type(e).__name__}: {e}"
        print(f"hftbacktest reference left out: {reason}", file=err)
        return None, {"included": False, "reason": reason}
    print(f"hftbacktest: {h.final['trades']} fills; compile {first:.2f} s, replay {h.run_s:.3f} s", file=err)
    return h, {"included": True, "compile_s": first, "params": h.params}
