"""What a backtest run earned and how: metrics, a text table, JSON and PNG plots.

Definitions (the JSON carries them too, under ``definitions``):

* PnL: the core's own :class:`~fastmm.core.pnl.PnLTracker` (FIFO realized, unrealized at the last fair
  mid, fees of both venues), exact to 1e-8 PYUSD. Nothing is liquidated at the end.
* Sharpe: total PnL sampled every ``sample_ns`` (1 s) of event time on a grid from the start (the
  value at each grid point is the value at the last timer tick at or before it); the increments' mean
  over their standard deviation, per sample (not annualised), and annualised by
  sqrt(365 x 86400 s / sample) since crypto trades around the clock. Over minutes of data it is noise.
* Maximum drawdown: the core's, the largest fall of total PnL from its running peak at any mark or fill.
* Fill ratio: orders that got at least one fill over orders placed (new orders; a replace is the same
  order); quote fill ratio: lots filled over lots quoted (new orders and replaces to a new price/size).
* Spread capture and markouts (1 s, 5 s, 30 s): the core's: side x (fair mid - fill price) in bps of
  the fill price, volume weighted, at the fill and at the first mark after fill + horizon.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from fastmm.backtest.engine import BacktestResult
from fastmm.backtest.hftbt import HbtResult
from fastmm.config import Config
from fastmm.core.money import to_units
from fastmm.units import E8

YEAR_S = 365 * 86400

DEFINITIONS = {
    "pnl": "core PnLTracker: FIFO realized, unrealized at the last fair mid, fees of both venues; PYUSD",
    "sharpe_per_sample": "mean / stdev of total-PnL increments on a 1 s event-time grid, not annualised",
    "sharpe_annualised": "sharpe_per_sample x sqrt(365 x 86400 / 1 s)",
    "max_drawdown": "largest fall of total PnL from its running peak at any mark or fill (PYUSD)",
    "fill_ratio": "orders with at least one fill / new orders placed",
    "quote_fill_ratio": "lots filled / lots quoted (new orders and replaces to a new price or size)",
    "spread_capture_bps": "side x (fair mid at fill - fill price) / fill price, volume weighted",
    "markout_bps": "side x (fair mid at fill + horizon - fill price) / fill price, volume weighted",
    "pnl_split": "total = spread_capture + inventory - truex_fees - hedge_cost: spread_capture = sum of "
                 "side x (fair mid - price) x qty at TrueX fills; hedge_cost = Kraken fees + what hedges "
                 "paid over the fair mid; inventory = the rest (the mark of the position held)",
}


def grid_values(t: np.ndarray, v: np.ndarray, start: int, end: int, step: int) -> np.ndarray:
    """Values of a step series (``v[i]`` from ``t[i]`` on) at start, start + step, ..., <= end; 0 before
    the first point."""
    grid = np.arange(start, end + 1, step, dtype=np.int64)
    idx = np.searchsorted(t, grid, side="right") - 1
    out = np.zeros(len(grid), dtype=np.float64)
    ok = idx >= 0
    out[ok] = v[idx[ok]]
    return out


def sharpe(values: np.ndarray, sample_s: float) -> tuple[float | None, float | None]:
    """(per sample, annualised) Sharpe of the increments of ``values``; None when flat."""
    inc = np.diff(values)
    if len(inc) < 2:
        return None, None
    sd = float(np.std(inc, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return None, None
    s = float(np.mean(inc)) / sd
    return s, s * math.sqrt(YEAR_S / sample_s)


def _money(units: int) -> float:
    return units / E8


def _dec(d: Decimal | None) -> float | None:
    return None if d is None else float(d)


def pnl_split(r: BacktestResult) -> dict[str, float]:
    """Total PnL split into spread capture, inventory (mark), TrueX fees and hedge cost (PYUSD)."""
    led = r.core_ledger
    fees = r.summary.fees_by_venue
    truex = to_units(Decimal(fees.get("truex", 0)))
    kraken = to_units(Decimal(fees.get("kraken", 0)))
    total = to_units(r.summary.total)
    capture = led["capture_units"]
    hedge_cost = kraken - led["hedge_slip_units"]
    inventory = total - capture + truex + hedge_cost
    return {"spread_capture": _money(capture), "inventory": _money(inventory), "truex_fees": _money(truex),
            "hedge_cost": _money(hedge_cost)}


def metrics(r: BacktestResult) -> dict[str, Any]:
    """One row of the report for a fastmm run."""
    s = r.summary
    st = r.venue
    lot = float(r.cfg.instrument.lot_size)
    ser = r.series
    step = r.opts.sample_ns
    pnl = ser["pnl_units"].astype(np.float64) / E8
    pnl_grid = grid_values(ser["t"], pnl, r.start_ns, r.end_ns, step)
    sh, sh_ann = sharpe(pnl_grid, step / 1e9)
    pos = ser["position"] * lot
    led = r.core_ledger
    conserved = (led["cash_units"] + led["position_lots"] * led["mark_units_per_lot"]
                 == led["realized_units"] + led["unrealized_units"] - led["fees_units"])
    v = r.venue_ledger   # TrueX and Kraken as the models booked them, against the core's own books
    venue_agrees = (v["cash_units"] == led["cash_units"] and v["fees_units"] == led["fees_units"]
                    and v["position_lots"] == led["position_lots"])
    return {
        "strategy": r.name,
        "engine": "fastmm",
        "model": r.cfg.quoting.model,
        "total": float(s.total), "realized": float(s.realized), "unrealized": float(s.unrealized),
        "fees": float(s.fees), "fees_by_venue": {k: float(v) for k, v in s.fees_by_venue.items()},
        "pnl_split": pnl_split(r),
        "sharpe_per_sample": sh, "sharpe_annualised": sh_ann, "sharpe_sample_s": step / 1e9,
        "max_drawdown": float(s.max_drawdown),
        "fills": st.fills, "maker_fills": st.maker_fills, "taker_fills": st.taker_fills,
        "filled_btc": st.filled_lots * lot, "orders": st.orders, "orders_filled": st.orders_filled,
        "fill_ratio": st.orders_filled / st.orders if st.orders else None,
        "quote_fill_ratio": st.filled_lots / st.quoted_lots if st.quoted_lots else None,
        "replaces": st.replaces, "cancels": st.cancels, "rejects": st.rejects,
        "cancel_rejects": st.cancel_rejects,
        "spread_capture_bps": s.avg_spread_capture_bps,
        "markouts": {f"{m.horizon_s:g}s": {"fills": m.fills, "bps": m.avg_bps,
                                           "pyusd_per_btc": _dec(m.avg_pyusd)} for m in s.markouts},
        "position_btc": s.position_lots * lot,
        "inventory": {"final_btc": s.position_lots * lot, "min_btc": float(pos.min()) if len(pos) else 0.0,
                      "max_btc": float(pos.max()) if len(pos) else 0.0,
                      "mean_abs_btc": float(np.abs(pos).mean()) if len(pos) else 0.0},
        "hedges": len(r.hedges), "hedged_btc": sum(v for _, _, v, _, _ in r.hedges) / E8,
        "risk_events": r.risk_events,
        "pnl_conserved": conserved,
        "venue_ledger_agrees": venue_agrees,
        "replay_s": r.replay_s,
        "events": r.counts,
    }


def hbt_metrics(h: HbtResult, start_ns: int, end_ns: int, sample_ns: int = 1_000_000_000) -> dict[str, Any]:
    """The comparable row for the hftbacktest reference (what it exposes: no per-fill markouts)."""
    t, eq = h.series["t"], h.series["equity"]
    ok = np.isfinite(eq)
    t, eq = t[ok], eq[ok]
    grid = grid_values(t, eq, start_ns, end_ns, sample_ns) if len(t) else np.zeros(0)
    sh, sh_ann = sharpe(grid, sample_ns / 1e9)
    dd = 0.0
    if len(eq):
        peak = np.maximum.accumulate(np.concatenate([[0.0], eq]))[1:]
        dd = float(np.max(peak - eq))
    pos = h.series["position"]
    f = h.final
    mid = float(h.series["mid"][ok][-1]) if ok.any() else float("nan")
    return {
        "strategy": h.name, "engine": "hftbacktest", "model": "glft (hftbacktest tutorial)",
        "total": float(eq[-1]) if len(eq) else 0.0,
        "realized": None, "unrealized": None, "mark": mid if math.isfinite(mid) else None,
        "fees": f["fee"], "sharpe_per_sample": sh, "sharpe_annualised": sh_ann,
        "sharpe_sample_s": sample_ns / 1e9,
        "max_drawdown": dd, "max_drawdown_sampling": "per 100 ms step",
        "fills": f["trades"], "filled_btc": f["volume"], "fill_ratio": None, "spread_capture_bps": None,
        "markouts": None, "position_btc": f["position"],
        "inventory": {"final_btc": f["position"], "min_btc": float(pos.min()) if len(pos) else 0.0,
                      "max_btc": float(pos.max()) if len(pos) else 0.0,
                      "mean_abs_btc": float(np.abs(pos).mean()) if len(pos) else 0.0},
        "replay_s": h.run_s, "convert_s": h.convert_s, "build_s": h.build_s, "compile_s": h.compile_s,
        "params": h.params,
    }


# -- text ---------------------------------------------------------------------------------------------
def _f(x: Any, fmt: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, fmt)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table of the main figures, one row per run."""
    head = (f"{'strategy':<22}{'total':>10}{'realized':>10}{'unreal':>9}{'fees':>8}{'sharpe1s':>9}"
            f"{'ann.':>8}{'maxDD':>8}{'fills':>6}{'fill%':>6}{'capt':>6}{'mk1s':>6}{'mk5s':>6}{'mk30s':>6}"
            f"{'posBTC':>8}{'replay s':>9}")
    out = [head, "-" * len(head)]
    for r in rows:
        mk = r.get("markouts") or {}

        def m(h: str, mk: dict = mk) -> Any:
            return (mk.get(h) or {}).get("bps")

        fr = r.get("fill_ratio")
        sp = r.get("pnl_split") or {}
        out.append(
            f"{r['strategy'][:21]:<22}{_f(r['total'], '.2f'):>10}{_f(r.get('realized'), '.2f'):>10}"
            f"{_f(r.get('unrealized'), '.2f'):>9}{_f(r.get('fees'), '.2f'):>8}"
            f"{_f(sp.get('spread_capture'), '.2f'):>8}{_f(sp.get('inventory'), '.2f'):>8}"
            f"{_f(sp.get('hedge_cost'), '.2f'):>8}"
            f"{_f(r.get('sharpe_per_sample'), '.3f'):>9}{_f(r.get('sharpe_annualised'), '.0f'):>8}"
            f"{_f(r.get('max_drawdown'), '.2f'):>8}{r.get('fills', 0):>6}"
            f"{_f(None if fr is None else 100 * fr, '.0f'):>6}{_f(r.get('spread_capture_bps'), '.2f'):>6}"
            f"{_f(m('1s'), '.2f'):>6}{_f(m('5s'), '.2f'):>6}{_f(m('30s'), '.2f'):>6}"
            f"{_f(r.get('position_btc'), '.4f'):>8}{_f(r.get('replay_s'), '.3f'):>9}")
    out.append("PnL and fees in PYUSD; sharpe1s: 1 s PnL increments, not annualised "
               "(ann.: x sqrt(365x86400)); capt$/inv$/hedge$: the PnL split in PYUSD "
               "(total = capt$ + inv$ - TrueX fees - hedge$); capt/mk: bps")
    return "\n".join(out)


