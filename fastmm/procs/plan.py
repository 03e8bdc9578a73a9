"""The instance's processes, how each is started, and the shared-memory channels between them, in one table.

The supervisor creates every channel listed here before it starts a process, and unlinks them last;
each process attaches to the channels it produces or consumes. Keeping the table in one place is what
lets ``fastmm status`` and the tests find every segment of an instance. How a process is started (its
command line, its CPUs, the only secrets it may see, what runs when it dies) is decided here too, so the
supervisor only carries it out.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fastmm.config import SECRET_ENV, Config
from fastmm.procs.trade_channel import trades_channel
from fastmm.shm import EventRing, LatestValue
from fastmm.shm.records import CONTROL, FILL, HEALTH, POSITION, STAGE_LATENCY, TOP_OF_BOOK, TRADE
from fastmm.shm.records import FIRM as FIRM_RECORD

SUPERVISOR = "supervisor"
FEED_COINBASE = "feed-coinbase"
FEED_KRAKEN = "feed-kraken"
FEED_TRUEX_MD = "feed-truex-md"
QUOTER = "quoter"
HEDGER = "hedger"
PROCESSES = (FEED_COINBASE, FEED_KRAKEN, FEED_TRUEX_MD, QUOTER, HEDGER)
# Optional processes, started only when their config section enables them (see processes()).
SHIPPER = "shipper"   # journal -> PostgreSQL (ship.enabled)
FIRM = "firm"         # firm-wide inventory in Redis (firm.enabled)
OPTIONAL = (SHIPPER, FIRM)

# The quoter's live per-stage latency (STAGE_LATENCY), read by ``fastmm status`` and ``fastmm metrics``.
QUOTER_LATENCY = "latency.quoter"

# Reference feeds by the source name the lifecycle and the aggregator use.
REFERENCE_FEEDS = {FEED_COINBASE: "coinbase", FEED_KRAKEN: "kraken"}
# The reference feeds that publish market trades (``trades.<venue>``, fastmm.procs.trade_channel); the
# Kraken codec subscribes to no trade channel.
TRADE_FEEDS = {FEED_COINBASE: "coinbase"}


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    name: str
    kind: Literal["latest", "ring"]
    dtype: np.dtype
    producer: str
    consumer: str | None      # the one process that may block on it (None: readers poll)
    capacity: int = 1


def processes(cfg: Config) -> tuple[str, ...]:
    """The processes of an instance: the engine's, plus each optional one its config enables."""
    return PROCESSES + tuple(p for p, on in ((SHIPPER, cfg.ship.enabled), (FIRM, cfg.firm.enabled)) if on)


def health_channel(process: str) -> str:
    return f"health.{process}"


def channel_specs(cfg: Config, processes: tuple[str, ...] = PROCESSES) -> list[ChannelSpec]:
    """Every channel of an instance running ``processes``."""
    # The quoter blocks on control too (it acts on commands at once: pulling quotes is urgent); the
    # other processes poll it with their heartbeat.
    specs = [ChannelSpec("control", "latest", CONTROL, SUPERVISOR, QUOTER if QUOTER in processes else None)]
    if FEED_COINBASE in processes:
        specs.append(ChannelSpec("ref.coinbase", "latest", TOP_OF_BOOK, FEED_COINBASE, QUOTER))
    for feed, venue in TRADE_FEEDS.items():
        if feed in processes:
            # The quoter drains it on every wake and never blocks on it (consumer None: no eventfd, so a
            # trade costs the feed no system call); it claims the ring's one consumer role all the same.
            specs.append(ChannelSpec(trades_channel(venue), "ring", TRADE, feed, None, cfg.shm.ring_slots))
    if FEED_KRAKEN in processes:
        specs.append(ChannelSpec("ref.kraken", "latest", TOP_OF_BOOK, FEED_KRAKEN, QUOTER))
    if FEED_TRUEX_MD in processes:
        specs.append(ChannelSpec("truex.book", "latest", TOP_OF_BOOK, FEED_TRUEX_MD, QUOTER))
    if QUOTER in processes:
        specs.append(ChannelSpec("position", "latest", POSITION, QUOTER, HEDGER))
        specs.append(ChannelSpec(QUOTER_LATENCY, "latest", STAGE_LATENCY, QUOTER, None))
    if HEDGER in processes:
        specs.append(ChannelSpec("hedge.fills", "ring", FILL, HEDGER, QUOTER, cfg.shm.ring_slots))
    if FIRM in processes:
        specs.append(ChannelSpec("firm", "latest", FIRM_RECORD, FIRM, None))
    specs.extend(ChannelSpec(health_channel(p), "latest", HEALTH, p, None) for p in processes)
    return specs


