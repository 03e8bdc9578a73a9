"""One typed configuration for every fastmm process.

Read from a TOML file, then overridden by environment variables:

* ``FASTMM_<SECTION>__<KEY>=value`` overrides any setting (the value is parsed as a TOML
  value when it can be, otherwise taken as a string), e.g. ``FASTMM_QUOTING__LEVELS=3``.
* Secrets come only from the environment (``FASTMM_TRUEX_API_KEY_ID``, ``FASTMM_TRUEX_API_SECRET``,
  ``FASTMM_TRUEX_CLIENT_ID``, ``FASTMM_KRAKEN_API_KEY``, ``FASTMM_KRAKEN_API_SECRET``,
  ``FASTMM_DB_PASSWORD``, ``FASTMM_REDIS_PASSWORD``); a secret in the
  TOML file is an error, so none ends up in a repository.

Every problem (unknown key, wrong type, value out of range) raises :class:`ConfigError` with one line
naming the key, before anything starts. Quantities of money and size are ``Decimal`` here and become
integer ticks and lots in :mod:`fastmm.instrument`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from fastmm.units import step_e8

ENV_PREFIX = "FASTMM_"


class ConfigError(ValueError):
    """A configuration problem, with a message of one line that names the key."""


class Secret:
    """A credential that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("a Secret is not pickled: pass it through the environment")


def _f(default: Any, lo: Any = None, hi: Any = None, doc: str = "", **kw: Any) -> Any:
    """A config field with a default, an inclusive range and a one-line description."""
    meta = {"lo": lo, "hi": hi, "doc": doc}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


def _secret() -> Any:
    return field(default_factory=lambda: Secret(""), metadata={"secret": True}, repr=False)


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    name: str = _f("default", doc="instance name; scopes shared memory (/fastmm.<name>.*) and state")
    state_dir: str = _f("var", doc="folder for journal, FIX sequence store, Kraken nonce")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _f("INFO")


@dataclass(frozen=True, slots=True)
class InstrumentConfig:
    symbol: str = _f("BTC-PYUSD")
    security_type: str = _f("CSPOT")
    tick_size: Decimal = _f(Decimal("0.50"), Decimal("0.00000001"), Decimal("1000000"), doc="PYUSD")
    lot_size: Decimal = _f(Decimal("0.0001"), Decimal("0.00000001"), Decimal("1"), doc="BTC")


