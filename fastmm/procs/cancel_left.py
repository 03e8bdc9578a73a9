"""``cancel-left``: what the supervisor runs the moment the quoter dies, before the restart back-off.

A quoter in a crash loop would otherwise leave its quotes resting, managed by nobody, for as long as the
back-off (up to 10 s). This process cancels, over the engine's own order-entry session (the dead quoter
no longer holds it, and the supervisor restarts the quoter only after this has ended), every order the
journal says may be live: the machinery of ``fastmm ops cancel-orders``, paced under TrueX's throttle by
the same limiter, each cancel and report journalled.
"""

from __future__ import annotations

import logging
import sys

from fastmm.config import Config
from fastmm.ops.cancel import cancel_orders
from fastmm.procs.plan import CANCEL_LEFT_TIMEOUT_S

log = logging.getLogger("fastmm.cancel_left")


async def run_supervised(cfg: Config, name: str = "cancel-left") -> int:
    """0 when every possibly-live order is confirmed ended (or there was none), non-zero otherwise (the
    supervisor logs it and journals a risk record)."""
    code = await cancel_orders(cfg, CANCEL_LEFT_TIMEOUT_S, sys.stderr)
    if code:
        log.error("%s: orders may still be live on TrueX (status %d)", name, code)
    return code
