"""The quoter's and the hedger's side of the firm-wide view: the ``firm`` shared-memory value read off
the hot path (on the quoter's timer, the hedger's loop), turned into position bounds (fastmm.core.firm_limit).

The firm process (fastmm.db.firm) writes the value about every ``firm.publish_ms``; a value whose last
successful Redis round trip is older than three publish intervals (at least 3 s) counts as Redis down.
"""

from __future__ import annotations

import contextlib
import logging

from fastmm.config import Config
from fastmm.core.firm_limit import Bounds, FirmView, firm_bounds, view_from_record
from fastmm.instrument import Instrument
from fastmm.shm import LatestValue, SegmentMissing
from fastmm.shm.records import FIRM
from fastmm.units import E8

log = logging.getLogger("fastmm.firm")


class FirmGate:
    def __init__(self, cfg: Config, channel: LatestValue) -> None:
        self.ch = channel
        self.lot_e8 = Instrument.from_config(cfg.instrument).lot_e8
        self.cap_e8 = int(cfg.risk.firm_max_position_btc * E8)
        self.stop_when_down = cfg.firm.stop_opening_when_down
        self.stale_ns = max(3_000_000_000, 3 * cfg.firm.publish_ms * 1_000_000)
        self._was_current: bool | None = None

    @classmethod
    def attach(cls, cfg: Config) -> FirmGate | None:
        """The gate when the instance runs the firm process, else None."""
        if not cfg.firm.enabled:
            return None
        with contextlib.suppress(SegmentMissing):
            return cls(cfg, LatestValue.attach(cfg.instance.name, "firm", FIRM))
        return None

    def view(self, now_ns: int) -> FirmView | None:
        v = None if self.ch.read() <= 0 else view_from_record(self.ch.rx[0], now_ns, self.stale_ns)
        current = v is not None and v.current
        if current != self._was_current and self._was_current is not None:
            if current:
                log.warning("firm view back: firm-wide cap applies again")
            else:
                log.error("firm view lost (Redis or the firm process): own limits only%s",
                          "; opening no new risk" if self.stop_when_down else "")
        self._was_current = current
        return v

    def bounds(self, own_lots: int, now_ns: int) -> Bounds | None:
        return firm_bounds(own_lots, self.lot_e8, self.cap_e8, self.view(now_ns), self.stop_when_down)

    def others_lots(self, now_ns: int) -> int | None:
        """The other live instances' summed position in this instance's lots (None: no current view)."""
        v = self.view(now_ns)
        if v is None or not v.current:
            return None
        return int(v.others_position_e8 // self.lot_e8)

    def close(self) -> None:
        self.ch.close()