def create_channels(cfg: Config, specs: list[ChannelSpec]) -> dict[str, LatestValue | EventRing]:
    """Create every channel (replacing stale segments of a dead earlier run)."""
    made: dict[str, LatestValue | EventRing] = {}
    try:
        for spec in specs:
            wait = cfg.shm.wait if spec.consumer else "spin"
            if spec.kind == "ring":
                made[spec.name] = EventRing.create(cfg.instance.name, spec.name, spec.dtype,
                                                   capacity=spec.capacity, wait=wait)
            else:
                made[spec.name] = LatestValue.create(cfg.instance.name, spec.name, spec.dtype, wait=wait)
    except BaseException:
        for ch in made.values():
            ch.close()
            ch.unlink()
        raise
    return made


# The secrets each process may see; every other FASTMM_ secret is left out of its environment (and so of
# /proc/<pid>/environ). TrueX market data logs on with the same key as order entry (Logon 553/554).
_TRUEX_LOGON = ("FASTMM_TRUEX_API_KEY_ID", "FASTMM_TRUEX_API_SECRET")
SECRETS_OF = {
    QUOTER: (*_TRUEX_LOGON, "FASTMM_TRUEX_CLIENT_ID"),
    FEED_TRUEX_MD: _TRUEX_LOGON,
    HEDGER: ("FASTMM_KRAKEN_API_KEY", "FASTMM_KRAKEN_API_SECRET"),
    SHIPPER: ("FASTMM_DB_PASSWORD",),
    FIRM: ("FASTMM_REDIS_PASSWORD",),
}
# The process that cancels a dead quoter's orders (``fastmm.procs.cancel_left``) needs the quoter's.
CANCEL_LEFT = "cancel-left"
SECRETS_OF[CANCEL_LEFT] = SECRETS_OF[QUOTER]
CANCEL_LEFT_TIMEOUT_S = 10.0


def child_env(name: str, environ: Mapping[str, str], supervisor_pid: int) -> dict[str, str]:
    """The environment of process ``name``: the supervisor's, less the secrets it does not need."""
    allowed = SECRETS_OF.get(name, ())
    env = {k: v for k, v in environ.items() if k not in SECRET_ENV or k in allowed}
    env["FASTMM_PROCESS"] = name
    env["FASTMM_SUPERVISOR_PID"] = str(supervisor_pid)
    return env


@dataclass
class ChildSpec:
    """How to start one process. ``argv`` is complete; the config path is in it, secrets are not."""

    name: str
    argv: list[str]
    cpus: list[int] = field(default_factory=list)
    # Run to completion when this process dies, before it is restarted (the quoter's: cancel the orders
    # its journal says may be live, so a crash loop never leaves quotes unmanaged during the back-off).
    on_death: list[str] | None = None


def default_children(cfg: Config, config_path: str | None, names: Sequence[str]) -> list[ChildSpec]:
    """Each process as ``python -m fastmm.procs.run NAME [--config FILE]`` pinned as configured."""
    specs = []
    for name in names:
        argv = [sys.executable, "-m", "fastmm.procs.run", name]
        if config_path:
            argv += ["--config", str(config_path)]
        on_death = None
        if name == QUOTER:
            on_death = [*argv[:3], CANCEL_LEFT, *argv[4:]]
        specs.append(ChildSpec(name, argv, list(getattr(cfg.processes, name.replace("-", "_"))), on_death))
    return specs
