"""The firm-wide position cap as room on each side of this instance's ladder. Pure.

Several engines of one firm trade the same base asset (BTC on TrueX here, BTC elsewhere); each
publishes its position to Redis and reads the others' (fastmm.db.firm). ``risk.firm_max_position_btc``
caps |own + others|. The quote engine already limits each side by this instance's own room
(``inventory.max_position_btc``); :func:`firm_room` gives a second, firm-wide limit it takes the smaller
of. The others' positions are up to a publish interval old, so two engines filling at the same moment
can pass the cap by at most their ladders' sizes until the next publish.

Without a current firm view (Redis unreachable, or the firm process silent) the engine keeps its own
limits; with ``firm.stop_opening_when_down`` it only reduces its position until the view is back.
"""

from __future__ import annotations

from dataclasses import dataclass

Room = tuple[int, int]      # (lots this instance may still buy, lots it may still sell)


@dataclass(frozen=True, slots=True)
class FirmView:
    others_position_e8: int     # summed over the other live instances, 1e-8 of the base asset
    others_live: int
    current: bool               # Redis answered within the staleness bound


def firm_room(own_lots: int, lot_e8: int, cap_e8: int, view: FirmView | None,
              stop_opening_when_down: bool) -> Room | None:
    """The firm-wide room on each side, in lots; None when the firm imposes nothing beyond own limits."""
    if view is None or not view.current:
        if not stop_opening_when_down:
            return None
        return (max(0, -own_lots), max(0, own_lots))       # only what brings the position to zero
    if cap_e8 <= 0:
        return None
    firm_e8 = view.others_position_e8 + own_lots * lot_e8
    buy = (cap_e8 - firm_e8) // lot_e8
    sell = (cap_e8 + firm_e8) // lot_e8
    return (max(0, buy), max(0, sell))


def view_from_record(rx: object, now_ns: int, stale_ns: int) -> FirmView:
    """A FIRM shared-memory record (fastmm.shm.records.FIRM) as a view; stale after ``stale_ns``."""
    r = rx  # numpy record: fields by name
    t_ok = int(r["t_ok"])  # type: ignore[index]
    current = bool(int(r["redis_up"])) and t_ok > 0 and now_ns - t_ok <= stale_ns  # type: ignore[index]
    return FirmView(int(r["others_position_e8"]), int(r["others_live"]), current)  # type: ignore[index]
