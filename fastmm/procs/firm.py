"""The firm process (``firm.enabled``): fastmm.db.firm under the supervisor.

It reads ``position`` (the quoter's) and ``control`` (the phase), and writes ``firm``. Health
``messages`` counts successful Redis round trips, ``errors`` failed ones; STATE_CONNECTED says Redis
answered last time (``fastmm status`` shows it).
"""

from __future__ import annotations

import asyncio

from fastmm.config import Config
from fastmm.db import firm
from fastmm.procs.child import SupervisorLink, serve_supervisor, stop_on_signals
from fastmm.procs.lifecycle import Phase
from fastmm.shm import LatestValue
from fastmm.shm.records import FIRM, POSITION, STATE_CONNECTED


async def run_supervised(cfg: Config, name: str = "firm") -> int:
    stop = stop_on_signals()
    link = SupervisorLink(cfg, name)
    inst = cfg.instance.name
    position = LatestValue.attach(inst, "position", POSITION)
    out = LatestValue.attach(inst, "firm", FIRM)
    out.claim_writer()

    def phase() -> str:
        p = link.phase()
        return Phase(p).name if p in Phase._value2member_map_ else str(p)

    def status(s: firm.FirmStatus) -> None:
        link.messages, link.errors = s.publishes, s.errors
        link.set_state(STATE_CONNECTED, s.up)

    beat = asyncio.ensure_future(serve_supervisor(link, stop))
    try:
        await firm.run(cfg, stop, position, out, phase=phase, on_status=status)
    finally:
        stop.set()
        await beat
        position.close()
        out.close()
        link.close()
    return 0
