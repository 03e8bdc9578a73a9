"""The quoted instrument of a backtest: the configuration's own, or another asset's tick, lot and sizes.

The configuration describes BTC-PYUSD on TrueX (0.50 tick, 0.0001 BTC lot, sizes in BTC). A recording
of another asset (``../shared/data`` has ETHUSDT beside BTCUSDT) is quoted with that asset's own tick
and lot, and the configuration's sizes (quote size, position limits, hedge sizes) scaled to about the
same notional, so one strategy configuration means the same risk on either. An asset the table does
not know is read from its own recording (:func:`scale_from_data`): the finest price and size steps it
printed, and sizes of the notional of one BTC at the table's price, so a recording of any USD-quoted
instrument is quoted as its venue trades it, never with BTC's 0.50 tick. Explicit ``tick``/``lot`` win
over both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np

from fastmm.config import Config, ConfigError
from fastmm.units import E8

if TYPE_CHECKING:
    from fastmm.backtest.market import MarketData


@dataclass(frozen=True, slots=True)
class AssetScale:
    tick: Decimal          # price increment (quote currency)
    lot: Decimal           # size increment (base asset)
    per_btc: Decimal       # base units of about the notional of one BTC (2024-08: 60,000 / 2,600)


ASSETS: dict[str, AssetScale] = {
    "btc": AssetScale(Decimal("0.50"), Decimal("0.0001"), Decimal(1)),
    "eth": AssetScale(Decimal("0.01"), Decimal("0.001"), Decimal(20)),
}
BTC_NOTIONAL = Decimal(60000)   # one BTC in the quote currency when the table was set (2024-08)
_QUOTES = ("fdusd", "pyusd", "usdt", "usdc", "busd", "usd")


def scale_from_data(md: MarketData) -> AssetScale:
    """An unknown asset's scale from its recording: the tick is the greatest common divisor of every price
    it printed (book levels, tops, trades: the finest step the venue used), the lot that of every size,
    and ``per_btc`` the notional of one BTC over the recording's median mid (a USD-quoted instrument)."""
    from fastmm.backtest.market import TOP

    top = md.kind == TOP
    prices = np.concatenate([md.snap_bids[:, 0], md.snap_asks[:, 0], md.b[~top], md.a[top], md.b[top]])
    sizes = np.concatenate([md.snap_bids[:, 1], md.snap_asks[:, 1], md.c, md.d[top]])
    prices, sizes = prices[prices > 0], sizes[sizes > 0]
    if not len(prices) or not len(sizes) or not top.any():
        raise ConfigError(f"{md.symbol}: an unknown asset needs prices, sizes and tops in its recording to "
                          "read its tick, lot and notional from (or give --tick and --lot)")
    mid = Decimal(int(np.median((md.a[top] + md.b[top]) // 2))) / E8
    tick_e8, lot_e8 = int(np.gcd.reduce(prices)), int(np.gcd.reduce(sizes))
    return AssetScale(Decimal(tick_e8) / E8, Decimal(lot_e8) / E8, BTC_NOTIONAL / mid)


def base_of(symbol: str) -> str:
    """``solusdt`` -> ``sol``: the symbol without its quote currency (what an unknown asset is called)."""
    s = symbol.lower().replace("-", "").replace("_", "").replace("/", "")
    return next((s[:-len(q)] for q in _QUOTES if s.endswith(q) and len(s) > len(q)), s)


def asset_of(symbol: str) -> str:
    """``btcusdt`` / ``BTC-PYUSD`` / ``ETH-USD`` -> ``btc`` / ``eth``; "" when unknown."""
    s = symbol.lower().replace("-", "").replace("_", "").replace("/", "")
    return next((a for a in ASSETS if s.startswith(a) or s.startswith("x" + a)), "")


def for_recording(cfg: Config, symbol: str, *, tick: Decimal | None = None,
                  lot: Decimal | None = None, data: MarketData | None = None) -> Config:
    """``cfg`` quoting the recording's asset: unchanged for the configuration's own asset (BTC); an asset
    outside the table is scaled from ``data`` (its recording) when given, else quoted as configured."""
    own, rec = asset_of(cfg.instrument.symbol) or "btc", asset_of(symbol)
    out = cfg
    scale = ASSETS.get(rec) if rec else (scale_from_data(data) if data is not None else None)
    if scale is not None and rec != own:
        a = scale
        rec = rec or base_of(symbol)
        f = a.per_btc / ASSETS[own].per_btc

        def sz(x: Decimal) -> Decimal:
            return (x * f).quantize(a.lot) if x * f >= a.lot else a.lot

        q, inv, h = cfg.quoting, cfg.inventory, cfg.hedge
        out = replace(
            cfg,
            instrument=replace(cfg.instrument, symbol=f"{rec.upper()}-PYUSD", tick_size=a.tick,
                               lot_size=a.lot),
            quoting=replace(q, base_size_btc=sz(q.base_size_btc)),
            inventory=replace(inv, max_position_btc=sz(inv.max_position_btc),
                              hedge_threshold_btc=inv.hedge_threshold_btc * f,
                              emergency_position_btc=sz(inv.emergency_position_btc)),
            hedge=replace(h, min_hedge_btc=sz(h.min_hedge_btc), max_hedge_btc=sz(h.max_hedge_btc)))
    if tick is not None or lot is not None:
        if (tick is not None and tick <= 0) or (lot is not None and lot <= 0):
            raise ConfigError("--tick and --lot must be positive")
        out = replace(out, instrument=replace(out.instrument, tick_size=tick or out.instrument.tick_size,
                                              lot_size=lot or out.instrument.lot_size))
    return out
