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
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from fastmm.config import Config
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import HedgeFilled, Liquidity, OrderFilled, Side
from fastmm.core.vet import OrderTerms, hedge_fill_problem
from fastmm.journal import read_journal, segments
from fastmm.venues.truex.reconcile import MATCH_KEY_PREFIX

log = logging.getLogger("fastmm.recovery")

HEDGER_JOURNAL = "hedger.jsonl"   # in the state folder, next to the quoter's journal
RATE_MEMORY_NS = 62_000_000_000   # TrueX's longest message window (a minute) plus the engine's guard


@dataclass
class Recovered:
    possibly_live: dict[str, Side] = field(default_factory=dict)   # ClOrdID -> side
    truex_fills: int = 0
    hedge_fills: int = 0
    records: int = 0
    skipped: int = 0        # records that could not be replayed (malformed, or an impossible fill)
    fill_ids: set[str] = field(default_factory=set)
    # ClOrdID -> (price ticks, order quantity lots, filled lots) as the journal last had them
    terms: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # hedge fills in the hedger's journal that the quoter's journal did not have (booked by recover)
    unbooked_hedge_fills: list[HedgeFilled] = field(default_factory=list)

    def adopt(self, core: TradingCore, now_ns: int) -> int:
        """Track every possibly-live order in ``core`` as live; returns how many."""
        for cl, side in self.possibly_live.items():
            price, qty, cum = self.terms.get(cl, (0, 0, 0))
            core.adopt_order(cl, side, price, max(qty, cum + 1), cum, now_ns)
        return len(self.possibly_live)

    def order_terms(self, cl: str) -> OrderTerms | None:
        side = self._sides.get(cl)
        if side is None:
            return None
        price, qty, cum = self.terms.get(cl, (0, 0, 0))
        return OrderTerms(side, price, qty, cum, self._alt_price.get(cl, 0))

    _sides: dict[str, Side] = field(default_factory=dict, repr=False)
    _alt_price: dict[str, int] = field(default_factory=dict, repr=False)


def _side(v: object) -> Side:
    return Side.BUY if str(v) in ("1", "BUY", "buy") else Side.SELL


def hedger_fills(path: Path) -> list[HedgeFilled]:
    """Every hedge fill the hedger published, as the quoter would have taken it from the ring: whole
    lots, the price of that slice (8 decimals), the fee of that slice (Kraken reports cumulative fees
    per order; the first e-8 rounded half-even, as on the ring)."""
    if not path.exists() and not segments(path):
        return []
    side_of: dict[str, Side] = {}
    fee_seen: dict[str, Decimal] = {}
    out: list[HedgeFilled] = []
    for rec in read_journal(path):
        kind = rec.get("kind")
        cl = str(rec.get("cl_ord_id", ""))
        if kind == "hedge":
            side_of[cl] = _side(rec.get("side"))
        elif kind == "hedge_fill":
            fee = Decimal(str(rec.get("fee", "0")))
            d_fee = fee - fee_seen.get(cl, Decimal(0))
            fee_seen[cl] = fee
            lots = int(rec.get("lots", 0))
            if lots <= 0:
                continue      # a sub-lot slice, carried to the next fill: never published
            if cl not in side_of:
                log.error("recovery: hedge fill %s of order %s whose side the hedger's journal lacks; not "
                          "booked", rec.get("exec_id"), cl)
                continue
            fee_e8 = int((d_fee * 10**8).to_integral_value(ROUND_HALF_EVEN))
            px_e8 = int(Decimal(str(rec["price"])) * 10**8)
            out.append(HedgeFilled(str(rec["exec_id"])[:40], side_of[cl], lots, Decimal(px_e8) / 10**8,
                                   Liquidity.TAKER, Decimal(fee_e8) / 10**8))
    return out


_BAD_RECORD = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError)


