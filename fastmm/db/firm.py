"""Firm-wide inventory in Redis: publish this instance's position, PnL and phase, read the others'.

Keys (``firm.prefix``, default ``fastmm``): ``<prefix>:inst:<instance>`` is a hash of the instance's
last publish, expiring ``firm.ttl_s`` after it, so a dead engine's entry ages out; ``<prefix>:live`` is
a sorted set of instance names scored by their last publish (ms), trimmed of the expired. Every
``firm.publish_ms`` the firm process writes its entry and reads every live entry in two round trips,
and puts what it learned into the ``firm`` shared-memory value (fastmm.shm.records.FIRM) that the
quoter reads on its timer (fastmm.core.firm_limit) and the hedger for ``hedge.firm_net``. The quoter
never waits on Redis: a slow or absent Redis only ages that value.

:func:`entry` and :func:`fold` are pure; :func:`run` is the asyncio shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fastmm.config import Config
from fastmm.instrument import Instrument
from fastmm.shm import LatestValue

log = logging.getLogger("fastmm.firm")


def base_asset(cfg: Config) -> str:
    """The asset the firm cap sums: ``firm.asset``, else the symbol's part before '-' (BTC-PYUSD: BTC)."""
    return cfg.firm.asset or cfg.instrument.symbol.split("-")[0]


def key(prefix: str, instance: str) -> str:
    return f"{prefix}:inst:{instance}"


def entry(*, instance: str, asset: str, position_lots: int, lot_e8: int, realized_e8: int, unrealized_e8: int,
          fees_e8: int, phase: str, t_ms: int) -> dict[str, str]:
    """The hash one instance publishes (integers as decimal text)."""
    return {"instance": instance, "asset": asset, "position_lots": str(position_lots), "lot_e8": str(lot_e8),
            "position_e8": str(position_lots * lot_e8), "realized_e8": str(realized_e8),
            "unrealized_e8": str(unrealized_e8), "fees_e8": str(fees_e8),
            "total_e8": str(realized_e8 + unrealized_e8 - fees_e8), "phase": phase, "t_ms": str(t_ms),
            "host": socket.gethostname(), "pid": str(os.getpid())}


@dataclass(frozen=True, slots=True)
class Others:
    position_e8: int
    total_e8: int
    live: int
    names: tuple[str, ...]


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def fold(own: str, asset: str, entries: Mapping[str, Mapping[Any, Any]], now_ms: int, ttl_ms: int) -> Others:
    """The other live instances of ``asset``: an entry older than ``ttl_ms`` or unreadable counts as gone."""
    pos = total = 0
    names = []
    for name, raw in sorted(entries.items()):
        if name == own or not raw:
            continue
        e = {_s(k): _s(v) for k, v in raw.items()}
        try:
            if e.get("asset") != asset or now_ms - int(e["t_ms"]) > ttl_ms:
                continue
            p, t = int(e["position_e8"]), int(e["total_e8"])
        except (KeyError, ValueError):
            continue
        pos += p
        total += t
        names.append(name)
    return Others(pos, total, len(names), tuple(names))


class FirmPublisher:
    """One instance's link to Redis (redis.asyncio), two round trips per :meth:`exchange`."""

    def __init__(self, cfg: Config, client: Any) -> None:
        self.cfg = cfg
        self.r = client
        self.prefix = cfg.firm.prefix
        self.instance = cfg.instance.name
        self.ttl_ms = cfg.firm.ttl_s * 1000

    async def exchange(self, mine: dict[str, str], now_ms: int) -> Others:
        live = f"{self.prefix}:live"
        k = key(self.prefix, self.instance)
        async with self.r.pipeline(transaction=False) as p:
            p.hset(k, mapping=mine)
            p.pexpire(k, self.ttl_ms)
            p.zadd(live, {self.instance: now_ms})
            p.zremrangebyscore(live, "-inf", now_ms - self.ttl_ms)
            p.zrangebyscore(live, now_ms - self.ttl_ms, "+inf")
            res = await p.execute()
        names = [_s(n) for n in res[-1]]
        async with self.r.pipeline(transaction=False) as p:
            for n in names:
                p.hgetall(key(self.prefix, n))
            got = await p.execute()
        return fold(self.instance, mine["asset"], dict(zip(names, got, strict=True)), now_ms, self.ttl_ms)


def client(cfg: Config) -> Any:
    pw = cfg.firm.password.reveal() or None
    timeout_s = cfg.firm.timeout_ms / 1000
    return aioredis.Redis.from_url(cfg.firm.redis_url, password=pw, socket_timeout=timeout_s,
                                   socket_connect_timeout=timeout_s, retry_on_timeout=False)


@dataclass
class FirmStatus:
    up: bool = False
    publishes: int = 0
    errors: int = 0
    others: Others | None = None
    last_error: str = ""


async def run(cfg: Config, stop: asyncio.Event, position: LatestValue, out: LatestValue, *,
              phase: Callable[[], str] = lambda: "",
              on_status: Callable[[FirmStatus], None] | None = None) -> None:
    """Publish and read every ``firm.publish_ms`` until ``stop``; a failure is logged once per outage."""
    lot_e8 = Instrument.from_config(cfg.instrument).lot_e8
    asset = base_asset(cfg)
    r = client(cfg)
    pub = FirmPublisher(cfg, r)
    st = FirmStatus()
    period = cfg.firm.publish_ms / 1000
    try:
        while not stop.is_set():
            now = time.monotonic_ns()
            pos_lots = realized = unrealized = fees = 0
            if position.read() > 0:
                rx = position.rx[0]
                pos_lots, realized = int(rx["position_lots"]), int(rx["realized_e8"])
                unrealized, fees = int(rx["unrealized_e8"]), int(rx["fees_e8"])
            mine = entry(instance=cfg.instance.name, asset=asset, position_lots=pos_lots, lot_e8=lot_e8,
                         realized_e8=realized, unrealized_e8=unrealized, fees_e8=fees, phase=phase(),
                         t_ms=time.time_ns() // 1_000_000)
            tx = out.tx[0]
            try:
                others = await asyncio.wait_for(pub.exchange(mine, int(mine["t_ms"])),
                                                2 * cfg.firm.timeout_ms / 1000)
            except (RedisError, OSError, TimeoutError) as e:
                st.errors += 1
                text = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                if st.up or st.publishes + st.errors == 1:     # once per outage (and at a start without it)
                    log.error("firm: Redis unreachable (%s); keeping this instance's own limits%s", text,
                              " and opening no new risk" if cfg.firm.stop_opening_when_down else "")
                st.up, st.last_error = False, text
                tx["redis_up"] = 0
            else:
                if not st.up and st.errors:                      # the end of an outage
                    log.warning("firm: Redis back; %d other live instance(s) of %s", others.live, asset)
                st.up, st.others = True, others
                st.publishes += 1
                tx["redis_up"] = 1
                tx["t_ok"] = time.monotonic_ns()
                tx["others_position_e8"] = others.position_e8
                tx["others_total_e8"] = others.total_e8
                tx["others_live"] = others.live
            tx["own_position_e8"] = pos_lots * lot_e8
            tx["t_pub"] = now
            tx["errors"] = st.errors
            out.publish()
            if on_status:
                on_status(st)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
    finally:
        with contextlib.suppress(Exception):
            await r.aclose()
