"""The venue endpoints a config connects to, as (venue, what, host, port): what ``ops reach`` probes."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastmm.config import Config


def endpoints(cfg: Config) -> list[tuple[str, str, str, int]]:
    """(venue, what, host, port) of every endpoint the engine connects to."""
    out = [("truex", "order entry (FIX)", cfg.truex.order_entry.host, cfg.truex.order_entry.port),
           ("truex", "market data (FIX)", cfg.truex.market_data.host, cfg.truex.market_data.port)]
    urls = []
    if cfg.coinbase.enabled:
        urls.append(("coinbase", "websocket", cfg.coinbase.ws_url))
    if cfg.kraken.enabled:
        urls += [("kraken", "websocket", cfg.kraken.ws_url), ("kraken", "REST", cfg.kraken.rest_url)]
    for venue, what, url in urls:
        u = urlsplit(url)
        default = 443 if u.scheme in ("https", "wss") else 80
        out.append((venue, what, u.hostname or "", u.port or default))
    return out