# -- JSON ---------------------------------------------------------------------------------------------
def series_json(r: BacktestResult) -> dict[str, list[Any]]:
    """The run's series on the 1 s grid (what the plots show), for the JSON report."""
    s = r.series
    step = r.opts.sample_ns
    lot = float(r.cfg.instrument.lot_size)
    tick = float(r.cfg.instrument.tick_size)
    grid = np.arange(r.start_ns, r.end_ns + 1, step, dtype=np.int64)

    def at(v: np.ndarray) -> np.ndarray:
        return grid_values(s["t"], v.astype(np.float64), r.start_ns, r.end_ns, step)

    return {
        "t_s": ((grid - r.start_ns) / 1e9).round(3).tolist(),
        "pnl": (at(s["pnl_units"]) / E8).round(8).tolist(),
        "realized": (at(s["realized_units"]) / E8).round(8).tolist(),
        "fees": (at(s["fees_units"]) / E8).round(8).tolist(),
        "position_btc": (at(s["position"]) * lot).round(8).tolist(),
        "mid": at(s["mid"]).round(4).tolist(),
        "bid": (at(s["bid"]) * tick).tolist(),
        "ask": (at(s["ask"]) * tick).tolist(),
    }


# -- plots --------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise RuntimeError("plots need matplotlib: .venv/bin/pip install matplotlib") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(results: Sequence[BacktestResult], out_dir: str | Path, hbt: HbtResult | None = None,
         main: str = "configured") -> list[Path]:
    """pnl.png (every run), inventory.png (every run), quotes.png (the ``main`` run against the mid)."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if not results:
        return files
    start = results[0].start_ns

    def mins(t: np.ndarray) -> np.ndarray:
        return (t - start) / 60e9

    fig, ax = plt.subplots(figsize=(11, 5))
    for r in results:
        ax.plot(mins(r.series["t"]), r.series["pnl_units"] / E8, label=f"{r.name} total", lw=1)
    if hbt is not None:
        ok = np.isfinite(hbt.series["equity"])
        ax.plot(mins(hbt.series["t"][ok]), hbt.series["equity"][ok], label=f"{hbt.name} total", lw=1, ls="--")
    m = next((r for r in results if r.name == main), results[0])
    ax.plot(mins(m.series["t"]), m.series["realized_units"] / E8, label=f"{m.name} realized", lw=0.8,
            alpha=0.7)
    ax.plot(mins(m.series["t"]), -m.series["fees_units"] / E8, label=f"{m.name} -fees", lw=0.8,
            alpha=0.7)
    ax.set_xlabel("minutes")
    ax.set_ylabel("PYUSD")
    ax.set_title("PnL (marked to the fair mid)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    files.append(_save(fig, out / "pnl.png", plt))

    fig, ax = plt.subplots(figsize=(11, 4))
    for r in results:
        ax.step(mins(r.series["t"]), r.series["position"] * float(r.cfg.instrument.lot_size), where="post",
                label=r.name, lw=1)
    if hbt is not None:
        ax.step(mins(hbt.series["t"]), hbt.series["position"], where="post", label=hbt.name, lw=1, ls="--")
    ax.set_xlabel("minutes")
    ax.set_ylabel("BTC")
    ax.set_title("Inventory")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    files.append(_save(fig, out / "inventory.png", plt))

    fig, ax = plt.subplots(figsize=(11, 5))
    tick = float(m.cfg.instrument.tick_size)
    t = mins(m.series["t"])
    mid = m.series["mid"]
    ax.plot(t, np.where(mid > 0, mid, np.nan), color="k", lw=0.8, label="fair mid")
    bid = np.where(m.series["bid"] > 0, m.series["bid"] * tick, np.nan)
    ask = np.where(m.series["ask"] > 0, m.series["ask"] * tick, np.nan)
    ax.step(t, bid, where="post", color="tab:green", lw=0.8, label="our best bid")
    ax.step(t, ask, where="post", color="tab:red", lw=0.8, label="our best ask")
    if m.fills:
        f = np.array(m.fills, dtype=np.int64)
        buys = f[:, 1] == 1
        ax.scatter(mins(f[buys, 0]), f[buys, 2] * tick, marker="^", color="tab:green", s=14, label="buy fill")
        ax.scatter(mins(f[~buys, 0]), f[~buys, 2] * tick, marker="v", color="tab:red", s=14,
                   label="sell fill")
    ax.set_xlabel("minutes")
    ax.set_ylabel("PYUSD")
    ax.set_title(f"Quotes against the mid: {m.name} ({m.cfg.quoting.model})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    files.append(_save(fig, out / "quotes.png", plt))
    return files


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- JSON ---------------------------------------------------------------------------------------------
def json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def config_json(cfg: Config) -> dict[str, Any]:
    return {name: dataclasses.asdict(getattr(cfg, name))
            for name in ("instrument", "quoting", "venue_rules", "inventory", "fees", "hedge", "risk",
                         "pricing")}


def clean_json(o: Any) -> Any:
    """NaN and infinities become null (JSON has no such numbers); tuples become lists."""
    if isinstance(o, float):
        return o if o == o and abs(o) != float("inf") else None
    if isinstance(o, dict):
        return {k: clean_json(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [clean_json(v) for v in o]
    return o


def to_json(doc: dict[str, Any]) -> str:
    """The report document as JSON text: NaN and infinities as null, Decimals as text, dataclasses and
    arrays as plain values."""
    return json.dumps(clean_json(doc), default=json_default, indent=1, allow_nan=False) + "\n"
