"""All embedded venues at once, configured from one Config: what ``fastmm sim`` and ``fastmm paper`` run.

The ports are the ones the engine's own config points at (TrueX order entry and market data, the
Coinbase and Kraken WebSocket URLs, the Kraken REST URL), so an engine and a simulator started from the
same config find each other. The credentials the simulators check are the engine's, from the
environment; :func:`paper_credentials` fills in throw-away ones for a paper session when none are set.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastmm.config import Config
from fastmm.data.binance import read_capture
from fastmm.data.coinbase_frames import read_frames
from fastmm.data.events import BookSnapshot, DepthDiff, Event, Trade
from fastmm.data.paths import BINANCE_CAPTURE, data_dir
from fastmm.instrument import Instrument
from fastmm.sim.background import SimThread
from fastmm.sim.coinbase import CbBook, CbUpdate, CoinbaseFaults, CoinbaseSettings, from_frames
from fastmm.sim.coinbase_server import CoinbaseSimServer
from fastmm.sim.kraken import KrakenSettings
from fastmm.sim.kraken_server import KrakenSimServer
from fastmm.sim.kraken_ws import KrakenWsSettings
from fastmm.sim.kraken_ws_server import KrakenWsSimServer
from fastmm.sim.truex import TruexSimSettings
from fastmm.sim.truex_matching import ExchangeRules
from fastmm.sim.truex_rest import TruexRestSim
from fastmm.sim.truex_server import TruexSimServer

log = logging.getLogger("fastmm.sim")

PAPER_TRUEX_KEY_ID = "paper-key"
PAPER_TRUEX_CLIENT_ID = "PAPER"
PAPER_KRAKEN_KEY = "paper-kraken-key"


def paper_credentials(environ: MutableMapping[str, str]) -> list[str]:
    """Set throw-away venue credentials for a paper session where none are configured; returns the
    names of the variables it set. Secrets are random per run and never printed."""
    made = []
    defaults = {
        "FASTMM_TRUEX_API_KEY_ID": PAPER_TRUEX_KEY_ID,
        "FASTMM_TRUEX_API_SECRET": secrets.token_urlsafe(24),
        "FASTMM_TRUEX_CLIENT_ID": PAPER_TRUEX_CLIENT_ID,
        "FASTMM_KRAKEN_API_KEY": PAPER_KRAKEN_KEY,
        "FASTMM_KRAKEN_API_SECRET": base64.b64encode(secrets.token_bytes(64)).decode(),
    }
    for k, v in defaults.items():
        if not environ.get(k):
            environ[k] = v
            made.append(k)
    return made


def _port(url: str) -> int:
    p = urlsplit(url).port
    if p is None:
        raise ValueError(f"{url}: the simulator needs an explicit port")
    return p


def capture_path(cfg: Config) -> Path:
    base = Path(cfg.sim.data_dir) if cfg.sim.data_dir else data_dir()
    return base / BINANCE_CAPTURE if (base / BINANCE_CAPTURE).is_dir() else base


def is_frames(path: Path) -> bool:
    """A recorded Advanced Trade frames file (JSONL ``{"t_ns", "frame"}``) rather than a Binance capture;
    an unreadable path is a :class:`DataError` naming it."""
    from fastmm.backtest.readers import COINBASE, sniff

    return sniff(path) == COINBASE


def _head(it: Iterable[Any], n: int | None) -> Iterator[Any]:
    return iter(it) if n is None else islice(it, n)


def frame_events(path: Path, product_id: str, max_lines: int | None = None) -> Iterator[Event]:
    """Recorded Coinbase frames as the capture's events, for the TrueX and Kraken simulators: the book
    snapshot (update id 0), each l2 update as a diff with the next update id, each market trade."""
    seq = n_trades = 0
    for ev in from_frames(_head(read_frames(path), max_lines), product_id):
        if isinstance(ev, CbBook):
            yield BookSnapshot(ev.recv_ns, seq, tuple(ev.bids), tuple(ev.asks))
        elif isinstance(ev, CbUpdate):
            seq += 1
            bids = tuple((p, q) for side, p, q in ev.changes if side == "bid")
            asks = tuple((p, q) for side, p, q in ev.changes if side == "offer")
            yield DepthDiff(ev.recv_ns, ev.ts_ns // 1_000_000, seq, seq, bids, asks)
        elif not ev.snapshot:
            for t in ev.trades:   # the side is the maker's: a BUY maker is a buyer who made
                ms = t.time_ns // 1_000_000
                n_trades += 1
                yield Trade(ev.recv_ns, ms, ms, n_trades, t.price, t.size, t.side == "BUY")


@dataclass
class VenueSet:
    truex: TruexSimServer
    truex_rest: TruexRestSim
    coinbase: CoinbaseSimServer | None
    kraken: KrakenSimServer | None
    kraken_ws: KrakenWsSimServer | None
    addresses: dict[str, str]

    async def stop(self) -> None:
        for s in (self.truex_rest, self.truex, self.coinbase, self.kraken, self.kraken_ws):
            if s is not None:
                await s.stop()

    @property
    def finished(self) -> bool:
        return self.truex.exchange.finished


def build(cfg: Config, *, host: str = "127.0.0.1", faults: CoinbaseFaults | None = None,
          ephemeral: bool = False) -> tuple[VenueSet, dict[str, int]]:
    """The four simulators (not started) and the ports they are to listen on (0 with ``ephemeral``)."""
    s = cfg.sim
    path = capture_path(cfg)
    max_lines = s.max_lines or None

    frames = is_frames(path)

    def events() -> Any:
        if frames:
            return frame_events(path, cfg.coinbase.product_id, max_lines)
        return read_capture(path, max_lines=max_lines)

    instrument = Instrument.from_config(cfg.instrument)
    key_id = cfg.truex.api_key_id.reveal() if cfg.truex.api_key_id else PAPER_TRUEX_KEY_ID
    secret = cfg.truex.api_secret.reveal() if cfg.truex.api_secret else ""
    client_id = cfg.truex.client_id.reveal() if cfg.truex.client_id else PAPER_TRUEX_CLIENT_ID
    rules = ExchangeRules(client_id=client_id, min_notional=cfg.venue_rules.min_notional,
                          price_band_pct=cfg.venue_rules.price_band_pct,
                          max_msgs_per_sec=s.truex_max_msgs_per_sec,
                          max_msgs_per_min=s.truex_max_msgs_per_min,
                          duplicate_window_ns=s.truex_duplicate_window_ms * 1_000_000,
                          maker_fee_bps=s.truex_maker_bps, taker_fee_bps=s.truex_taker_bps,
                          crossing_replace=s.crossing_replace)
    tsettings = TruexSimSettings(
        oe_comp_id=cfg.truex.order_entry.target_comp_id, md_comp_id=cfg.truex.market_data.target_comp_id,
        client_comp_id=cfg.truex.order_entry.sender_comp_id, api_key_id=key_id, api_secret=secret,
        rules=rules, speed=s.speed, taker_probability=s.taker_probability,
        taker_size_scale=s.taker_size_scale, taker_reach_bps=s.taker_reach_bps,
        synthetic_levels=s.synthetic_levels, synthetic_step_bps=s.synthetic_step_bps,
        synthetic_lots=s.synthetic_lots, seed=s.seed)
    if cfg.truex.market_data.sender_comp_id != cfg.truex.order_entry.sender_comp_id:
        raise ValueError("the TrueX simulator expects one client CompID for order entry and market data")
    truex = TruexSimServer(instrument, events(), tsettings, heartbeat_s=cfg.truex.order_entry.heartbeat_s)
    coinbase = kraken = kraken_ws = None
    if cfg.coinbase.enabled:
        cs = CoinbaseSettings(product_id=cfg.coinbase.product_id, speed=s.speed,
                              faults=faults or CoinbaseFaults())
        if frames:
            coinbase = CoinbaseSimServer(from_frames(_head(read_frames(path), max_lines), cs.product_id), cs)
        else:
            coinbase = CoinbaseSimServer.from_capture(path, cs, max_lines=max_lines)
    kkey = cfg.kraken.api_key.reveal() if cfg.kraken.api_key else ""
    ksecret = cfg.kraken.api_secret.reveal() if cfg.kraken.api_secret else ""
    ksettings = KrakenSettings(keys={kkey: ksecret} if kkey and ksecret else {},
                               balances={"ZUSD": s.kraken_balance_usd, "XXBT": s.kraken_balance_btc},
                               maker_fee_bps=cfg.fees.kraken_maker_bps,
                               taker_fee_bps=cfg.fees.kraken_taker_bps,
                               speed=s.speed, seed=s.seed)
    kraken = KrakenSimServer(events(), ksettings)
    if cfg.kraken.enabled:
        kraken_ws = KrakenWsSimServer(events(), replace(KrakenWsSettings(), symbol=cfg.kraken.ws_symbol,
                                                        speed=s.speed))
    ports = {
        "truex_oe": 0 if ephemeral else cfg.truex.order_entry.port,
        "truex_md": 0 if ephemeral else cfg.truex.market_data.port,
        "truex_rest": 0 if ephemeral else _port(cfg.truex.rest_url),
        "coinbase": 0 if ephemeral else _port(cfg.coinbase.ws_url),
        "kraken": 0 if ephemeral else _port(cfg.kraken.rest_url),
        "kraken_ws": 0 if ephemeral else _port(cfg.kraken.ws_url),
    }
    return VenueSet(truex, TruexRestSim(truex), coinbase, kraken, kraken_ws, {}), ports


async def start(cfg: Config, *, host: str = "127.0.0.1", faults: CoinbaseFaults | None = None,
                ephemeral: bool = False) -> VenueSet:
    venues, ports = build(cfg, host=host, faults=faults, ephemeral=ephemeral)
    started: list[Any] = []
    try:
        oe, md = await venues.truex.start(host, ports["truex_oe"], ports["truex_md"])
        started.append(venues.truex)
        addr = {"truex order entry": f"{host}:{oe}", "truex market data": f"{host}:{md}"}
        p = await venues.truex_rest.start(host, ports["truex_rest"])
        started.append(venues.truex_rest)
        addr["truex rest"] = f"http://{host}:{p}"
        if venues.coinbase is not None:
            p = await venues.coinbase.start(host, ports["coinbase"])
            started.append(venues.coinbase)
            addr["coinbase ws"] = f"ws://{host}:{p}"
        if venues.kraken is not None:
            p = await venues.kraken.start(host, ports["kraken"])
            started.append(venues.kraken)
            addr["kraken rest"] = f"http://{host}:{p}"
        if venues.kraken_ws is not None:
            p = await venues.kraken_ws.start(host, ports["kraken_ws"])
            started.append(venues.kraken_ws)
            addr["kraken ws"] = f"ws://{host}:{p}"
    except BaseException:
        for s in started:
            await s.stop()
        raise
    venues.addresses = addr
    return venues


class VenueSetServer:
    """The whole venue set as one :class:`SimThread` server (``start(host, port)`` / ``stop()``), on
    ephemeral ports."""

    def __init__(self, cfg: Config, faults: CoinbaseFaults | None = None) -> None:
        self.cfg = cfg
        self.faults = faults
        self.venues: VenueSet | None = None

    async def start(self, host: str, port: int) -> int:
        self.venues = await start(self.cfg, host=host, faults=self.faults, ephemeral=True)
        return 0

    async def stop(self) -> None:
        if self.venues is not None:
            await self.venues.stop()


def start_in_thread(cfg: Config, *, faults: CoinbaseFaults | None = None,
                    timeout: float = 120.0) -> tuple[SimThread, VenueSet]:
    """Every simulator of ``cfg`` on 127.0.0.1 in a background thread (``fastmm paper``, process tests);
    the caller closes the thread, which stops them. A failed start closes it here."""
    sims = SimThread()
    try:
        server, _ = sims.start(lambda: VenueSetServer(cfg, faults), timeout=timeout)
    except BaseException:
        sims.close()
        raise
    assert server.venues is not None
    return sims, server.venues


def config_for(cfg: Config, venues: VenueSet) -> dict[str, str]:
    """FASTMM_* overrides that point an engine at ``venues`` (for ephemeral ports)."""
    a = venues.addresses
    env = {"FASTMM_TRUEX__ORDER_ENTRY__PORT": a["truex order entry"].rsplit(":", 1)[1],
           "FASTMM_TRUEX__MARKET_DATA__PORT": a["truex market data"].rsplit(":", 1)[1]}
    if "truex rest" in a:
        env["FASTMM_TRUEX__REST_URL"] = a["truex rest"]
    if "coinbase ws" in a:
        env["FASTMM_COINBASE__WS_URL"] = a["coinbase ws"]
    if "kraken rest" in a:
        env["FASTMM_KRAKEN__REST_URL"] = a["kraken rest"]
    if "kraken ws" in a:
        env["FASTMM_KRAKEN__WS_URL"] = a["kraken ws"]
    return env


async def serve_forever(cfg: Config, stop: asyncio.Event, *, faults: CoinbaseFaults | None = None,
                        out: Any = None) -> int:
    venues = await start(cfg, faults=faults)
    for name, where in venues.addresses.items():
        print(f"{name:<18} {where}", file=out, flush=True)
    try:
        await stop.wait()
    finally:
        await venues.stop()
    return 0