@dataclass(frozen=True, slots=True)
class QuotingConfig:
    model: Literal["ladder", "avellaneda_stoikov", "glft", "edge"] = _f(
        "edge", doc="edge: the [edge] section's fair value, fade and cost-charging spread")
    levels: int = _f(1, 1, 50, doc="quote levels per side")
    base_spread_bps: Decimal = _f(Decimal(50), Decimal(0), Decimal(5000), doc="full spread at level 1")
    level_spacing_ticks: int = _f(1, 1, 10000)
    reprice_threshold_ticks: int = _f(1, 0, 10000)
    base_size_btc: Decimal = _f(Decimal("0.1"), Decimal("0.0001"), Decimal(100))
    size_decay: float = _f(0.8, 0.01, 1.0)
    post_only: bool = _f(True, doc="never cross the TrueX book")
    confidence_threshold: float = _f(0.3, 0.0, 1.0, doc="pull all quotes below this confidence")
    size_tolerance_pct: int = _f(50, 0, 1000, doc="a resting order whose size is within this of its level's "
                                 "stays (no replace just to resize)")
    widen_mult: float = _f(2.0, 1.0, 100.0, doc="the accumulating side's half-spread factor from "
                           "inventory.widen_at_pct")
    pending_timeout_ms: int = _f(5000, 10, 3600000, doc="a request unanswered this long gets its order "
                                 "canceled")
    # model-based spreads (Avellaneda-Stoikov / GLFT)
    risk_aversion: float = _f(0.1, 1e-6, 100.0, doc="gamma")
    horizon_s: float = _f(1.0, 0.001, 86400.0, doc="Avellaneda-Stoikov T - t: its risk term g s2 T is "
                          "in ticks squared, so a minute of it (the old default) quoted 100 bps wide")
    volatility_window_s: float = _f(60.0, 1.0, 86400.0)
    # both model-based spreads (A-S and GLFT), as hftbacktest's GLFT tutorial adjusts its closed form
    model_spread_adj: float = _f(2.0, 0.0, 100.0, doc="half-spread x this (the tutorial's adj1 = 1 fits k "
                                 "per half tick, which doubles c1 ~ 1/k: 2 is its spread with k per tick)")
    model_skew_adj: float = _f(0.05, 0.0, 100.0, doc="inventory skew x this (the tutorial's adj2: the closed "
                               "form's full skew flips the position on every fill)")
    model_grid: bool = _f(True, doc="quote on a grid of half-spread steps (the tutorial's grid trading): a "
                          "small move of the target keeps the order and its queue place")


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """The ``edge`` quoting model (fastmm/core/fair_value.py, fastmm/core/edge.py); ``fastmm calibrate``
    writes the fitted values of this section."""

    micro_weight: float = _f(0.5, -10.0, 10.0, doc="fair value += this x (microprice - mid)")
    flow_bps: float = _f(0.5, -100.0, 100.0, doc="fair value += this x signed taker flow in [-1, 1], bps")
    flow_window_s: float = _f(2.0, 0.01, 3600.0, doc="decay of the signed trade flow")
    volatility_window_s: float = _f(60.0, 1.0, 86400.0)
    sigma_prior_bps: float = _f(1.2, 0.0, 1000.0, doc="volatility until a second of data, bps/sqrt(s)")
    horizon_s: float = _f(5.0, 0.0, 3600.0, doc="adverse-selection horizon: half-spread has vol_mult x "
                          "sigma x sqrt(horizon)")
    vol_mult: float = _f(1.0, 0.0, 100.0)
    adverse_bps: float = _f(2.0, -100.0, 1000.0, doc="expected adverse selection of a fill beyond the vol "
                            "term (fastmm calibrate on the BTC spot recording: 2.28)")
    min_half_spread_bps: float = _f(1.0, 0.0, 1000.0)
    fade_window_ms: float = _f(1000.0, 1.0, 600000.0, doc="momentum = mid minus its average over this")
    fade_bps: float = _f(2.0, 0.0, 1000.0, doc="a run of the mid past this steps the quotes it runs into")
    fade_extra_bps: float = _f(3.0, 0.0, 1000.0, doc="how far the faded side steps back")
    fade_pull: bool = _f(False, doc="pull the faded side instead of stepping it back")
    skew_bps: float = _f(6.0, 0.0, 1000.0, doc="centre shift against the position at max_position_btc")
    hedge_charge: float = _f(0.5, 0.0, 10.0, doc="share of the Kraken taker fee charged to a quote that "
                             "grows the position, x the position's use of the hedge threshold")


@dataclass(frozen=True, slots=True)
class VenueRulesConfig:
    """TrueX exchange rules; not published by TrueX, so configurable (venue facts section 1)."""

    max_orders_per_sec: int = _f(8, 1, 1000, doc="our own limit for new orders and replaces, under TrueX's")
    max_orders_per_min: int = _f(300, 1, 60000)
    venue_max_orders_per_sec: int = _f(10, 1, 1000, doc="TrueX's own throttle: cancels may use it all (at "
                                       "least max_orders_per_sec), so quoting never takes a pull's slots")
    duplicate_window_ms: int = _f(500, 0, 60000, doc="no identical order again within this window")
    rate_guard_ms: int = _f(50, 0, 5000, doc="a message's rate slot frees this long after TrueX's window, "
                                                "counted from its acknowledgement (margin for clock drift)")
    min_notional: Decimal = _f(Decimal(1), Decimal(0), Decimal(1000000), doc="PYUSD")
    price_band_pct: Decimal = _f(Decimal("2.5"), Decimal("0.01"), Decimal(100))


@dataclass(frozen=True, slots=True)
class InventoryConfig:
    max_position_btc: Decimal = _f(Decimal(5), Decimal("0.0001"), Decimal(10000))
    hedge_threshold_btc: Decimal = _f(Decimal(2), Decimal(0), Decimal(10000))
    max_skew_ticks: int = _f(3, 0, 10000)
    skew_exponent: float = _f(1.5, 0.1, 10.0)
    emergency_position_btc: Decimal = _f(Decimal(6), Decimal("0.0001"), Decimal(10000))
    widen_at_pct: int = _f(80, 1, 100, doc="widen the accumulating side from this use of the limit")


