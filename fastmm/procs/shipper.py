"""The shipper process (``ship.enabled``): fastmm.db.shipper under the supervisor.

Heartbeat and commands as every child; health ``messages`` counts records shipped, ``errors`` failed
database attempts, and STATE_CONNECTED says the database is reachable (``fastmm status`` shows it).
"""

from __future__ import annotations

import asyncio
import logging

from fastmm.config import Config
from fastmm.db import shipper
from fastmm.procs.child import SupervisorLink, serve_supervisor, stop_on_signals
from fastmm.shm.records import STATE_CONNECTED

log = logging.getLogger("fastmm.shipper")


async def run_supervised(cfg: Config, name: str = "shipper") -> int:
    stop = stop_on_signals()
    link = SupervisorLink(cfg, name)

    def status(s: shipper.ShipStats) -> None:
        link.messages, link.errors = s.shipped, s.errors
        link.set_state(STATE_CONNECTED, s.connected)

    beat = asyncio.ensure_future(serve_supervisor(link, stop))
    try:
        await shipper.run(cfg, stop, on_status=status)
    finally:
        stop.set()
        await beat
        link.close()
    return 0
