"""Start-up recovery of the quoter from its journal.

TrueX has neither an order-status nor a mass-cancel message, so the journal is the only record of
what may still be working on the venue after a crash. :func:`recover` replays it: fills rebuild the
position and PnL in the trading core (each ExecID once), and every order that was sent and never seen
to end (canceled, rejected, filled, replaced away) is "possibly live"; the quoter cancels each of those
by ClOrdID before it quotes. A replace whose answer never came leaves both ids possibly live, and both
are canceled (the one that no longer exists gets an OrderCancelReject, which is harmless).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from fastmm.config import Config
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import CancelOrder, HedgeFilled, Liquidity, OrderFilled, Side
from fastmm.journal import read_journal, segments

log = logging.getLogger("fastmm.recovery")


@dataclass
class Recovered:
    possibly_live: dict[str, Side] = field(default_factory=dict)   # ClOrdID -> side
    truex_fills: int = 0
    hedge_fills: int = 0
    records: int = 0
    fill_ids: set[str] = field(default_factory=set)

    def cancels(self, core: TradingCore) -> list[CancelOrder]:
        return [CancelOrder(core.engine.ids.next(), cl, side) for cl, side in self.possibly_live.items()]


def _side(v: object) -> Side:
    return Side.BUY if str(v) in ("1", "BUY", "buy") else Side.SELL


def recover(journal_path: Path, core: TradingCore, cfg: Config) -> Recovered:
    out = Recovered()
    if not journal_path.exists() and not segments(journal_path):
        return out
    live = out.possibly_live
    seen_exec: set[str] = set()
    now = time.monotonic_ns()
    for rec in read_journal(journal_path):
        out.records += 1
        kind = rec.get("kind")
        cl = rec.get("cl_ord_id", "")
        if kind in ("order", "replace"):
            live[cl] = _side(rec.get("side"))
        elif kind == "replaced":
            live.pop(rec.get("orig_cl_ord_id", ""), None)
        elif kind in ("canceled", "reject"):
            live.pop(cl, None)
            live.pop(rec.get("orig_cl_ord_id", ""), None)
        elif kind == "cancel_reject" and rec.get("reason") == 1:
            pass    # unknown order: whatever it was, it is not live under that id
        elif kind == "fill":
            exec_id = rec.get("exec_id", "")
            if exec_id in seen_exec:
                continue
            seen_exec.add(exec_id)
            if int(rec.get("leaves_lots", 1)) == 0:
                live.pop(cl, None)
            fee = rec.get("fee")
            ev = OrderFilled(cl, exec_id, _side(rec.get("side")), int(rec["px_ticks"]), int(rec["qty_lots"]),
                             int(rec.get("leaves_lots", 0)),
                             Liquidity.TAKER if rec.get("liquidity") == 2 else Liquidity.MAKER,
                             Decimal(fee) if fee not in (None, "None") else None)
            core.on_order_event(ev, now)
            out.truex_fills += 1
            out.fill_ids.add(exec_id)
        elif kind == "hedge_fill" and rec.get("source") == "quoter":
            exec_id = rec.get("exec_id", "")
            if exec_id in seen_exec:
                continue
            seen_exec.add(exec_id)
            fill = HedgeFilled(exec_id, _side(rec.get("side")), int(rec["qty_lots"]), Decimal(rec["price"]),
                               Liquidity.TAKER, Decimal(rec.get("fee", "0")))
            core.on_hedge_fill(fill, now)
            out.hedge_fills += 1
    if out.records:
        log.warning("recovery: %d journal records; position %d lots from %d TrueX and %d hedge fills; "
                    "%d order(s) possibly live", out.records, core.inventory.position_lots, out.truex_fills,
                    out.hedge_fills, len(live))
    return out
