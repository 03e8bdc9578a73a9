"""Inside the engine: the stamps the harness takes at the quoter's public tracing hooks.

The quoter runs unchanged (every decision, message and journal line is its own); it calls a
:class:`LatencyTrace` at its named stages (:class:`fastmm.procs.quoter.QuoterTrace`). The causal link is
visible from there: a wake that read a new Coinbase record leaves it in the channel's ``rx`` buffer, with
its ``venue_seq`` and stamps; ``decided`` sees the decision's actions and ``sent`` stamps each message
once its bytes are written. Between ``t_wake`` and the last order's ``t_sent`` the tracing costs a few
attribute reads, a list append and a clock read per message; the record's fields are read and the trace
rows written in ``done``, after the decision's orders are out.
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Any

from fastmm.core.types import Action, CancelOrder, NewOrder, ReplaceOrder
from fastmm.procs.quoter import Quoter

from .common import EVENT_FIELDS, ORDER_FIELDS

_MSG_TYPE = {NewOrder: "D", CancelOrder: "F", ReplaceOrder: "G"}


class LatencyTrace:
    """One quoter's trace: a row per traced price event, a row per order it sent; :meth:`dump` writes
    them for the harness (multiprocess: from the quoter process at its end; single: from the loop)."""

    def __init__(self) -> None:
        self.quoter: Quoter | None = None
        self.trace_events = array("q")
        self.trace_orders: list[tuple[Any, ...]] = []
        self._wake_ns = 0
        self._cb_before: int | None = None
        self._traced = False            # the price event under way is traced
        self._actions: list[Action] = []
        self._t_decide = 0
        self._sent_ns: list[int] = []

    # -- QuoterTrace ----------------------------------------------------------------------------------
    def attach(self, quoter: Quoter) -> None:
        self.quoter = quoter

    def received(self, now_ns: int) -> None:
        assert self.quoter is not None
        self._wake_ns = now_ns
        self._cb_before = self.quoter.ref_seq("coinbase")

    def decided(self, actions: list[Action], now_ns: int, t_decide_ns: int) -> None:
        # traced: a wake that read a new Coinbase record, while quoting (decided with a few reads)
        q = self.quoter
        assert q is not None
        self._traced = (q.quoting and now_ns == self._wake_ns
                        and q.ref_seq("coinbase") not in (None, self._cb_before))
        self._sent_ns.clear()
        self._actions = actions
        self._t_decide = t_decide_ns

    def sent(self, action: Action, t_sent_ns: int) -> None:
        self._sent_ns.append(t_sent_ns)

    def done(self, now_ns: int) -> None:
        if not self._traced:
            return
        self._traced = False
        q = self.quoter
        assert q is not None
        r = q.refs["coinbase"].rx[0]
        venue_seq, t_recv, t_pub = int(r["venue_seq"]), int(r["t_recv"]), int(r["t_pub"])
        sent, actions = self._sent_ns, self._actions
        self.trace_events.extend((venue_seq, t_recv, t_pub, now_ns, self._t_decide, len(sent)))
        if actions and len(sent) == len(actions):    # a message not sent (journal failing): no rows
            for i, (a, t_sent) in enumerate(zip(actions, sent, strict=True)):
                self.trace_orders.append((a.cl_ord_id, _MSG_TYPE.get(type(a), "?"), i, venue_seq, t_recv,
                                          t_pub, now_ns, self._t_decide, t_sent))

    # -- output ---------------------------------------------------------------------------------------
    def trace_bytes(self) -> int:
        return self.trace_events.buffer_info()[1] * self.trace_events.itemsize + 160 * len(self.trace_orders)

    def dump(self, path: Path) -> None:
        q = self.quoter
        assert q is not None
        hdr = {name: _text(h.encode()) for name, h in q.latency.stages.items()}
        doc = {"event_fields": EVENT_FIELDS, "events": self.trace_events.tolist(),
               "order_fields": ORDER_FIELDS, "orders": self.trace_orders, "trace_bytes": self.trace_bytes(),
               "quoter_hdr": hdr, "orders_sent": q.sent, "fills": q.fills, "hedge_fills": q.hedge_fills}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)


def _text(payload: bytes | str) -> str:
    return payload.decode("ascii") if isinstance(payload, bytes) else payload
