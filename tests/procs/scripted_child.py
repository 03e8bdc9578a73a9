"""A real child process that follows the supervisor contract the way its role would, on a script.

The supervisor tests start it in place of the venue processes, so the supervisor's own behaviour (spawn,
pin, watch, restart, start and stop sequences) is tested with real processes and real shared memory.
Environment: FASTMM_PROCESS (its role), SCRIPTED_HANG=<role> (stop heartbeating after 0.3 s),
SCRIPTED_NO_ACK=<command> (never acknowledge that command).
"""

from __future__ import annotations

import os
import sys
import time

from fastmm.config import load_config
from fastmm.procs.child import SupervisorLink, die_with_parent
from fastmm.shm.records import (
    STATE_CONNECTED,
    STATE_FLAT,
    STATE_FRESH,
    STATE_LOGGED_ON,
    STATE_QUOTING,
    STATE_RISK_TRIPPED,
    STATE_SUBSCRIBED,
)

UP_BITS = {
    "feed-coinbase": STATE_CONNECTED | STATE_FRESH,
    "feed-kraken": STATE_CONNECTED | STATE_FRESH,
    "feed-truex-md": STATE_CONNECTED | STATE_LOGGED_ON | STATE_SUBSCRIBED,
    "quoter": STATE_CONNECTED | STATE_LOGGED_ON | STATE_FLAT,
    "hedger": STATE_CONNECTED | STATE_FLAT,
}


def main() -> int:
    die_with_parent()
    name = os.environ["FASTMM_PROCESS"]
    cfg = load_config(None, os.environ)
    link = SupervisorLink(cfg, name)
    started = time.monotonic()
    hang = os.environ.get("SCRIPTED_HANG") == name
    no_ack = os.environ.get("SCRIPTED_NO_ACK", "")
    while True:
        now = time.monotonic()
        if hang and now - started > 0.3:
            time.sleep(3600)
        # The start sequence: the quoter logs on once feeds are up, market data subscribes once
        # order entry is logged on (the real processes wait for the phase the same way).
        phase = link.phase()
        ready = {"quoter": phase >= 1, "feed-truex-md": phase >= 2}.get(name, True)
        if now - started > 0.05 and ready and link.control.read() > 0 and phase < 5:
            link.set_state(UP_BITS[name])
        cmd = link.pending_command()
        if cmd is not None:
            cid, what = cmd
            if what == "exit":
                link.ack(cid)
                return 0
            if what == "start_quoting" and name == "quoter":
                link.set_state(STATE_QUOTING)
                link.set_state(STATE_FLAT, False)
                if os.environ.get("SCRIPTED_RISK_TRIP"):
                    link.set_state(STATE_RISK_TRIPPED)
            elif what in ("pull_quotes", "cancel_all") and name == "quoter":
                link.set_state(STATE_QUOTING, False)
                link.set_state(STATE_FLAT)
            elif what == "logout" and name in ("quoter", "feed-truex-md"):
                link.set_state(STATE_LOGGED_ON | STATE_SUBSCRIBED, False)
            if what != no_ack:
                link.ack(cid)
        link.heartbeat()
        time.sleep(0.005)


if __name__ == "__main__":
    sys.exit(main())
