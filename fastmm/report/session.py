"""A session rebuilt from its journal records (pure but :func:`read_records`): quotes, mids, fills,
position and exact PnL through the engine's own :class:`~fastmm.core.pnl.PnLTracker`, orders through the
journal's one fold (:class:`fastmm.journal.replay.OrderFold`); and the report's JSON summary."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastmm.config import Config
from fastmm.core.pnl import PnLTracker
from fastmm.core.types import HedgeFilled, Liquidity, OrderFilled, Side
from fastmm.instrument import Instrument
from fastmm.journal.reader import segments
from fastmm.journal.records import Fill as FillRecord
from fastmm.journal.records import HedgeFill, Record, RecordError, from_dict
from fastmm.journal.replay import Booking, OrderFold
from fastmm.logs import OnceLogger
from fastmm.monitor.journal_stats import JournalStats, parse_lines
from fastmm.units import E8, e8_to_decimal, format_e8

log = logging.getLogger("fastmm.report")


@dataclass
class Fill:
    """One fill as the report lists it."""

    t_ns: int
    venue: str          # truex | kraken
    side: str           # buy | sell
    price: float
    qty_btc: float
    liquidity: str
    fee: str | None
    cl_ord_id: str


@dataclass
class Session:
    """Everything the report shows, rebuilt from journal records."""

    start_ns: int = 0
    end_ns: int = 0
    records: int = 0
    skipped: int = 0
    quotes: list[tuple[int, float, float]] = field(default_factory=list)    # t, best bid, best ask (0 none)
    mids: list[tuple[int, float, str]] = field(default_factory=list)        # t, mid, source
    pnl: list[tuple[int, float, float, float, float]] = field(default_factory=list)  # t, total, realized,
    #                                                                                # unrealized, fees
    position: list[tuple[int, float]] = field(default_factory=list)        # t, BTC
    fills: list[Fill] = field(default_factory=list)
    stats: JournalStats = field(default_factory=lambda: JournalStats(keep_samples=True))
    final: dict[str, Any] = field(default_factory=dict)
    lot_size: Decimal = Decimal(0)      # the instrument's lot, BTC (a position in lots times this is BTC)


class _Rebuild:
    """Folds records into a :class:`Session` (no I/O): orders and fills through the journal's one fold
    (:class:`fastmm.journal.replay.OrderFold`, its ``working`` view: what the venue most likely shows)."""

    def __init__(self, cfg: Config) -> None:
        self.instrument = Instrument.from_config(cfg.instrument)
        self.tick = float(cfg.instrument.tick_size)
        self.lot = float(cfg.instrument.lot_size)
        self.pnl = PnLTracker(cfg.pnl, cfg.fees, self.instrument)
        self.fold = OrderFold()
        self.s = Session(lot_size=cfg.instrument.lot_size)
        self.bad = OnceLogger(log)
        self._last_quote: tuple[float, float] | None = None
        self._last_mid = 0.0

    def feed(self, rec: Record | dict[str, Any]) -> None:
        s = self.s
        if isinstance(rec, dict):
            kind, t = rec.get("kind"), rec.get("t_ns")
            if not isinstance(kind, str) or not isinstance(t, int) or isinstance(t, bool):
                s.skipped += 1
                self.bad("report: journal record without kind or t_ns skipped", repr(rec)[:100])
                return
            try:
                rec = from_dict(rec)
            except RecordError as e:
                s.records += 1
                s.start_ns = s.start_ns or t
                s.end_ns = max(s.end_ns, t)
                s.skipped += 1
                self.bad(f"report: unreadable {kind} record skipped", f"{e}: {repr(rec)[:100]}")
                return
        t = rec.t_ns
        s.records += 1
        s.start_ns = s.start_ns or t
        s.end_ns = max(s.end_ns, t)
        s.stats.feed(rec)
        if self.fold.apply(rec) == Booking.BOOKED:
            if isinstance(rec, FillRecord):
                self._fill(rec)
            elif isinstance(rec, HedgeFill):
                self._hedge_fill(rec)
        mid_e8 = getattr(rec, "fair_mid_e8", 0)
        if mid_e8 > 0:
            self._mark(t, mid_e8 / E8, "journal")
        self._quote_changed(t)

    def _fill(self, rec: FillRecord) -> None:
        liq = Liquidity.TAKER if rec.liquidity == 2 else Liquidity.MAKER
        fee = e8_to_decimal(rec.fee_e8) if rec.fee_e8 is not None else None
        self.pnl.on_truex_fill(rec.t_ns, OrderFilled(rec.cl_ord_id, rec.exec_id, rec.side, rec.px_ticks,
                                                     rec.qty_lots, rec.leaves_lots, liq, fee))
        self.s.fills.append(Fill(rec.t_ns, "truex", rec.side.name.lower(), rec.px_ticks * self.tick,
                                  rec.qty_lots * self.lot, liq.name.lower(),
                                  format_e8(rec.fee_e8) if rec.fee_e8 is not None else None, rec.cl_ord_id))
        self._money(rec.t_ns)

    def _hedge_fill(self, rec: HedgeFill) -> None:
        assert rec.side is not None     # the fold books none without
        price, fee = e8_to_decimal(rec.price_e8), e8_to_decimal(rec.fee_e8 or 0)
        self.pnl.on_hedge_fill(rec.t_ns, HedgeFilled(rec.exec_id, rec.side, rec.qty_lots, price,
                                                     Liquidity.TAKER, fee))
        self.s.fills.append(Fill(rec.t_ns, "kraken", rec.side.name.lower(), float(price),
                                  rec.qty_lots * self.lot, "taker", format_e8(rec.fee_e8 or 0),
                                  rec.cl_ord_id))
        self._money(rec.t_ns)

    def _quote_changed(self, t: int) -> None:
        working = self.fold.working
        bids = [p for sd, p in working.values() if sd == Side.BUY]
        asks = [p for sd, p in working.values() if sd == Side.SELL]
        q = (max(bids) * self.tick if bids else 0.0, min(asks) * self.tick if asks else 0.0)
        if q == self._last_quote:
            return
        self._last_quote = q
        self.s.quotes.append((t, *q))
        if q[0] and q[1] and not any(src == "journal" for _, _, src in self.s.mids[-1:]):
            self._mark(t, (q[0] + q[1]) / 2, "quote centre")

    def _mark(self, t: int, mid: float, source: str) -> None:
        if mid == self._last_mid:
            return
        self._last_mid = mid
        self.s.mids.append((t, mid, source))
        self.pnl.on_mark(t, mid)
        if self.pnl.position_lots:
            self._money(t)

    def _money(self, t: int) -> None:
        p = self.pnl
        self.s.pnl.append((t, p.total_units / E8, p.realized_units / E8, p.unrealized_units / E8,
                           p.fees_units / E8))
        self.s.position.append((t, p.position_lots * self.lot))

    def finish(self) -> Session:
        p = self.pnl
        sm = p.summary(self.s.end_ns)
        self.s.final = {
            "position_btc": p.position_lots * self.lot, "realized": float(sm.realized),
            "unrealized": float(sm.unrealized), "fees": float(sm.fees), "total": float(sm.total),
            "trades": sm.trades, "volume_btc": sm.volume_lots * self.lot,
            "volume_notional": float(sm.volume_notional), "max_drawdown": float(sm.max_drawdown),
            "avg_entry": float(p.avg_entry() or 0), "last_mid": self._last_mid,
        }
        return self.s


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every record of a journal (rotated segments first); corrupt lines are skipped and counted."""
    records: list[dict[str, Any]] = []
    lines = 0
    for seg in segments(path):
        data = seg.read_bytes()
        data = data[: data.rfind(b"\n") + 1]           # a torn last line of a crashed writer
        lines += sum(1 for ln in data.splitlines() if ln.strip())
        records.extend(parse_lines(data))
    return records, lines - len(records)


