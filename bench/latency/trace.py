"""Inside the engine: the stamps the harness takes at the quoter's public tracing hooks.

The quoter runs unchanged (every decision, message and journal line is its own); it calls a
:class:`LatencyTrace` at its named stages (:class:`fastmm.procs.quoter.QuoterTrace`). The causal link is
visible from there: a wake that read a new Coinbase record leaves it in the channel's ``rx`` buffer, with
its ``venue_seq`` and stamps; ``decided`` sees the decision's actions and ``sent`` stamps each message
once its bytes are written. Between ``t_wake`` and the last order's ``t_sent`` the tracing costs a few
attribute reads, a list append and a clock read per message; the record's fields are read and the trace
rows written in ``done``, after the decision's orders are out.

Kernel stamps (:mod:`fastmm.net.timestamps`): on each order-entry connection the trace turns on software
transmit stamps (a duplicate of the socket's descriptor; the connection's ``trace_out`` counts the bytes
written, so each order's stamp is found by the offset of its last byte) and drains the error queue in
``done`` and, for the session's own messages, at the loop's next turn (a socket with stamps waiting wakes
its loop with EPOLLERR). ``t_tx`` of an order is its stamp on CLOCK_MONOTONIC, 0 when none came. Every
``progress_every_ns`` it writes the count of traced decisions that sent orders to ``progress`` (the
harness's ``--decisions``).

What the loop was busy with besides price events (rehearsals every 2 ms of silence, the timer, order-entry
input, the collector) is summed per kind in constant memory, and only the intervals that overlap a traced
event's path (its record's publication up to its end) are kept for the tail attribution: keeping every
interval grew the quoter by ~4 MB in six minutes at 1x (160,000 rehearsals), which the harness then
counted as the engine's memory.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import time
from array import array
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastmm.core.types import Action, CancelOrder, NewOrder, ReplaceOrder
from fastmm.fix.transport import FixConnection
from fastmm.latency import StageHistogram
from fastmm.net.timestamps import ClockOffset, duplicate, enable_tx, read_tx_stamps

if TYPE_CHECKING:     # the supervisor of the multiprocess run loads this module too: no quoter in it
    from fastmm.procs.quoter import Quoter

from .common import BUSY_KINDS, EVENT_FIELDS, ORDER_FIELDS

_MSG_TYPE = {NewOrder: "D", CancelOrder: "F", ReplaceOrder: "G"}
BUSY_RECENT = 64     # recent busy intervals held for the next traced event (BusyIndex looks back 16)


class LatencyTrace:
    """One quoter's trace: a row per traced price event, a row per order it sent; :meth:`dump` writes
    them for the harness (multiprocess: from the quoter process at its end; single: from the loop)."""

    def __init__(self, kernel_stamps: bool = True, progress: Path | None = None,
                 progress_every_ns: int = 200_000_000) -> None:
        self.kernel_stamps = kernel_stamps
        self.progress = progress
        self.progress_every_ns = progress_every_ns
        self.decisions = 0
        self._progress_at = 0
        self._oe_conn: FixConnection | None = None
        self._oe_sock: socket.socket | None = None
        self._oe_gen = 0
        self._bytes_out = 0
        self._drain_pending = False
        self._tx: dict[int, int] = {}          # (connection << 32 | ee_data) -> t_tx, monotonic ns
        self._offset = ClockOffset()
        self._sent_keys: list[int] = []
        self.quoter: Quoter | None = None
        self.trace_events = array("q")
        self.trace_orders: list[tuple[Any, ...]] = []
        self._wake_ns = 0
        self._cb_before: int | None = None
        self._traced = False            # the price event under way is traced
        self._actions: list[Action] = []
        self._t_decide = 0
        self._sent_ns: list[int] = []
        # (kind, t0, t1) flat, BUSY_KINDS: the busy intervals that overlapped a traced event's path
        self.busy_log = array("q")
        self._busy_code = {name: i for i, name in enumerate(BUSY_KINDS)}
        self._busy_recent: deque[tuple[int, int, int, int]] = deque(maxlen=BUSY_RECENT)   # (n, kind, t0, t1)
        self._busy_n = 0                  # intervals seen so far
        self._busy_kept = 0               # the n of the last one copied to busy_log
        self._busy_hist = [StageHistogram(buffer_size=256) for _ in BUSY_KINDS]
        self._busy_total_ns = [0] * len(BUSY_KINDS)
        self._gc_t0 = 0
        self._progress_fd = -1

    # -- tail attribution: the quoter's loop busy with something else, the collector's passes ------------
    def busy(self, what: str, t0_ns: int, t1_ns: int) -> None:
        self._busy(self._busy_code[what], t0_ns, t1_ns)

    def _busy(self, code: int, t0_ns: int, t1_ns: int) -> None:
        self._busy_n += 1
        self._busy_recent.append((self._busy_n, code, t0_ns, t1_ns))
        self._busy_hist[code].record(t1_ns - t0_ns)
        self._busy_total_ns[code] += t1_ns - t0_ns

    def keep_busy_since(self, since_ns: int) -> None:
        """Copy the recent intervals that ended after ``since_ns`` (a traced record's publication) and are
        not kept yet: only these can have delayed the event."""
        kept = self._busy_kept
        for n, code, t0, t1 in self._busy_recent:
            if n > kept and t1 > since_ns:
                self.busy_log.extend((code, t0, t1))
                kept = n
        self._busy_kept = kept

    def busy_stats(self) -> dict[str, dict[str, float | int]]:
        """Per kind of busy interval: how many, their total (ms) and durations (us)."""
        out: dict[str, dict[str, float | int]] = {}
        for code, name in enumerate(BUSY_KINDS):
            s = self._busy_hist[code].summary()
            if s.count:
                out[name] = {"n": s.count, "total_ms": round(self._busy_total_ns[code] / 1e6, 1),
                             "p50_us": round(s.p50_us, 1), "p99_us": round(s.p99_us, 1),
                             "max_us": round(s.max_us, 1)}
        return out

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic_ns()
        if phase == "start":
            self._gc_t0 = now
        elif self._gc_t0:
            self._busy(info.get("generation", 2), self._gc_t0, now)
            self._gc_t0 = 0

    # -- QuoterTrace ----------------------------------------------------------------------------------
    def attach(self, quoter: Quoter) -> None:
        self.quoter = quoter
        gc.callbacks.append(self._gc)

    def received(self, now_ns: int) -> None:
        q = self.quoter
        assert q is not None
        self._wake_ns = now_ns
        self._cb_before = q.ref_seq("coinbase")
        if self.kernel_stamps:
            conn = q.initiator.conn if q.initiator is not None else None
            if conn is not self._oe_conn:
                self._stamp_connection(conn)

    def decided(self, actions: list[Action], now_ns: int, t_decide_ns: int) -> None:
        # traced: a wake that read a new Coinbase record, while quoting (decided with a few reads)
        q = self.quoter
        assert q is not None
        self._traced = (q.quoting and now_ns == self._wake_ns
                        and q.ref_seq("coinbase") not in (None, self._cb_before))
        self._sent_ns.clear()
        self._sent_keys.clear()
        self._actions = actions
        self._t_decide = t_decide_ns

    def sent(self, action: Action, t_sent_ns: int) -> None:
        self._sent_ns.append(t_sent_ns)
        self._sent_keys.append((self._oe_gen << 32) | ((self._bytes_out - 1) & 0xFFFF_FFFF))

    def done(self, now_ns: int) -> None:
        if not self._traced:
            return
        self._traced = False
        if self._oe_sock is not None:
            self._drain()
        q = self.quoter
        assert q is not None
        r = q.refs["coinbase"].rx[0]
        venue_seq, t_recv, t_pub = int(r["venue_seq"]), int(r["t_recv"]), int(r["t_pub"])
        self.keep_busy_since(t_pub)
        sent, actions = self._sent_ns, self._actions
        self.trace_events.extend((venue_seq, t_recv, t_pub, now_ns, self._t_decide, len(sent)))
        if actions and len(sent) == len(actions):    # a message not sent (journal failing): no rows
            for i, (a, t_sent, key) in enumerate(zip(actions, sent, self._sent_keys, strict=True)):
                self.trace_orders.append((a.cl_ord_id, _MSG_TYPE.get(type(a), "?"), i, venue_seq, t_recv,
                                          t_pub, now_ns, self._t_decide, t_sent, key))
            self.decisions += 1
            if self.progress is not None and now_ns - self._progress_at >= self.progress_every_ns:
                self._progress_at = now_ns
                self._write_progress()

    def _write_progress(self) -> None:
        """One pwrite on a descriptor held open (a ``write_text`` opened, wrote and closed the file on the
        quoter's loop: 9 % of its price-path samples at 10x, and a frame arriving meanwhile waited)."""
        assert self.progress is not None
        if self._progress_fd < 0:
            self._progress_fd = os.open(self.progress, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.pwrite(self._progress_fd, b"%20d" % self.decisions, 0)

    # -- kernel transmit stamps -----------------------------------------------------------------------
    def _stamp_connection(self, conn: FixConnection | None) -> None:
        """A new order-entry connection: stamps on, byte count from zero (ids count from here)."""
        if self._oe_sock is not None:
            self._drain()
            self._oe_sock.close()
            self._oe_sock = None
        self._oe_conn = conn
        tr = conn.transport if conn is not None else None
        if conn is None or tr is None:
            return
        self._oe_sock = duplicate(tr.get_extra_info("socket"))
        enable_tx(self._oe_sock)
        self._oe_gen += 1
        self._bytes_out = 0
        conn.trace_out = self._count

    def _count(self, frame: bytes) -> None:
        self._bytes_out += len(frame)
        if not self._drain_pending:
            self._drain_pending = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_pending = False
        sock = self._oe_sock
        if sock is None:
            return
        gen, to_mono, tx = self._oe_gen << 32, self._offset.to_monotonic, self._tx
        for key, ns in read_tx_stamps(sock):
            tx[gen | key] = to_mono(ns)

    # -- output ---------------------------------------------------------------------------------------
    def trace_bytes(self) -> int:
        """What the trace's rows hold in the quoter's memory (the arrays' items, ~160 B per order row)."""
        arrays = (self.trace_events, self.busy_log)
        return sum(a.buffer_info()[1] * a.itemsize for a in arrays) + 160 * len(self.trace_orders)

    def dump(self, path: Path) -> None:
        q = self.quoter
        assert q is not None
        hdr = {name: _text(h.encode()) for name, h in q.latency.stages.items()}
        if self._oe_sock is not None:
            self._drain()
        tx = self._tx
        orders = [(*o[:-1], tx.get(o[-1], 0)) for o in self.trace_orders]     # key -> t_tx
        doc = {"event_fields": EVENT_FIELDS, "events": self.trace_events.tolist(),
               "order_fields": ORDER_FIELDS, "orders": orders, "trace_bytes": self.trace_bytes(),
               "kernel_stamps": self.kernel_stamps, "tx_stamps": len(tx),
               "quoter_hdr": hdr, "orders_sent": q.sent, "fills": q.fills, "hedge_fills": q.hedge_fills,
               "busy_kinds": BUSY_KINDS, "busy": self.busy_log.tolist(), "busy_stats": self.busy_stats()}
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        if self._progress_fd >= 0:
            os.close(self._progress_fd)
            self._progress_fd = -1
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)


def _text(payload: bytes | str) -> str:
    return payload.decode("ascii") if isinstance(payload, bytes) else payload
