"""The desired ladder: integer (price ticks, size lots) levels per side, from float offsets around the mid.

Rules applied here, so that every level the ladder returns is one TrueX accepts:

* bids snap down and asks up to the tick (never a better price than the model asked for);
* level i sits ``i x level_spacing_ticks`` behind level 0; sizes decay from the base size by
  ``size_decay`` per level, floored to the lot;
* post-only: a bid stays at least one tick under the TrueX best ask, an ask one tick over the best bid,
  and our best bid stays under our best ask;
* room: the sizes on a side add up to at most the room the inventory limit leaves on that side;
* price band: a level outside +/- ``price_band_pct`` of the reference (the fair mid) is dropped, as is
  one whose notional is under ``min_notional`` (checked exactly in ticks x lots).

Levels are returned best first, prices strictly monotonic, as tuples of tuples (cheap, hashable).
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING

from fastmm.config import QuotingConfig, VenueRulesConfig
from fastmm.instrument import Instrument

Level = tuple[int, int]  # (price ticks, size lots)
LadderSide = tuple[Level, ...]
EMPTY: LadderSide = ()


class LadderBuilder:
    """Precomputes sizes and limits once; :meth:`build` uses only ints and floats."""

    __slots__ = ("_band_frac", "_depth", "_min_size", "_min_tl", "_steps", "_total", "last_band",
                 "last_band_ref", "levels", "sizes", "spacing", "tick_f")

    def __init__(self, quoting: QuotingConfig, rules: VenueRulesConfig, instrument: Instrument) -> None:
        self.levels = quoting.levels
        self.spacing = quoting.level_spacing_ticks
        base = instrument.qty_floor_lots(quoting.base_size_btc)
        sizes = []
        for i in range(self.levels):
            lots = int(base * quoting.size_decay**i)
            sizes.append(max(lots, 1) if base else 0)
        self.sizes = tuple(sizes)
        self._steps = tuple((i * self.spacing, sz) for i, sz in enumerate(self.sizes))
        self._depth = (self.levels - 1) * self.spacing
        self._total = sum(self.sizes)
        self._min_size = min(self.sizes) if self.sizes else 0
        self.tick_f = float(instrument.tick_size)
        # minimum notional in ticks x lots, rounded up so the integer test is exact
        per = instrument.tick_size * instrument.lot_size
        self._min_tl = int((rules.min_notional / per).to_integral_value(ROUND_CEILING))
        self._band_frac = float(rules.price_band_pct) / 100.0
        # the band of the last build and the reference it was made for: the engine checks every order
        # against the same band, so it takes it from here instead of computing it again
        self.last_band = (0, 0)
        self.last_band_ref = math.nan

    @property
    def min_tick_lots(self) -> int:
        return self._min_tl

    def band(self, ref_ticks: float) -> tuple[int, int]:
        """Lowest and highest price in ticks inside the band around a reference (inclusive)."""
        width = ref_ticks * self._band_frac
        return math.ceil(ref_ticks - width), math.floor(ref_ticks + width)

    def build(self, mid_ticks: float, bid_off: float, ask_off: float, best_bid: int = 0, best_ask: int = 0,
              bid_room: int = 1 << 62, ask_room: int = 1 << 62) -> tuple[LadderSide, LadderSide]:
        """Both sides of the ladder. ``best_bid``/``best_ask`` 0 = unknown (no post-only clamp)."""
        width = mid_ticks * self._band_frac  # band(), inlined
        lo = math.ceil(mid_ticks - width)
        hi = math.floor(mid_ticks + width)
        self.last_band = (lo, hi)
        self.last_band_ref = mid_ticks
        bid0 = math.floor(mid_ticks - bid_off)
        ask0 = math.ceil(mid_ticks + ask_off)
        if best_ask > 0 and bid0 >= best_ask:
            bid0 = best_ask - 1
        if best_bid > 0 and ask0 <= best_bid:
            ask0 = best_bid + 1
        if ask0 <= bid0:
            # the model crossed itself (huge skew): keep the side that reduces risk nearest the mid
            if bid_off < ask_off:
                ask0 = bid0 + 1
            else:
                bid0 = ask0 - 1
        min_tl = self._min_tl
        depth = self._depth
        if (bid0 - depth >= lo and bid0 <= hi and ask0 >= lo and ask0 + depth <= hi and bid0 - depth > 0
                and bid_room >= self._total and ask_room >= self._total
                and (bid0 - depth) * self._min_size >= min_tl):
            # the usual case: the whole ladder fits in the band, the room and the notional (prices on the
            # ask side are higher, so its notional is larger too)
            # one plain loop: on CPython 3.11 each list comprehension is a function call of its own
            fb: list[Level] = []
            fa: list[Level] = []
            for d, q in self._steps:
                fb.append((bid0 - d, q))
                fa.append((ask0 + d, q))
            return tuple(fb), tuple(fa)
        sizes = self.sizes
        spacing = self.spacing
        bids: list[Level] = []
        room = bid_room
        for i, size in enumerate(sizes):
            px = bid0 - i * spacing
            if px < lo or px <= 0:
                break
            if px > hi:
                continue
            q = size if size <= room else room
            if q <= 0:
                break
            if px * q < min_tl:
                continue
            bids.append((px, q))
            room -= q
        asks: list[Level] = []
        room = ask_room
        for i, size in enumerate(sizes):
            px = ask0 + i * spacing
            if px > hi:
                break
            if px < lo:
                continue
            q = size if size <= room else room
            if q <= 0:
                break
            if px * q < min_tl:
                continue
            asks.append((px, q))
            room -= q
        return tuple(bids), tuple(asks)


def notional_ok(price_ticks: int, qty_lots: int, min_tick_lots: int) -> bool:
    return price_ticks > 0 and qty_lots > 0 and price_ticks * qty_lots >= min_tick_lots