@dataclass(frozen=True, slots=True)
class FeesConfig:
    truex_maker_bps: Decimal = _f(Decimal(0), Decimal(-100), Decimal(1000))
    truex_taker_bps: Decimal = _f(Decimal(10), Decimal(-100), Decimal(1000))
    kraken_maker_bps: Decimal = _f(Decimal(16), Decimal(-100), Decimal(1000))
    kraken_taker_bps: Decimal = _f(Decimal(26), Decimal(-100), Decimal(1000))


@dataclass(frozen=True, slots=True)
class PnlConfig:
    log_interval_s: float = _f(30.0, 0.1, 86400.0)
    significant_change: Decimal = _f(Decimal(100), Decimal(0), Decimal(10**9), doc="PYUSD")


@dataclass(frozen=True, slots=True)
class HedgeConfig:
    enabled: bool = _f(True)
    pair: str = _f("XBTUSD")
    limit_timeout_s: float = _f(5.0, 0.1, 3600.0, doc="limit first, market after this")
    limit_edge_bps: Decimal = _f(Decimal(2), Decimal(0), Decimal(1000))
    min_hedge_btc: Decimal = _f(Decimal("0.001"), Decimal("0.00000001"), Decimal(1000))
    max_hedge_btc: Decimal = _f(Decimal("1.0"), Decimal("0.00000001"), Decimal(1000))
    dead_man_timeout_s: int = _f(0, 0, 86400, doc="CancelAllOrdersAfter; 0 = off")
    firm_net: bool = _f(False, doc="hedge the firm-wide net of this base asset (own + other live "
                                   "instances, from firm.enabled) instead of this instance's own; set it on "
                                   "one instance and hedge.enabled = false on the others")
    risk_horizon_s: float = _f(300.0, 0.0, 86400.0, doc="hedge past the threshold only when a risk_z-sigma "
                               "move over this horizon exceeds the Kraken taker fee; 0 = by size only")
    risk_z: float = _f(2.0, 0.0, 100.0)


