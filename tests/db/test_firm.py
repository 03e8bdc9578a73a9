"""Firm-wide inventory against a real Redis: entries, expiry, other assets, and a Redis restart."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets

import pytest

from fastmm.config import Config, load_config
from fastmm.db import firm
from fastmm.db.servers import RedisServer
from fastmm.procs.firm_gate import FirmGate
from fastmm.shm import LatestValue
from fastmm.shm.records import FIRM, POSITION

BTC = 100_000_000


def cfg_for(url: str, name: str, symbol: str = "BTC-PYUSD", **extra: str) -> Config:
    return load_config(None, {"FASTMM_INSTANCE__NAME": name, "FASTMM_INSTRUMENT__SYMBOL": symbol,
                              "FASTMM_FIRM__ENABLED": "true", "FASTMM_FIRM__REDIS_URL": url,
                              "FASTMM_FIRM__TTL_S": "1", "FASTMM_FIRM__PUBLISH_MS": "100",
                              "FASTMM_FIRM__PREFIX": "t" + secrets.token_hex(4),
                              "FASTMM_REDIS_PASSWORD": os.environ["FASTMM_REDIS_PASSWORD"], **extra})


def mine(name: str, lots: int, asset: str = "BTC", t_ms: int = 0, total: int = 0) -> dict[str, str]:
    return firm.entry(instance=name, asset=asset, position_lots=lots, lot_e8=10_000, realized_e8=total,
                      unrealized_e8=0, fees_e8=0, phase="QUOTING", t_ms=t_ms)


def test_fold_counts_live_others_of_the_same_asset_only() -> None:
    entries = {"a": mine("a", 5, t_ms=1000), "b": mine("b", -20, t_ms=1000, total=7),
               "c": mine("c", 99, asset="ETH", t_ms=1000), "d": mine("d", 1000, t_ms=1),
               "e": {b"asset": b"BTC", b"t_ms": b"x"}, "f": {}}
    got = firm.fold("a", "BTC", entries, 1500, 1000)
    assert got == firm.Others(-20 * 10_000, 7, 1, ("b",))


def test_publishers_see_each_other_and_a_silent_one_ages_out(redis_url: str) -> None:
    base = cfg_for(redis_url, "a")
    prefix = base.firm.prefix
    a = cfg_for(redis_url, "a", FASTMM_FIRM__PREFIX=prefix)
    b = cfg_for(redis_url, "b", FASTMM_FIRM__PREFIX=prefix)
    e = cfg_for(redis_url, "eth", "ETH-PYUSD", FASTMM_FIRM__PREFIX=prefix)

    async def go() -> None:
        ra, rb, re_ = firm.client(a), firm.client(b), firm.client(e)
        pa, pb, pe = firm.FirmPublisher(a, ra), firm.FirmPublisher(b, rb), firm.FirmPublisher(e, re_)
        now = 10_000_000
        await pb.exchange(mine("b", 300, t_ms=now), now)
        await pe.exchange(mine("eth", 77, asset="ETH", t_ms=now), now)
        seen = await pa.exchange(mine("a", 100, t_ms=now), now)
        assert seen == firm.Others(300 * 10_000, 0, 1, ("b",))
        assert (await ra.ttl(firm.key(prefix, "a"))) in (0, 1)       # expires: a dead engine ages out
        later = now + 1500                                            # b silent for longer than ttl_s
        seen = await pa.exchange(mine("a", 100, t_ms=later), later)
        assert seen.live == 0 and seen.position_e8 == 0
        for r in (ra, rb, re_):
            await r.aclose()

    asyncio.run(go())


def test_firm_process_core_survives_a_redis_restart_and_logs_it_once(
        redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    cfg = cfg_for(redis_url, "t" + secrets.token_hex(3), FASTMM_RISK__FIRM_MAX_POSITION_BTC="1",
                  FASTMM_FIRM__STOP_OPENING_WHEN_DOWN="true")
    inst = cfg.instance.name
    pos = LatestValue.create(inst, "position", POSITION)
    out = LatestValue.create(inst, "firm", FIRM)
    seen: list[firm.FirmStatus] = []
    try:
        pos.tx["position_lots"] = 2_000                              # +0.2 BTC
        pos.publish()

        async def go() -> None:
            other = firm.FirmPublisher(cfg_for(redis_url, "other", FASTMM_FIRM__PREFIX=cfg.firm.prefix),
                                       firm.client(cfg))
            stop = asyncio.Event()
            task = asyncio.ensure_future(firm.run(cfg, stop, pos, out, phase=lambda: "QUOTING",
                                                  on_status=lambda s: seen.append(s)))

            async def other_publishes(lots: int) -> None:
                import time
                t = time.time_ns() // 1_000_000
                await other.exchange(mine("other", lots, t_ms=t), t)

            await other_publishes(6_000)                              # +0.6 BTC elsewhere
            for _ in range(100):
                await asyncio.sleep(0.05)
                if seen and seen[-1].up and seen[-1].others and seen[-1].others.live == 1:
                    break
            gate = FirmGate(cfg, LatestValue.attach(inst, "firm", FIRM))
            import time
            now = time.monotonic_ns()
            # firm +0.8 under a cap of 1: 0.2 BTC more may be bought
            assert gate.bounds(2_000, now) == (4_000, 16_000)
            assert gate.others_lots(now) == 6_000                     # what hedge.firm_net adds
            await asyncio.to_thread(redis_server.crash)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if seen[-1].errors >= 3:
                    break
            assert not seen[-1].up
            assert int(out.rx["redis_up"][0]) == 0 if out.read() > 0 else False
            # Redis gone: only reduce (stop_opening_when_down)
            assert gate.bounds(2_000, time.monotonic_ns()) == (2_000, 0)
            assert gate.others_lots(time.monotonic_ns()) is None      # the hedger hedges its own only
            await asyncio.to_thread(redis_server.start)
            await other.r.aclose()
            other = firm.FirmPublisher(cfg_for(redis_url, "other", FASTMM_FIRM__PREFIX=cfg.firm.prefix),
                                       firm.client(cfg))
            await other_publishes(-1_000)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if seen[-1].up and seen[-1].others and seen[-1].others.live == 1:
                    break
            assert seen[-1].up
            assert gate.bounds(2_000, time.monotonic_ns()) == (11_000, 9_000)   # others -0.1 now
            stop.set()
            await asyncio.wait_for(task, 10)
            await other.r.aclose()
            gate.close()

        with caplog.at_level(logging.WARNING, logger="fastmm.firm"):
            asyncio.run(go())
        downs = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        backs = [r for r in caplog.records if "Redis back" in r.getMessage()]
        assert len(downs) == 1 and len(backs) == 1
    finally:
        for ch in (pos, out):
            ch.close()
            ch.unlink()
