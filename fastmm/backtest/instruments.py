"""The quoted instrument of a backtest: the configuration's own, or another asset's tick, lot and sizes.

The configuration describes BTC-PYUSD on TrueX (0.50 tick, 0.0001 BTC lot, sizes in BTC). A recording
of another asset (``../shared/data`` has ETHUSDT beside BTCUSDT) is quoted with that asset's own tick
and lot, and the configuration's sizes (quote size, position limits, hedge sizes) scaled to about the
same notional, so one strategy configuration means the same risk on either. Explicit ``tick``/``lot``
win over the table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from fastmm.config import Config, ConfigError


@dataclass(frozen=True, slots=True)
class AssetScale:
    tick: Decimal          # price increment (quote currency)
    lot: Decimal           # size increment (base asset)
    per_btc: Decimal       # base units of about the notional of one BTC (2024-08: 60,000 / 2,600)


ASSETS: dict[str, AssetScale] = {
    "btc": AssetScale(Decimal("0.50"), Decimal("0.0001"), Decimal(1)),
    "eth": AssetScale(Decimal("0.01"), Decimal("0.001"), Decimal(20)),
}


def asset_of(symbol: str) -> str:
    """``btcusdt`` / ``BTC-PYUSD`` / ``ETH-USD`` -> ``btc`` / ``eth``; "" when unknown."""
    s = symbol.lower().replace("-", "").replace("_", "").replace("/", "")
    return next((a for a in ASSETS if s.startswith(a) or s.startswith("x" + a)), "")


def for_recording(cfg: Config, symbol: str, *, tick: Decimal | None = None,
                  lot: Decimal | None = None) -> Config:
    """``cfg`` quoting the recording's asset: unchanged for the configuration's own asset (BTC)."""
    own, rec = asset_of(cfg.instrument.symbol) or "btc", asset_of(symbol)
    out = cfg
    if rec and rec != own:
        a = ASSETS[rec]
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