@dataclass(frozen=True, slots=True)
class RiskConfig:
    max_drawdown: Decimal = _f(Decimal(1000), Decimal(0), Decimal(10**9), doc="PYUSD")
    max_order_rate_per_min: int = _f(300, 1, 60000)
    max_reject_rate_per_min: int = _f(30, 1, 60000)
    stale_data_ms: int = _f(1000, 10, 3600000, doc="no reference price for this long pulls the quotes (a "
                            "backstop behind the feeds' stale_after_ms); never a kill-switch trip")
    firm_max_position_btc: Decimal = _f(Decimal(0), Decimal(0), Decimal(10**6),
                                        doc="cap on the summed position of the firm's live instances in "
                                            "this base asset (needs firm.enabled); 0 = off")


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS for one FIX session (fastmm.fix.transport.client_ssl_context): verified, never a plain-text
    fallback; any file set while ``enabled`` is off is a config error."""

    enabled: bool = _f(False, doc="connect over TLS; the venue's certificate must verify")
    ca_file: str = _f("", doc="PEM CA bundle to verify the venue with; empty: the system's CAs")
    cert_file: str = _f("", doc="PEM client certificate (mutual TLS); empty: none")
    key_file: str = _f("", doc="PEM key of cert_file; empty: the key is in cert_file")
    server_name: str = _f("", doc="name checked against the certificate (and sent as SNI); empty: host")
    min_version: Literal["TLSv1.2", "TLSv1.3"] = _f("TLSv1.2")


@dataclass(frozen=True, slots=True)
class FixSessionConfig:
    host: str = _f("127.0.0.1")
    port: int = _f(19484, 1, 65535)
    sender_comp_id: str = _f("FASTMM")
    target_comp_id: str = _f("TRUEX_UAT_OE")
    heartbeat_s: int = _f(30, 1, 3600)
    reset_on_logon: bool = _f(False, doc="141=Y on Logon; off so a restart gets missed reports resent")
    seq_store_fsync: bool = _f(False, doc="fsync the sequence numbers (host-crash safety, ~ms per message)")
    connect_timeout_s: float = _f(5.0, 0.1, 300.0)
    logon_timeout_s: float = _f(10.0, 0.1, 300.0)
    encrypt_method: bool = _f(False, doc="98=0 on the Logon: stock FIXT acceptors require it, TrueX omits it")
    allow_unknown_fields: bool = _f(False, doc="session messages may carry tags TrueX's FIXT11 dictionary "
                                    "does not give them (QuickFIX AllowUnknownMsgFields)")
    validate_user_defined_fields: bool = _f(True, doc="check tags 5000 and up too "
                                            "(QuickFIX ValidateUserDefinedFields)")
    validate_fields_out_of_order: bool = _f(True, doc="Reject a header tag after the body "
                                            "(QuickFIX ValidateFieldsOutOfOrder)")
    resend_timeout_s: float = _f(10.0, 0.1, 600.0, doc="a ResendRequest with no progress for this long is "
                                 "asked again")
    resend_retries: int = _f(2, 0, 100, doc="re-asks of an unanswered ResendRequest before the session is "
                             "recycled (Logout, reconnect)")
    tls: TlsConfig = field(default_factory=TlsConfig)


def _md_session() -> FixSessionConfig:
    # Market data needs no resend (a resubscription brings a fresh snapshot): reset on every logon.
    return FixSessionConfig(port=20484, target_comp_id="TRUEX_UAT_MD", reset_on_logon=True)


@dataclass(frozen=True, slots=True)
class TruexConfig:
    order_entry: FixSessionConfig = field(default_factory=FixSessionConfig)
    market_data: FixSessionConfig = field(default_factory=_md_session)
    rest_url: str = _f("http://127.0.0.1:18080")
    api_key_id: Secret = _secret()
    api_secret: Secret = _secret()
    client_id: Secret = _secret()
    user_id: str = _f("", doc="REST x-truex-auth-userid (reconciliation, cancel_on_disconnect)")
    rest_min_interval_ms: int = _f(200, 0, 60000, doc="REST pacing: at least this long between requests")
    rest_timeout_s: float = _f(10.0, 0.1, 300.0)
    reconcile_at_start: bool = _f(False, doc="after logon, before quoting: the venue's live orders and "
                                  "last fills (REST) against the journal; unknown orders canceled, missed "
                                  "fills booked")
    cancel_on_disconnect: bool = _f(False, doc="set TrueX's cancel_on_disconnect at start (needs "
                                    "reconcile_at_start)")


_WS_CLIENT_DOC = ("the feed's WebSocket client: sansio (websockets' sans-I/O core on an asyncio protocol, "
                  "each frame to the codec in the read's callback) or websockets (its asyncio client, the "
                  "fallback)")


@dataclass(frozen=True, slots=True)
class CoinbaseConfig:
    enabled: bool = _f(True)
    ws_url: str = _f("ws://127.0.0.1:18765")
    product_id: str = _f("BTC-USD")
    stale_after_ms: int = _f(500, 10, 3600000, doc="silence for this long marks the source stale: its "
                             "price is dropped, and with no source left the quotes are pulled")
    depth_levels: int = _f(5, 1, 20)
    ws_client: Literal["sansio", "websockets"] = _f("sansio", doc=_WS_CLIENT_DOC)


@dataclass(frozen=True, slots=True)
class KrakenConfig:
    enabled: bool = _f(True)
    rest_url: str = _f("http://127.0.0.1:18766")
    ws_url: str = _f("ws://127.0.0.1:18767")
    ws_symbol: str = _f("BTC/USD")
    ws_client: Literal["sansio", "websockets"] = _f("sansio", doc=_WS_CLIENT_DOC)
    stale_after_ms: int = _f(500, 10, 3600000, doc="silence for this long marks the source stale: its "
                             "price is dropped, and with no source left the quotes are pulled")
    api_key: Secret = _secret()
    api_secret: Secret = _secret()


@dataclass(frozen=True, slots=True)
class PricingConfig:
    basis_bps: Decimal = _f(Decimal(0), Decimal(-1000), Decimal(1000), doc="PYUSD over USD")
    coinbase_weight: float = _f(1.0, 0.0, 100.0)
    kraken_weight: float = _f(1.0, 0.0, 100.0)
    max_dispersion_bps: float = _f(20.0, 0.01, 10000.0, doc="confidence is 0 at this spread of sources")


@dataclass(frozen=True, slots=True)
class ShmConfig:
    wait: Literal["block", "spin"] = _f("block", doc="spin only on isolated cores")
    ring_slots: int = _f(4096, 2, 1 << 24, doc="event ring capacity, a power of two")
    warm_every_ms: int = _f(2, 0, 1000, doc="rehearse the quoter's price path on a shadow core after this "
                            "long without a price, to keep it in the CPU caches (0 = off)")


@dataclass(frozen=True, slots=True)
class ProcessesConfig:
    """CPUs each process is pinned to; empty = not pinned (the default on small machines)."""

    supervisor: list[int] = _f([])
    feed_coinbase: list[int] = _f([])
    feed_kraken: list[int] = _f([])
    feed_truex_md: list[int] = _f([])
    quoter: list[int] = _f([])
    hedger: list[int] = _f([])
    shipper: list[int] = _f([])
    firm: list[int] = _f([])
    heartbeat_timeout_ms: int = _f(3000, 50, 600000)
    start: Literal["fork", "exec"] = _f(
        "fork", doc="fork: children forked from a preloaded zygote (shared pages, fastmm.procs.zygote); "
        "exec: each child a fresh interpreter")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The embedded venue simulators (``fastmm sim``, ``fastmm paper``); ports come from the venue URLs."""

    data_dir: str = _f("", doc="recorded data; empty = $FASTMM_DATA_DIR or ../shared/data")
    max_lines: int = _f(0, 0, 10**9, doc="read only this many lines of the capture (0 = all)")
    speed: float = _f(1.0, 0.0, 10000.0, doc="replay speed; 0 = as fast as possible")
    seed: int = _f(0, 0, 2**31, doc="every random choice of the simulators")
    taker_probability: float = _f(0.2, 0.0, 1.0, doc="share of recorded trades replayed as TrueX takers")
    taker_size_scale: float = _f(1.0, 0.0, 1000.0, doc="recorded trade size x this = taker size")
    taker_reach_bps: int = _f(5, 0, 1000, doc="a TrueX taker's limit is the recorded trade price this far "
                              "through: the spread takers pay on a small venue (0 = never more than the "
                              "reference venue's price)")
    synthetic_levels: int = _f(3, 0, 50, doc="TrueX resting levels per side from the simulator itself")
    synthetic_step_bps: int = _f(5, 1, 1000)
    synthetic_lots: int = _f(500, 1, 10**8, doc="size of each synthetic level, lots of the instrument")
    truex_max_msgs_per_sec: int = _f(10, 1, 100000, doc="the venue's throttle (BusinessMessageReject 380=8)")
    truex_max_msgs_per_min: int = _f(300, 1, 6000000)
    truex_duplicate_window_ms: int = _f(500, 0, 60000, doc="identical orders refused within this window")
    truex_maker_bps: Decimal = _f(Decimal(0), Decimal(-100), Decimal(1000), doc="the venue's own fees")
    truex_taker_bps: Decimal = _f(Decimal(10), Decimal(-100), Decimal(1000))
    kraken_balance_usd: Decimal = _f(Decimal(1_000_000), Decimal(0), Decimal(10**12))
    kraken_balance_btc: Decimal = _f(Decimal(20), Decimal(0), Decimal(10**6))
    crossing_replace: Literal["reject", "take"] = _f(
        "reject", doc="a replace of a post-only order that would cross: reject it, or take (fill as taker)")


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """``fastmm backtest``: the latency of each leg and the cross-venue fair price (CLI flags override)."""

    reference_latency_us: int = _f(1000, 0, 10**7, doc="reference venue's data -> our engine")
    venue_latency_us: int = _f(5000, 0, 10**7, doc="our engine -> the quoted venue, and its data and "
                                                   "answers -> our engine")
    hedge_latency_ms: int = _f(100, 0, 10**5, doc="hedger <-> Kraken, each way")
    basis_halflife_s: float = _f(30.0, 0.1, 86400.0, doc="online basis of the quoted venue over the "
                                                         "references (PYUSD vs USD, futures vs spot)")


