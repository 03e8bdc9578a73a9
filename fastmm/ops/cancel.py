"""The kill switch's last step as a library: cancel every order the journal says may be live.

After the engine was killed hard (kill -9, OOM, a host crash) its quotes may still rest on TrueX, which
has no mass cancel and no order status: the journal is the only list of what may be live.
:func:`cancel_orders` logs on to order entry with the engine's own session (CompIDs and sequence store),
sends one OrderCancelRequest per such order, paced by the engine's own rate limiter, journals every
answer (fills that raced in too, so the next start books them) and logs out. ``fastmm ops
cancel-orders`` and the supervisor's ``cancel-left`` process both run it; :class:`OrderCanceler` is its
sans-I/O bookkeeping of which orders have ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, TextIO

from fastmm.config import Config, ConfigError
from fastmm.core.ids import RecentIds
from fastmm.core.trading_core import TradingCore
from fastmm.core.types import CancelOrder
from fastmm.fix.session import AppMessage, LoggedOn
from fastmm.journal import Journal
from fastmm.procs.order_journal import journal_report, order_message
from fastmm.procs.recovery import recover
from fastmm.venues.truex import factory as truex_sessions
from fastmm.venues.truex.codec import BusinessMessageReject, ExecutionReport, OrderCancelReject, TruexCodec

EXIT_TIMEOUT = 1    # some order may still be live


class OrderCanceler:
    """The cancel pass's state: which orders are still waiting for their end (sans-I/O)."""

    TERMINAL_STATUS = frozenset({"2", "4", "8", "C"})   # filled, canceled, rejected, expired

    def __init__(self, orig_by_cancel: dict[str, str], orders: Iterable[str] = ()) -> None:
        self.orig_by_cancel = orig_by_cancel           # our cancel's ClOrdID -> the order's ClOrdID
        self.waiting = set(orig_by_cancel.values()) | set(orders)
        self.canceled: list[str] = []
        self.gone: list[str] = []                     # unknown to the venue, already filled, rejected
        self.filled: list[str] = []
        self.unconfirmed: list[str] = []
        self.retry: list[str] = []                    # throttled by the venue: to send again

    def _end(self, orig: str, bucket: list[str]) -> None:
        if orig in self.waiting:
            self.waiting.discard(orig)
            bucket.append(orig)

    def on_report(self, rec: Any) -> None:
        """An ExecutionReport or OrderCancelReject from the venue."""
        if isinstance(rec, ExecutionReport):
            orig = self.orig_by_cancel.get(rec.cl_ord_id, rec.orig_cl_ord_id or rec.cl_ord_id)
            if rec.exec_type in ("4", "C"):
                self._end(orig, self.canceled)
            elif rec.exec_type == "F" and rec.leaves_qty == 0:
                self._end(rec.cl_ord_id, self.filled)
            elif rec.exec_type == "8":
                self._end(orig, self.gone)
        elif isinstance(rec, OrderCancelReject):
            orig = self.orig_by_cancel.get(rec.cl_ord_id, rec.orig_cl_ord_id)
            if rec.ord_status in self.TERMINAL_STATUS or rec.reason == 1:
                self._end(orig, self.gone)
            else:
                self._end(orig, self.unconfirmed)
        elif isinstance(rec, BusinessMessageReject) and rec.reason in self.THROTTLED:
            throttled = self.orig_by_cancel.get(rec.ref_id)
            if throttled in self.waiting:
                self.retry.append(throttled)      # the venue did not take this cancel: send another, paced

    THROTTLED = frozenset({8, 9, 10})

    @property
    def done(self) -> bool:
        return not self.waiting