def recover(journal_path: Path, core: TradingCore, cfg: Config) -> Recovered:
    """Replay the journal into ``core``. Any record ever written is survived: one that cannot be read,
    or a fill that cannot be true (fastmm.core.vet; e.g. one an older version booked), is skipped with a
    warning and counted in ``skipped``, never booked and never a crash."""
    out = Recovered()
    if not journal_path.exists() and not segments(journal_path):
        return out
    live = out.possibly_live
    seen_exec: set[str] = set()
    now = time.monotonic_ns()
    wall_now = time.time_ns()
    sent_recently: list[int] = []     # this run's monotonic clock

    def skip(rec: dict[str, object], why: str) -> None:
        out.skipped += 1
        if out.skipped <= 20:
            log.warning("recovery: skipped journal record %s (%s): %s", rec.get("seq"), rec.get("kind"), why)

    for rec in read_journal(journal_path, skip_corrupt=True):
        out.records += 1
        try:
            _replay(rec, out, core, live, seen_exec, sent_recently, now, wall_now, skip)
        except _BAD_RECORD as e:
            skip(rec, f"{type(e).__name__}: {e}")
    for fill in hedger_fills(cfg.state_path / HEDGER_JOURNAL):
        if fill.exec_id in seen_exec:
            continue
        problem = hedge_fill_problem(fill.qty_lots, fill.price, fill.fee)
        if problem is not None:
            log.warning("recovery: hedge fill %s in the hedger's journal not booked: %s", fill.exec_id,
                        problem)
            out.skipped += 1
            continue
        seen_exec.add(fill.exec_id)
        core.on_hedge_fill(fill, now)
        out.hedge_fills += 1
        out.unbooked_hedge_fills.append(fill)
    if out.unbooked_hedge_fills:
        log.warning("recovery: %d hedge fill(s) in the hedger's journal were never booked by the quoter; "
                    "booked now: %s", len(out.unbooked_hedge_fills),
                    ", ".join(f.exec_id for f in out.unbooked_hedge_fills))
    if sent_recently:
        # the venue still counts what the previous run sent in the last minute: so must our limiter
        core.preload_sent(sent_recently)
    # a fill the venue resends for one of these (not journalled before a crash or a full disk) is checked
    # against these terms until the order is adopted
    for cl in live:
        terms = out.order_terms(cl)
        if terms is not None:
            core.prior_orders[cl] = terms
    if out.skipped:
        log.error("recovery: %d journal record(s) skipped (malformed or impossible); see the warnings above",
                  out.skipped)
    if out.records:
        log.warning("recovery: %d journal records; position %d lots from %d TrueX and %d hedge fills; "
                    "%d order(s) possibly live", out.records, core.inventory.position_lots, out.truex_fills,
                    out.hedge_fills, len(live))
    return out


def _replay(rec: dict[str, object], out: Recovered, core: TradingCore, live: dict[str, Side],
            seen_exec: set[str], sent_recently: list[int], now: int, wall_now: int,
            skip: Callable[[dict[str, object], str], None]) -> None:
    kind = rec.get("kind")
    cl = str(rec.get("cl_ord_id", ""))
    if kind in ("order", "cancel", "replace"):
        age = wall_now - int(rec.get("t_ns", 0))  # type: ignore[call-overload]
        if 0 <= age < RATE_MEMORY_NS:
            sent_recently.append(now - age)
    if kind in ("order", "replace"):
        side = _side(rec.get("side"))
        price, qty = int(rec.get("price_ticks", 0)), int(rec.get("qty_lots", 0))  # type: ignore[call-overload]
        orig = str(rec.get("orig_cl_ord_id", ""))
        cum = out.terms.get(orig, (0, 0, 0))[2] if kind == "replace" else 0
        if kind == "replace" and orig in out.terms:
            # until the answer: a fill on the old id may be against either size and either limit
            opx, oqty, ocum = out.terms[orig]
            out.terms[orig] = (opx, max(oqty, qty), ocum)
            out._alt_price[orig] = price
        live[cl] = side
        out._sides[cl] = side
        out.terms[cl] = (price, qty, cum)
    elif kind == "replaced":
        live.pop(str(rec.get("orig_cl_ord_id", "")), None)
    elif kind in ("canceled", "reject"):
        live.pop(cl, None)
        live.pop(str(rec.get("orig_cl_ord_id", "")), None)
    elif kind == "cancel_reject" and rec.get("reason") == 1:
        pass    # unknown order: whatever it was, it is not live under that id
    elif kind == "fill":
        exec_id = str(rec.get("exec_id", ""))
        if exec_id in seen_exec:
            return
        fee = rec.get("fee")
        ev = OrderFilled(cl, exec_id, _side(rec.get("side")), int(rec["px_ticks"]),  # type: ignore[call-overload]
                         int(rec["qty_lots"]), int(rec.get("leaves_lots", 0)),  # type: ignore[call-overload]
                         Liquidity.TAKER if rec.get("liquidity") == 2 else Liquidity.MAKER,
                         Decimal(str(fee)) if fee not in (None, "None") else None)
        problem = core.replay_fill(ev, out.order_terms(cl), now)
        if problem is not None:
            skip(rec, f"not booked: {problem}")
            return
        seen_exec.add(exec_id)
        if ev.leaves_lots == 0:
            live.pop(cl, None)
        if cl in out.terms:
            px, qty, cum = out.terms[cl]
            out.terms[cl] = (px, qty, cum + ev.last_qty_lots)
        out.truex_fills += 1
        out.fill_ids.add(exec_id)
        if rec.get("match_id"):   # a fill booked from REST must not come again over FIX (and back)
            out.fill_ids.add(MATCH_KEY_PREFIX + str(rec["match_id"]))
    elif kind == "hedge_fill" and rec.get("source") == "quoter":
        exec_id = str(rec.get("exec_id", ""))
        if exec_id in seen_exec:
            return
        qty, price = int(rec["qty_lots"]), Decimal(str(rec["price"]))  # type: ignore[call-overload]
        fee = Decimal(str(rec.get("fee", "0")))
        problem = hedge_fill_problem(qty, price, fee)
        if problem is not None:
            skip(rec, f"not booked: {problem}")
            return
        seen_exec.add(exec_id)
        core.on_hedge_fill(HedgeFilled(exec_id, _side(rec.get("side")), qty, price, fee=fee), now)
        out.hedge_fills += 1