@dataclass(frozen=True, slots=True)
class JournalConfig:
    file: str = _f("journal.jsonl", doc="relative to instance.state_dir")
    durability: Literal["none", "flush", "fsync"] = _f("flush")
    rotate_bytes: int = _f(256 * 1024 * 1024, 4096, 1 << 40)


@dataclass(frozen=True, slots=True)
class ShipConfig:
    """The journal -> PostgreSQL shipper (fastmm.db.shipper), an optional process."""

    enabled: bool = _f(False, doc="run the shipper process (the journal stays the source of truth)")
    dsn: str = _f("postgresql://fastmm@127.0.0.1:5432/fastmm",
                  doc="database URL without a password (FASTMM_DB_PASSWORD)")
    batch_records: int = _f(2000, 1, 1_000_000, doc="records per transaction and stream")
    poll_ms: int = _f(200, 1, 60000, doc="look for new journal records this often when idle")
    retry_s: float = _f(2.0, 0.05, 3600.0, doc="wait before reconnecting to a database that failed")
    migrate: bool = _f(True, doc="apply schema migrations on connect (else: fastmm db migrate)")
    password: Secret = _secret()


@dataclass(frozen=True, slots=True)
class FirmConfig:
    """Firm-wide inventory in Redis (fastmm.db.firm), an optional process."""

    enabled: bool = _f(False, doc="publish position, PnL and phase to Redis and read the other instances'")
    redis_url: str = _f("redis://127.0.0.1:6379/0",
                        doc="Redis URL without a password (FASTMM_REDIS_PASSWORD)")
    prefix: str = _f("fastmm", doc="key prefix: <prefix>:inst:<instance>")
    publish_ms: int = _f(1000, 50, 60000)
    timeout_ms: int = _f(1000, 10, 60000, doc="a Redis round trip slower than this counts as Redis down")
    ttl_s: int = _f(5, 1, 3600, doc="an instance's entry expires this long after its last publish")
    asset: str = _f("", doc="base asset summed against risk.firm_max_position_btc; "
                            "empty = the symbol's part before '-'")
    stop_opening_when_down: bool = _f(False, doc="Redis unreachable: only reduce the position until it is "
                                                 "back")
    password: Secret = _secret()