def cancel_core(cfg: Config) -> TradingCore:
    """The core ``cancel-orders`` recovers the journal into: the engine's settings (its rate limit paces
    the cancels), ClOrdIDs of its own."""
    return TradingCore.from_config(cfg, cl_ord_prefix="k" + format(time.time_ns() // 10_000_000, "x")[-6:])


async def cancel_orders(cfg: Config, timeout_s: float, out: TextIO) -> int:
    """Cancel every possibly-live order of the journal over the engine's own order-entry session."""
    path = cfg.state_path / cfg.journal.file
    core = cancel_core(cfg)
    recovered = recover(path, core, cfg)
    if not recovered.possibly_live:
        print(f"cancel-orders: the journal ({recovered.records} records) lists no order that may be live",
              file=out)
        return 0
    tx = cfg.truex
    if not tx.api_key_id or not tx.api_secret:
        raise ConfigError("truex.api_key_id/api_secret: set FASTMM_TRUEX_API_KEY_ID and "
                          "FASTMM_TRUEX_API_SECRET")
    side_of = recovered.possibly_live
    canceler = OrderCanceler({}, side_of)
    print(f"cancel-orders: {len(side_of)} order(s) may be live: {', '.join(sorted(canceler.waiting))}",
          file=out, flush=True)
    journal = Journal(path, cfg.journal.durability, cfg.journal.rotate_bytes)
    oe = tx.order_entry
    codec = TruexCodec(core.instrument, tx.client_id.reveal() if tx.client_id else "")
    fill_ids = RecentIds()
    for exec_id in recovered.fill_ids:
        fill_ids.add(exec_id)
    changed = asyncio.Event()

    def on_event(conn: object, ev: object) -> None:
        if isinstance(ev, LoggedOn):
            changed.set()
        elif isinstance(ev, AppMessage) and ev.record is not None:
            journal_report(journal, ev.record, fill_ids, source="cancel-orders")
            canceler.on_report(ev.record)
            # the answer names our request: the venue has handled it, its rate slot frees a window later
            ref = getattr(ev.record, "cl_ord_id", None) or getattr(ev.record, "ref_id", None)
            if isinstance(ref, str):
                core.on_venue_answer(ref, time.monotonic_ns())
            changed.set()

    initiator = truex_sessions.order_entry(cfg, codec.decode, on_event)
    store = initiator.session.store
    loop = asyncio.get_running_loop()
    fix_task = loop.create_task(initiator.run())
    deadline = loop.time() + timeout_s
    sent = False
    try:
        await initiator.wait_logged_on(timeout_s)
        await asyncio.sleep(0.2)      # answers to a ResendRequest (reports missed while down) come first
        async def send_cancel(orig: str) -> None:
            # paced by the engine's own limiter, which counts what the engine sent in the last minute
            # (from the journal) and frees a slot from TrueX's answer: a burst would be throttled
            while not core.try_acquire_message(time.monotonic_ns(), cancel=True):
                await asyncio.sleep(0.02)
            cl = core.next_cl_ord_id()
            core.sent_as(cl)
            canceler.orig_by_cancel[cl] = orig
            rec, msg_type, body = order_message(codec, CancelOrder(cl, orig, side_of[orig]), time.time_ns(),
                                                source="cancel-orders")
            journal.write(rec)
            initiator.send(msg_type, body)

        for orig in list(side_of):
            if orig in canceler.waiting and loop.time() < deadline:
                await send_cancel(orig)
        sent = True
        while not canceler.done and loop.time() < deadline:
            while canceler.retry and loop.time() < deadline:
                orig = canceler.retry.pop(0)
                if orig in canceler.waiting:
                    await send_cancel(orig)
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), max(0.01, deadline - loop.time()))
            except TimeoutError:
                break
    except TimeoutError:
        print(f"cancel-orders: not logged on to {oe.host}:{oe.port} within {timeout_s:g} s", file=out)
    finally:
        try:
            await asyncio.wait_for(initiator.stop("fastmm cancel-orders done"), 5)
        except Exception as e:  # the summary below must still print
            print(f"cancel-orders: logout did not complete: {e!r}", file=out)
        fix_task.cancel()
        await asyncio.gather(fix_task, return_exceptions=True)
        journal.close()
        store.close()
    left = sorted(canceler.waiting) + sorted(canceler.unconfirmed)
    print(f"cancel-orders: canceled {len(canceler.canceled)}, filled {len(canceler.filled)}, already gone "
          f"{len(canceler.gone)}, NOT CONFIRMED {len(left)}{': ' + ', '.join(left) if left else ''}",
          file=out, flush=True)
    if not sent or left:
        print("cancel-orders: orders may still be live on TrueX: cancel them in the TrueX UI or call TrueX",
              file=out, flush=True)
        return EXIT_TIMEOUT
    return 0
