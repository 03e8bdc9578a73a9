"""Start-up recovery of the quoter from its journal.

TrueX has neither an order-status nor a mass-cancel message, so the journal is the only record of
what may still be working on the venue after a crash. :func:`recover` replays it: fills rebuild the
position and PnL in the trading core (each ExecID once), and every order that was sent and never seen
to end (canceled, rejected, filled, replaced away) is "possibly live". Once order entry is logged on
the quoter adopts each of those into its order tracker as a live order (:meth:`Recovered.adopt`): the
engine, halted until the supervisor says ``start_quoting``, then cancels them through its rate limiter
like any other order, retries a cancel the venue throttled, and ends one the venue says it does not
know. A replace whose answer never came leaves both ids possibly live, and both are adopted (the one
that no longer exists gets an OrderCancelReject for an unknown order, which ends it).

Hedge fills: the hedger journals each fill (``hedger.jsonl``) before it publishes it on the ring, so its
journal is the authority. A fill it published after the quoter had stopped taking from the ring (the
quoter exited first at a stop, or died) is in the hedger's journal and not in the quoter's; recovery
books every such fill once (:attr:`Recovered.unbooked_hedge_fills`, which the quoter then journals), so
the position includes it and the hedger, seeing it, does not hedge the same inventory again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastmm.config import Config
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import HedgeFilled, Liquidity, OrderFilled, Side
from fastmm.core.vet import OrderTerms, hedge_fill_problem
from fastmm.journal.reader import exists, read_records
from fastmm.journal.records import Cancel, Fill, HedgeFill, Order, Replace
from fastmm.journal.replay import Booking, HedgerFold, OrderFold
from fastmm.units import e8_to_decimal

log = logging.getLogger("fastmm.recovery")

HEDGER_JOURNAL = "hedger.jsonl"   # in the state folder, next to the quoter's journal
RATE_MEMORY_NS = 62_000_000_000   # TrueX's longest message window (a minute) plus the engine's guard


@dataclass
class Recovered:
    """What the journal says (:class:`OrderFold`), and what recovery did with it."""

    fold: OrderFold = field(default_factory=OrderFold)
    records: int = 0
    skipped: int = 0        # records that could not be replayed (malformed, or an impossible fill)
    # hedge fills in the hedger's journal that the quoter's journal did not have (booked by recover)
    unbooked_hedge_fills: list[HedgeFilled] = field(default_factory=list)

    @property
    def possibly_live(self) -> dict[str, Side]:
        """ClOrdID -> side of every order that may still be working on the venue."""
        return self.fold.possibly_live

    @property
    def terms(self) -> dict[str, tuple[int, int, int]]:
        return self.fold.terms

    @property
    def fill_ids(self) -> set[str]:
        return self.fold.fill_ids

    @property
    def truex_fills(self) -> int:
        return self.fold.truex_fills

    @property
    def hedge_fills(self) -> int:
        return self.fold.hedge_fills + len(self.unbooked_hedge_fills)

    def adopt(self, core: TradingCore, now_ns: int) -> int:
        """Track every possibly-live order in ``core`` as live; returns how many."""
        for cl, side in self.possibly_live.items():
            price, qty, cum = self.terms.get(cl, (0, 0, 0))
            core.adopt_order(cl, side, price, max(qty, cum + 1), cum, now_ns)
        return len(self.possibly_live)

    def order_terms(self, cl: str) -> OrderTerms | None:
        return self.fold.order_terms(cl)


def hedge_filled(f: HedgeFill) -> HedgeFilled:
    """A hedge fill record as the trading core books it (the exec id as the ring carries it)."""
    assert f.side is not None
    return HedgeFilled(f.exec_id[:40], f.side, f.qty_lots, e8_to_decimal(f.price_e8), Liquidity.TAKER,
                       e8_to_decimal(f.fee_e8 or 0))


def hedger_fills(path: Path) -> list[HedgeFilled]:
    """Every hedge fill the hedger published, as the quoter would have taken it from the ring: whole
    lots, the price of that slice (8 decimals), the fee of that slice."""
    return [hedge_filled(f) for f in HedgerFold.read(path).fills]


def recover(journal_path: Path, core: TradingCore, cfg: Config) -> Recovered:
    """Replay the journal into ``core``. Any record ever written is survived: one that cannot be read,
    or a fill that cannot be true (fastmm.core.vet; e.g. one an older version booked), is skipped with a
    warning and counted in ``skipped``, never booked and never a crash."""
    now = time.monotonic_ns()
    wall_now = time.time_ns()

    def book_fill(f: Fill, terms: OrderTerms | None) -> str | None:
        fee = e8_to_decimal(f.fee_e8) if f.fee_e8 is not None else None
        ev = OrderFilled(f.cl_ord_id, f.exec_id, f.side, f.px_ticks, f.qty_lots, f.leaves_lots,
                         Liquidity.TAKER if f.liquidity == 2 else Liquidity.MAKER, fee)
        return core.replay_fill(ev, terms, now)

    def book_hedge_fill(f: HedgeFill) -> str | None:
        hf = hedge_filled(f)
        problem = hedge_fill_problem(hf.qty_lots, hf.price, hf.fee)
        if problem is None:
            core.on_hedge_fill(HedgeFilled(f.exec_id, hf.side, hf.qty_lots, hf.price, fee=hf.fee), now)
        return problem

    out = Recovered(OrderFold(book_fill, book_hedge_fill))
    if not exists(journal_path):
        return out
    fold = out.fold
    sent_recently: list[int] = []     # this run's monotonic clock

    def skip(seq: object, kind: object, why: str) -> None:
        out.skipped += 1
        if out.skipped <= 20:
            log.warning("recovery: skipped journal record %s (%s): %s", seq, kind, why)

    def bad(obj: Any, why: str) -> None:
        if not isinstance(obj, dict):
            log.warning("journal %s: skipped a corrupt record: %s", journal_path, why)
            return
        out.records += 1
        skip(obj.get("seq"), obj.get("kind"), why)

    for rec in read_records(journal_path, skip_corrupt=True, on_bad=bad):
        out.records += 1
        if isinstance(rec, Order | Cancel | Replace):
            age = wall_now - rec.t_ns
            if 0 <= age < RATE_MEMORY_NS:
                sent_recently.append(now - age)
        if fold.apply(rec) == Booking.REFUSED:
            skip(rec.seq, rec.KIND, f"not booked: {fold.problem}")
    for fill in HedgerFold.read(cfg.state_path / HEDGER_JOURNAL).fills:
        hf = hedge_filled(fill)
        if hf.exec_id in fold.exec_ids:
            continue
        problem = hedge_fill_problem(hf.qty_lots, hf.price, hf.fee)
        if problem is not None:
            log.warning("recovery: hedge fill %s in the hedger's journal not booked: %s", hf.exec_id,
                        problem)
            out.skipped += 1
            continue
        fold.exec_ids.add(hf.exec_id)
        core.on_hedge_fill(hf, now)
        out.unbooked_hedge_fills.append(hf)
    if out.unbooked_hedge_fills:
        log.warning("recovery: %d hedge fill(s) in the hedger's journal were never booked by the quoter; "
                    "booked now: %s", len(out.unbooked_hedge_fills),
                    ", ".join(f.exec_id for f in out.unbooked_hedge_fills))
    if sent_recently:
        # the venue still counts what the previous run sent in the last minute: so must our limiter
        core.preload_sent(sent_recently)
    # a fill the venue resends for one of these (not journalled before a crash or a full disk) is checked
    # against these terms until the order is adopted
    for cl in fold.possibly_live:
        terms = fold.order_terms(cl)
        if terms is not None:
            core.prior_orders[cl] = terms
    if out.skipped:
        log.error("recovery: %d journal record(s) skipped (malformed or impossible); see the warnings above",
                  out.skipped)
    if out.records:
        log.warning("recovery: %d journal records; position %d lots from %d TrueX and %d hedge fills; "
                    "%d order(s) possibly live", out.records, core.inventory.position_lots, out.truex_fills,
                    out.hedge_fills, len(fold.possibly_live))
    return out