@dataclass(frozen=True, slots=True)
class Config:
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    instrument: InstrumentConfig = field(default_factory=InstrumentConfig)
    quoting: QuotingConfig = field(default_factory=QuotingConfig)
    edge: EdgeConfig = field(default_factory=EdgeConfig)
    venue_rules: VenueRulesConfig = field(default_factory=VenueRulesConfig)
    inventory: InventoryConfig = field(default_factory=InventoryConfig)
    fees: FeesConfig = field(default_factory=FeesConfig)
    pnl: PnlConfig = field(default_factory=PnlConfig)
    hedge: HedgeConfig = field(default_factory=HedgeConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    truex: TruexConfig = field(default_factory=TruexConfig)
    coinbase: CoinbaseConfig = field(default_factory=CoinbaseConfig)
    kraken: KrakenConfig = field(default_factory=KrakenConfig)
    shm: ShmConfig = field(default_factory=ShmConfig)
    processes: ProcessesConfig = field(default_factory=ProcessesConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    ship: ShipConfig = field(default_factory=ShipConfig)
    firm: FirmConfig = field(default_factory=FirmConfig)

    @property
    def state_path(self) -> Path:
        return Path(self.instance.state_dir) / self.instance.name


# Secrets by environment variable -> (section path, field).
SECRET_ENV: dict[str, tuple[str, str]] = {
    "FASTMM_TRUEX_API_KEY_ID": ("truex", "api_key_id"),
    "FASTMM_TRUEX_API_SECRET": ("truex", "api_secret"),
    "FASTMM_TRUEX_CLIENT_ID": ("truex", "client_id"),
    "FASTMM_KRAKEN_API_KEY": ("kraken", "api_key"),
    "FASTMM_KRAKEN_API_SECRET": ("kraken", "api_secret"),
    "FASTMM_DB_PASSWORD": ("ship", "password"),
    "FASTMM_REDIS_PASSWORD": ("firm", "password"),
}


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            Decimal: "a decimal number"}.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(key: str, tp: Any, value: Any) -> Any:
    """Check and convert one raw TOML value to the field's type, or raise ConfigError."""

    def bad() -> ConfigError:
        return ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")

    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise bad()
        return value
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, list):
            raise bad()
        return [_convert(f"{key}[{i}]", item_tp, v) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        if not math.isfinite(value):    # nan passes every range check and poisons every signal
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise bad()
        try:
            d = Decimal(str(value))
        except InvalidOperation:
            raise bad() from None
        if not d.is_finite():
            raise bad()
        return d
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    raise ConfigError(f"{key}: unsupported setting type {tp!r}")  # pragma: no cover - programming error


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=False)


