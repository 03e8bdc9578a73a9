"""Who must still confirm the current stop step, and when the step is done (sans-I/O).

Children acknowledge a command by its id in their health record. A stop step is done when every process
that must acknowledge its command has: the quoter for ``cancel_all``, the hedger for ``hedge_flat``, and
for ``logout`` the quoter, the TrueX market-data feed and the hedger (which acknowledges once no hedge
order of its own is working, so what it executed is on the hedge ring), and the quoter must also have
booked everything on that ring. A dead hedger holds nothing up at logout (its journal lists what it left
open and its next start follows it), and a dead quoter's cancel step is confirmed by its clean-up
(``cancel-left``) instead.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from fastmm.procs.lifecycle import StopStep
from fastmm.procs.plan import FEED_TRUEX_MD, HEDGER, QUOTER

ACKERS: dict[str, tuple[str, ...]] = {
    "cancel_all": (QUOTER,),
    "hedge_flat": (HEDGER,),
    "logout": (QUOTER, FEED_TRUEX_MD, HEDGER),
}
STEP_OF = {"cancel_all": StopStep.CANCEL_QUOTES, "hedge_flat": StopStep.HEDGE, "logout": StopStep.LOGOUT}


class StopAcks:
    """The acknowledgements the current command still waits for."""

    def __init__(self) -> None:
        self.command = "none"
        self.awaiting: dict[str, int] = {}     # process -> the command id it must acknowledge

    def sent(self, command: str, command_id: int, processes: Collection[str]) -> None:
        """A command went out; those of ``processes`` that must acknowledge it are now awaited."""
        self.command = command
        self.awaiting = {p: command_id for p in ACKERS.get(command, ()) if p in processes}

    def cleaned_up(self, process: str) -> bool:
        """``process`` died and its clean-up confirmed every cancel: True when that was awaited."""
        if self.command == "cancel_all" and process in self.awaiting:
            del self.awaiting[process]
            return True
        return False

    def update(self, acked: Mapping[str, int | None], dead: Collection[str],
               hedge_ring_booked: bool) -> StopStep | None:
        """Take the acknowledgements read now (``acked``: the id each live process acknowledged, None
        when it has no health record); the step that is done, if any."""
        if self.command not in ACKERS:
            return None
        for proc, cid in list(self.awaiting.items()):
            ack = acked.get(proc)
            if (ack is not None and ack >= cid) or (proc == HEDGER and self.command == "logout"
                                                    and proc in dead):
                del self.awaiting[proc]
        if self.awaiting or (self.command == "logout" and not hedge_ring_booked):
            return None
        return STEP_OF[self.command]
