"""The instance's processes and the shared-memory channels between them, in one table.

The supervisor creates every channel listed here before it starts a process, and unlinks them last;
each process attaches to the channels it produces or consumes. Keeping the table in one place is what
lets ``fastmm status`` and the tests find every segment of an instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fastmm.config import Config
from fastmm.shm import EventRing, LatestValue
from fastmm.shm.records import CONTROL, FILL, HEALTH, POSITION, STAGE_LATENCY, TOP_OF_BOOK
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