def _build(cls: type, raw: dict[str, Any], prefix: str, base: Any = None) -> Any:
    """Build ``cls`` from ``raw``; settings not given keep their value in ``base`` (or the default)."""
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in fields:
            raise ConfigError(f"{prefix}{k}: unknown setting (known: {', '.join(sorted(fields))})")
    base = cls() if base is None else base
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        tp = hints[name]
        if f.metadata.get("secret"):
            if name in raw:
                env = next(e for e, (s, n) in SECRET_ENV.items() if f"{s}.{n}" == key)
                raise ConfigError(f"{key}: secrets are not read from files; set {env} in the environment")
            continue
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            sub = raw.get(name, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"{key}: expected a table, got {type(sub).__name__}")
            kwargs[name] = _build(tp, sub, key + ".", getattr(base, name))
            continue
        if name not in raw:
            kwargs[name] = getattr(base, name)
            continue
        value = _convert(key, tp, raw[name])
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        if lo is not None and value < lo:
            raise ConfigError(f"{key}: {value} is below the minimum {lo}")
        if hi is not None and value > hi:
            raise ConfigError(f"{key}: {value} is above the maximum {hi}")
        kwargs[name] = value
    return cls(**kwargs)


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


# FASTMM_* variables that are not setting overrides: secrets, the supervisor's word to a child, paths
# the tools read, and the runbooks' and tests' own shell variables.
OTHER_ENV = frozenset({"FASTMM_PROCESS", "FASTMM_SUPERVISOR_PID", "FASTMM_DATA_DIR", "FASTMM_HOST_ROOT",
                       "FASTMM_PURE", "FASTMM_CONFIG", "FASTMM_SECRETS", "FASTMM_SECRETS_NEW", "FASTMM_STATE",
                       "FASTMM_LOG", "FASTMM_METRICS_PORT", "FASTMM_OE", "FASTMM_MD", "FASTMM_PROD"})
OTHER_ENV_PREFIXES = ("FASTMM_TEST_", "FASTMM_BENCH_")
_warned_env: set[str] = set()


def unknown_env(environ: typing.Mapping[str, str]) -> list[str]:
    """One line for each FASTMM_ variable that looks meant for fastmm but is no override or secret
    (a single underscore between section and key, lower case): such a variable is otherwise ignored."""
    sections = {f.name for f in dataclasses.fields(Config)}
    out = []
    for name in sorted(environ):
        up = name.upper()
        if not up.startswith(ENV_PREFIX) or name in SECRET_ENV or name in OTHER_ENV:
            continue
        if up.startswith(OTHER_ENV_PREFIXES) or (name == up and "__" in name):
            continue
        if name != up:
            out.append(f"{name}: ignored: environment overrides are upper case ({up})")
            continue
        rest = name[len(ENV_PREFIX):].lower()
        guess = next((f"{ENV_PREFIX}{s.upper()}__{rest[len(s) + 1:].upper()}" for s in sorted(sections)
                      if rest.startswith(s + "_")), "")
        out.append(f"{name}: ignored: not a setting override (FASTMM_<SECTION>__<KEY>)"
                   + (f"; did you mean {guess}?" if guess else ""))
    return out


def _warn_unknown_env(environ: typing.Mapping[str, str]) -> None:
    for line in unknown_env(environ):
        if line not in _warned_env:
            _warned_env.add(line)
            logging.getLogger("fastmm.config").warning("%s", line)


def _apply_env_overrides(raw: dict[str, Any], environ: typing.Mapping[str, str]) -> None:
    _warn_unknown_env(environ)
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name or name in SECRET_ENV:
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(path)} does not name a setting")
            node = child
        node[path[-1]] = _parse_env_value(text)


def _with_secrets(cfg: Config, environ: typing.Mapping[str, str]) -> Config:
    for env, (section, name) in SECRET_ENV.items():
        if env in environ:
            sec = dataclasses.replace(getattr(cfg, section), **{name: Secret(environ[env])})
            cfg = dataclasses.replace(cfg, **{section: sec})
    return cfg


