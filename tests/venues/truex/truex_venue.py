"""The TrueX simulator with its REST endpoints and one fastmm order-entry session, in this event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastmm.backoff import Backoff
from fastmm.config import InstrumentConfig
from fastmm.fix.session import AppMessage, Event, FixSession, SessionSettings
from fastmm.fix.store import MemorySeqStore
from fastmm.fix.transport import FixInitiator
from fastmm.instrument import Instrument
from fastmm.sim.truex import TruexSimSettings
from fastmm.sim.truex_rest import TruexRestSim
from fastmm.sim.truex_server import TruexSimServer
from fastmm.venues.truex.auth import LogonCredentials
from fastmm.venues.truex.codec import ExecutionReport, TruexCodec
from fastmm.venues.truex.rest import TruexRest

INSTRUMENT = Instrument.from_config(InstrumentConfig())
KEY, SECRET, USER = "sim-key", "sim-secret", "user-1"
CLIENT_ID = "SIMCLIENT"   # the simulator's default client id (ExchangeRules.client_id)
REF_TICKS = 120_000       # 60,000 PYUSD


class Venue:
    """``async with Venue() as v``: sim (reference set, no replay), REST on loopback, OE logged on."""

    def __init__(self, **rest_kw: Any) -> None:
        self.sim = TruexSimServer(INSTRUMENT, [], TruexSimSettings(api_key_id=KEY, api_secret=SECRET),
                                  heartbeat_s=1)
        self.rest_sim = TruexRestSim(self.sim)
        self.codec = TruexCodec(INSTRUMENT, CLIENT_ID)
        self.events: list[Event] = []
        self.rest_kw = rest_kw
        self.url = ""
        self.ini: FixInitiator | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Venue:
        self.sim.exchange.engine.set_reference(REF_TICKS)
        oe_port, _ = await self.sim.start()
        self.url = f"http://127.0.0.1:{await self.rest_sim.start()}"
        session = FixSession(SessionSettings("FASTMM", "TRUEX_UAT_OE", heartbeat_s=1), MemorySeqStore(),
                             logon_fields=LogonCredentials(KEY, SECRET), decoder=self.codec.decode)
        self.ini = FixInitiator(session, "127.0.0.1", oe_port, lambda c, e: self.events.append(e),
                                backoff=Backoff(0.05, 0.2, seed=2))
        self._task = asyncio.create_task(self.ini.run())
        await self.ini.wait_logged_on(10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ini is not None:
            await self.ini.stop("done")
        if self._task is not None:
            await asyncio.wait_for(self._task, 5)
        await self.rest_sim.stop()
        await self.sim.stop()

    def rest(self, **kw: Any) -> TruexRest:
        args = {"min_interval_s": 0.0, **self.rest_kw, **kw}
        key, secret = args.pop("key", KEY), args.pop("secret", SECRET)
        return TruexRest(self.url, USER, key, secret, INSTRUMENT, **args)

    def reports(self) -> list[ExecutionReport]:
        return [e.record for e in self.events if isinstance(e, AppMessage) and isinstance(e.record, ExecutionReport)]

    async def until(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        end = asyncio.get_running_loop().time() + timeout
        while not cond():
            assert asyncio.get_running_loop().time() < end, f"timed out; last events {self.events[-5:]}"
            await asyncio.sleep(0.01)

    async def place(self, cl: str, side: str, lots: int, ticks: int) -> ExecutionReport:
        assert self.ini is not None
        self.ini.send(b"D", self.codec.new_order_single(cl, side, lots, ticks))
        await self.until(lambda: any(r.cl_ord_id == cl for r in self.reports()))
        return next(r for r in self.reports() if r.cl_ord_id == cl)