def build_session(records: list[dict[str, Any]], cfg: Config) -> Session:
    r = _Rebuild(cfg)
    def t_ns(rec: dict[str, Any]) -> int:
        t = rec.get("t_ns")
        return t if isinstance(t, int) else 0

    for rec in sorted(records, key=t_ns):
        r.feed(rec)
    return r.finish()


def utc_text(t_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t_ns / 1e9)) + f".{t_ns % 10**9 // 10**6:03d}Z"


def summary(s: Session, extras: dict[str, Any]) -> dict[str, Any]:
    st = s.stats.summary(s.end_ns)
    fills = {v: sum(f.venue == v for f in s.fills) for v in ("truex", "kraken")}
    return {"journal": extras.get("journal"), "start": utc_text(s.start_ns) if s.start_ns else None,
            "end": utc_text(s.end_ns) if s.end_ns else None,
            "duration_s": round((s.end_ns - s.start_ns) / 1e9, 3),
            "records": s.records, "skipped_records": s.skipped, "corrupt_lines": extras.get("corrupt", 0),
            "rebuilt": s.final, "orders": st["order_messages"], "rejects": st["rejects"],
            "round_trips_ms": st["round_trips"], "fills": fills,
            "engine_report": extras.get("engine_report"), "stage_latency_us": extras.get("latency")}