def _check_cross_field(cfg: Config) -> None:
    inv = cfg.inventory
    if inv.hedge_threshold_btc > inv.max_position_btc:
        raise ConfigError("inventory.hedge_threshold_btc: must not exceed inventory.max_position_btc")
    if inv.emergency_position_btc < inv.max_position_btc:
        raise ConfigError("inventory.emergency_position_btc: must be at least inventory.max_position_btc")
    h = cfg.hedge
    if h.min_hedge_btc > h.max_hedge_btc:
        raise ConfigError("hedge.min_hedge_btc: must not exceed hedge.max_hedge_btc")
    for name, fs in (("order_entry", cfg.truex.order_entry), ("market_data", cfg.truex.market_data)):
        _check_tls(f"truex.{name}.tls", fs.tls)
    for key, url in (("ship.dsn", cfg.ship.dsn), ("firm.redis_url", cfg.firm.redis_url)):
        try:
            has_password = urlsplit(url).password is not None or "password=" in url
        except ValueError:
            raise ConfigError(f"{key}: not a URL: {url!r}") from None
        if has_password:
            env = "FASTMM_DB_PASSWORD" if key == "ship.dsn" else "FASTMM_REDIS_PASSWORD"
            raise ConfigError(f"{key}: a password in the URL is not read from files; set {env} in the "
                              "environment")
    slots = cfg.shm.ring_slots
    if slots & (slots - 1):
        raise ConfigError(f"shm.ring_slots: {slots} is not a power of two")
    for name in ("tick_size", "lot_size"):
        try:
            step_e8(getattr(cfg.instrument, name))
        except ValueError as e:
            raise ConfigError(f"instrument.{name}: {e} (the scale of every price and size)") from None
    for name in ("base_size_btc",):
        q = getattr(cfg.quoting, name)
        if q % cfg.instrument.lot_size:
            raise ConfigError(f"quoting.{name}: {q} is not a multiple of instrument.lot_size")


def _check_tls(key: str, tls: TlsConfig) -> None:
    if not tls.enabled:
        for f in ("ca_file", "cert_file", "key_file", "server_name"):
            if getattr(tls, f):
                raise ConfigError(f"{key}.{f}: set while {key}.enabled is false (no plain-text fallback)")
        return
    if tls.key_file and not tls.cert_file:
        raise ConfigError(f"{key}.key_file: set without {key}.cert_file")
    for f in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, f)
        if path and not Path(path).is_file():
            raise ConfigError(f"{key}.{f}: {path} is not a file")


def load_config(path: str | os.PathLike[str] | None = None,
                environ: typing.Mapping[str, str] | None = None) -> Config:
    """Load, override from the environment, validate. Raises ConfigError with one clear line."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML: {e}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: cannot read: {e}") from None
    _apply_env_overrides(raw, env)
    cfg = _build(Config, raw, "")
    cfg = _with_secrets(cfg, env)
    _check_cross_field(cfg)
    return cfg


def describe(cfg: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten a config to (key, value text) rows; secrets show only whether they are set."""
    rows: list[tuple[str, str]] = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(v):
            rows.extend(describe(v, key + "."))
        elif isinstance(v, Secret):
            rows.append((key, "<set>" if v else "<unset>"))
        else:
            rows.append((key, str(v)))
    return rows



def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return f'"{v}"'
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def example_toml(cfg: Any = None, prefix: str = "") -> str:
    """A complete TOML file of every setting with its default and description (secrets excluded)."""
    cfg = Config() if cfg is None else cfg
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            tables.append((prefix + f.name, v))
            continue
        if f.metadata.get("secret"):
            env = next(e for e, (s, n) in SECRET_ENV.items() if f"{s}.{n}" == prefix + f.name)
            lines.append(f"# {f.name}: secret, from the environment variable {env}")
            continue
        meta = f.metadata
        notes = [meta["doc"]] if meta.get("doc") else []
        if meta.get("lo") is not None or meta.get("hi") is not None:
            lo, hi = (format(x, "f") if isinstance(x, Decimal) else x for x in (meta["lo"], meta["hi"]))
            notes.append(f"range {lo} .. {hi}")
        comment = f"  # {'; '.join(notes)}" if notes else ""
        lines.append(f"{f.name} = {_toml_value(v)}{comment}")
    out = ""
    if prefix and lines:
        out += f"[{prefix.rstrip('.')}]\n" + "\n".join(lines) + "\n\n"
    for name, sub in tables:
        out += example_toml(sub, name + ".")
    return out
