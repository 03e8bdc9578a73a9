"""The quoter's reconciliation with TrueX at start: REST calls around
:func:`fastmm.venues.truex.reconcile.plan_start`.

Run once after the order-entry logon and before quoting (``truex.reconcile_at_start``); the quoter holds a
``start_quoting`` that arrives meanwhile until it is done. In order: the client id from ``GET /client``
when the config has none; ``cancel_on_disconnect`` set when ``truex.cancel_on_disconnect`` asks;
the venue's active orders and the fills of the last 24 h compared with the journal; every unknown live
order canceled (REST DELETE by exchange id); every missed fill journalled and booked once (ExecID
``rest:<match id>``, the match id kept so the same fill over FIX is a duplicate); the counts journalled
(``reconcile``) and written to ``reconcile.json`` in the state folder for ``fastmm status``.

A REST failure is logged, journalled with its reason and shown by ``fastmm status``; quoting is not
blocked by it (the journal recovery still cancels every order the journal knows).
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from fastmm.core.types import Liquidity, OrderFilled, Side
from fastmm.journal.records import Fill, Reconcile, to_e8
from fastmm.venues.truex.reconcile import (
    MATCH_KEY_PREFIX,
    REST_FILL_PREFIX,
    JournalView,
    MissedFill,
    plan_start,
)
from fastmm.venues.truex.rest_codec import RestOrder, TruexRestError

if TYPE_CHECKING:
    from fastmm.procs.quoter import Quoter
    from fastmm.venues.truex.rest import TruexRest

log = logging.getLogger("fastmm.reconcile")

FILL_WINDOW_NS = 24 * 3600 * 1_000_000_000   # what TrueX's GET /order/trade keeps
STATUS_FILE = "reconcile.json"


def book_missed(q: Quoter, m: MissedFill, now_ns: int) -> bool:
    """Journal and book one missed fill, once (by match id); False when it was booked already."""
    t = m.trade
    exec_id = REST_FILL_PREFIX + t.match_id
    if MATCH_KEY_PREFIX + t.match_id in q._fill_ids or not q._fill_ids.add(exec_id):
        return False
    q._fill_ids.add(MATCH_KEY_PREFIX + t.match_id)
    fee = m.fee(q.core.instrument)
    side = Side.BUY if m.side == "1" else Side.SELL
    q.journal.write(Fill(t_ns=time.time_ns(), source="rest", cl_ord_id=m.cl_ord_id, exec_id=exec_id,
                         side=side, px_ticks=t.price_ticks, qty_lots=t.qty_lots, leaves_lots=m.leaves_lots,
                         liquidity=t.liquidity, fee_e8=to_e8(fee), match_id=t.match_id, order_id=t.order_id))
    liquidity = Liquidity.TAKER if t.liquidity == 2 else Liquidity.MAKER
    q.core_event(OrderFilled(m.cl_ord_id, exec_id, side, t.price_ticks, t.qty_lots, m.leaves_lots, liquidity,
                             fee), now_ns)
    return True


async def _statuses(rest: TruexRest, order_ids: set[str]) -> dict[str, RestOrder | None]:
    out: dict[str, RestOrder | None] = {}
    for oid in sorted(order_ids):
        try:
            out[oid] = await rest.order_status(oid, "exchange")
        except TruexRestError as e:
            if e.status != 404:
                raise
            out[oid] = None
    return out


async def reconcile_at_start(q: Quoter, rest: TruexRest | None = None) -> dict[str, Any]:
    """Reconcile once; returns the counts (also journalled and written for ``fastmm status``)."""
    cfg = q.cfg
    tx = cfg.truex
    counts: dict[str, Any] = {"at_ns": time.time_ns()}
    own = rest is None
    if rest is None:
        from fastmm.venues.truex.rest import TruexRest  # aiohttp: only a quoter that reconciles needs it

        rest = TruexRest(tx.rest_url, tx.user_id, tx.api_key_id, tx.api_secret, q.core.instrument,
                         min_interval_s=tx.rest_min_interval_ms / 1000, timeout_s=tx.rest_timeout_s)
    try:
        if own:
            await rest.__aenter__()
        view = JournalView.read(cfg.state_path / cfg.journal.file)
        info = await rest.get_client()
        counts["client_id_from_venue"] = not tx.client_id
        if not tx.client_id:
            q.codec.set_client_id(info.id)
            log.info("TrueX client id %s from GET /client", info.id)
        if tx.cancel_on_disconnect and not info.cancel_on_disconnect:
            info = await rest.set_cancel_on_disconnect(True)
        counts["cancel_on_disconnect"] = info.cancel_on_disconnect
        active = await rest.active_orders()
        trades = await rest.trades(time.time_ns() - FILL_WINDOW_NS)
        plan = plan_start(view, active, trades)
        if plan.unresolved:
            plan.resolve(view, await _statuses(rest, {t.order_id for t in plan.unresolved}))
        canceled = failed = 0
        for o in plan.unknown_live:
            try:
                await rest.cancel(o.order_id)
                canceled += 1
            except TruexRestError as e:
                failed += 1
                log.error("reconcile: could not cancel unknown live order %s (%s): %s", o.order_id,
                          o.cl_ord_id or "no ClOrdID", e)
        now = time.monotonic_ns()
        booked = sum(book_missed(q, m, now) for m in plan.missed)
        for t in plan.foreign:
            log.error("reconcile: fill %s of order %s that this engine never sent: not booked", t.match_id,
                      t.order_id)
        counts |= plan.counts()
        counts |= {"unknown_canceled": canceled, "cancel_failed": failed, "fills_booked": booked}
        if plan.unknown_live or plan.missed or plan.foreign:
            log.warning("reconcile: %s", counts)
        else:
            log.info("reconcile: venue and journal agree (%d live, %d fills seen)", len(plan.known_live),
                     len(trades))
    except TruexRestError as e:
        log.error("reconcile with TrueX failed: %s", e)
        counts["error"] = str(e)
    finally:
        if own:
            await rest.__aexit__(None, None, None)
    q.journal.write(Reconcile(t_ns=time.time_ns(), extra=dict(counts)))
    try:
        (cfg.state_path / STATUS_FILE).write_text(json.dumps(counts))
    except OSError as e:
        log.error("reconcile: cannot write %s: %s", STATUS_FILE, e)
    return counts


def render_status(rec: dict[str, Any]) -> str:
    """The ``fastmm status`` line of the last reconciliation."""
    if rec.get("error"):
        return f"venue    reconcile at start FAILED: {rec['error']}"
    g = rec.get
    return (f"venue    reconciled at start: {g('venue_live', 0)} live ({g('unknown_live', 0)} unknown, "
            f"{g('unknown_canceled', 0)} canceled, {g('cancel_failed', 0)} failed); fills "
            f"{g('fills_booked', 0)} booked from REST, {g('fills_already_booked', 0)} in the journal, "
            f"{g('fills_foreign', 0)} foreign; cancel_on_disconnect "
            f"{'on' if g('cancel_on_disconnect') else 'off'}")
