"""Measurement: the Coinbase frames' write times and the quoter's trace joined into per-stage latencies,
order by order and event by event."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from fastmm.latency import summarize

from .common import (
    BUSY_KINDS,
    CHAIN,
    EVENT_FIELDS,
    EVENT_STAGES,
    KERNEL_EVENT_STAGES,
    KERNEL_STAGES,
    ORDER_FIELDS,
)

# Kernel stamps are CLOCK_REALTIME moved onto CLOCK_MONOTONIC by an offset read in each process (tens of
# ns of error): orderings against user-space stamps are checked with this slack.
KERNEL_SLACK_NS = 2_000


class FrameStamps:
    """``on_frame_written`` hook for the Coinbase simulator: write time of every ``l2_data`` frame, by
    connection and sequence_num."""

    _PREFIX = '{"channel":"l2_data"'
    _KEY = '"sequence_num":'

    def __init__(self) -> None:
        self.by_conn: dict[int, dict[int, int]] = {}
        self.frames = 0

    def __call__(self, cid: int, frame: str, t_ns: int) -> None:
        self.frames += 1
        if not frame.startswith(self._PREFIX):
            return
        i = frame.find(self._KEY, 20, 200)
        if i < 0:
            return
        i += len(self._KEY)
        j = frame.find(",", i, i + 24)
        with contextlib.suppress(ValueError):
            self.by_conn.setdefault(cid, {})[int(frame[i:j])] = t_ns

    def lookup(self, venue_seq: int, t_recv: int) -> int | None:
        """Write time of the frame ``venue_seq`` that reached the feed at ``t_recv``: the newest
        connection that wrote that sequence number before it was received."""
        for cid in sorted(self.by_conn, reverse=True):
            t = self.by_conn[cid].get(venue_seq)
            if t is not None and t <= t_recv:
                return t
        return None


def _causal(t_write: int, t_recv: int, t_pub: int, t_wake: int, t_decide: int, t_sent: int, t_read: int
            ) -> bool:
    """The orderings that must hold on one clock (see :func:`join` for the two races that may not)."""
    return (t_write <= t_recv <= t_pub <= t_decide and t_wake <= t_decide <= t_sent and t_write <= t_read)


class BusyIndex:
    """The quoter's busy intervals (:class:`~bench.latency.trace.LatencyTrace` ``busy``): which one, if
    any, overlapped a window of a price event's path (the longest overlap wins)."""

    def __init__(self, trace: dict[str, Any]) -> None:
        kinds = tuple(trace.get("busy_kinds", BUSY_KINDS))
        flat = trace.get("busy", [])
        a = np.asarray(flat, dtype=np.int64).reshape(-1, 3) if flat else np.zeros((0, 3), np.int64)
        a = a[np.argsort(a[:, 1], kind="stable")]
        self.kinds = kinds
        self._kind = a[:, 0].tolist()
        self._t0 = a[:, 1]
        self._t1 = a[:, 2].tolist()
        self._t0_list = self._t0.tolist()

    def during(self, lo: int, hi: int) -> str:
        """The kind of busy interval that overlapped ``[lo, hi]`` most, "" when none did."""
        j = int(np.searchsorted(self._t0, hi, side="right")) - 1
        best, best_ns = "", 0
        stop = max(-1, j - 16)        # intervals are disjoint but for the collector's, nested in others
        while j > stop:
            ov = min(hi, self._t1[j]) - max(lo, self._t0_list[j])
            if ov > best_ns:
                best, best_ns = self.kinds[self._kind[j]], ov
            j -= 1
        return best


def join(trace: dict[str, Any], stamps: FrameStamps,
         reads: Iterable[Sequence[Any]], rx_pairs: Sequence[int] = ()) -> dict[str, Any]:
    """Orders and events of one run with every stage in ns. Unmatched rows are counted, not guessed.

    ``reads`` are the venue's ``(MsgType, ClOrdID, t_read)``. Two stages may be negative, both races
    between processes on different CPUs: ``pub_to_wake`` when the record was published after the wake
    began (the quoter stamps ``t_wake`` first, then reads the newest record), ``sent_to_read`` when the
    venue read the bytes before the sender's write call returned and stamped ``t_sent``. Histograms count
    a negative value as 0. Any other disorder is counted as ``out_of_order`` and the row not used.

    Kernel stamps: ``rx_pairs`` is the feed's flat ``(t_recv, t_kernel_rx)`` list; a row whose frame has a
    receive stamp and whose order has a transmit stamp (``t_tx``) gets ``kernel_rx_to_tx`` (what the engine
    owns: packet in the kernel -> order bytes handed to the kernel), ``rx_to_recv`` and ``decide_to_tx``.
    A kernel stamp missing or out of order (``t_written <= t_rx <= t_recv``, ``t_decide <= t_tx <= t_sent``)
    is counted in ``unmatched_kernel``; the row keeps its other stages. A receive stamp from before the
    simulator wrote the frame belongs to an earlier packet (a read that ended several frames carries one
    stamp), so it is not this frame's."""
    rx = {rx_pairs[i]: rx_pairs[i + 1] for i in range(0, len(rx_pairs) - 1, 2) if rx_pairs[i + 1]}
    recvs = np.sort(np.asarray(rx_pairs[0::2], dtype=np.int64))   # the feed's t_recv of every frame read
    kernel_unmatched = {"no_rx": 0, "no_tx": 0, "out_of_order": 0}
    t_read: dict[str, int] = {}
    for _mt, cl, t in reads:
        t_read.setdefault(cl.decode("ascii", "replace") if isinstance(cl, bytes) else cl, t)
    rows = []
    busy = BusyIndex(trace)
    unmatched = {"no_frame": 0, "no_read": 0, "out_of_order": 0, "republished": 0}
    flat = trace.get("events", [])
    ev = np.asarray(flat, dtype=np.int64).reshape(-1, len(EVENT_FIELDS)) if flat else \
        np.zeros((0, len(EVENT_FIELDS)), np.int64)
    caused = first_receipts(ev)
    for o in trace.get("orders", []):
        rec = dict(zip(ORDER_FIELDS, o, strict=True))
        if caused.get(rec["venue_seq"], rec["t_recv"]) != rec["t_recv"]:
            unmatched["republished"] += 1
            continue
        tw = stamps.lookup(rec["venue_seq"], rec["t_recv"])
        tr = t_read.get(rec["cl_ord_id"])
        if tw is None:
            unmatched["no_frame"] += 1
            continue
        if tr is None:
            unmatched["no_read"] += 1
            continue
        times = (tw, rec["t_recv"], rec["t_pub"], rec["t_wake"], rec["t_decide"], rec["t_sent"], tr)
        if not _causal(*times):
            unmatched["out_of_order"] += 1
            continue
        stages = {name: times[k + 1] - times[k] for k, name in enumerate(CHAIN)}
        stages["wire_to_wire"] = tr - tw
        t_rx, t_tx = rx.get(rec["t_recv"], 0), rec["t_tx"]
        if not t_rx or not t_tx:
            kernel_unmatched["no_rx" if not t_rx else "no_tx"] += 1
        elif not (tw - KERNEL_SLACK_NS <= t_rx <= rec["t_recv"] + KERNEL_SLACK_NS
                  and rec["t_decide"] - KERNEL_SLACK_NS <= t_tx <= rec["t_sent"] + KERNEL_SLACK_NS):
            kernel_unmatched["out_of_order"] += 1
        else:
            stages.update(kernel_rx_to_tx=t_tx - t_rx, rx_to_recv=rec["t_recv"] - t_rx,
                          decide_to_tx=t_tx - rec["t_decide"])
        rows.append({"cl_ord_id": rec["cl_ord_id"], "msg_type": rec["msg_type"], "index": rec["index"],
                     "venue_seq": rec["venue_seq"], **stages,
                     "quoter_busy": busy.during(rec["t_pub"], rec["t_sent"])})
    events: dict[str, list[int]] = {s: [] for s in (*EVENT_STAGES, *KERNEL_EVENT_STAGES)}
    ev_unmatched = ev_republished = 0
    ev_busy: list[str] = []
    ev_queue: list[int] = []
    for venue_seq, t_recv, t_pub, t_wake, t_decide, _n in ev.tolist():
        if caused.get(venue_seq, t_recv) != t_recv:
            ev_republished += 1
            continue
        tw = stamps.lookup(venue_seq, t_recv)
        if tw is None or not _causal(tw, t_recv, t_pub, t_wake, t_decide, t_decide, t_decide):
            ev_unmatched += 1
            continue
        ev_busy.append(busy.during(t_pub, t_decide))
        # frames the feed read after this one was written, before reading it: it was behind (a queue)
        ev_queue.append(int(np.searchsorted(recvs, t_recv) - np.searchsorted(recvs, tw, side="right"))
                        if recvs.size else -1)
        for name, v in zip(EVENT_STAGES, (t_recv - tw, t_pub - t_recv, t_wake - t_pub, t_decide - t_wake,
                                          t_decide - tw), strict=True):
            events[name].append(v)
        t_rx = rx.get(t_recv, 0)
        if t_rx and t_rx <= t_recv + KERNEL_SLACK_NS:
            events["rx_to_decide"].append(t_decide - t_rx)
    return {"orders": rows, "unmatched_orders": unmatched, "events": events, "unmatched_events": ev_unmatched,
            "republished_events": ev_republished, "unmatched_kernel": kernel_unmatched,
            "events_busy": ev_busy, "events_feed_queue": ev_queue}


def first_receipts(events: np.ndarray) -> dict[int, int]:
    """Each venue sequence number's first receive time among the quoter's events: the record its frame
    caused. The feed republishes a quiet top with its last frame's sequence number and a newer receive time
    (``keep_fresh`` in fastmm.procs.feed_ws, so the quoter never ages a live source out); such a record was
    not caused by that frame, and joining it to the frame's write time would count the quiet interval
    (hundreds of ms at 1x) as latency."""
    first: dict[int, int] = {}
    for seq, t_recv in events[:, :2].tolist():
        if t_recv < first.get(seq, t_recv + 1):
            first[seq] = t_recv
    return first


TAIL_PCT = 99.0


def _tail(stages: dict[str, list[int]], total: str, busy: list[str], pct: float = TAIL_PCT,
          feed_queue: list[int] | None = None) -> dict[str, Any]:
    """The samples of ``total`` at or above its ``pct`` percentile: which stage was the largest in each
    (``dominant``), each stage's share of their excess over the stages' medians (``excess_share``, %),
    and what the quoter's loop was doing during its part of each (``quoter_busy``: a busy interval that
    overlapped published -> decided (-> sent); ``idle`` when none did: the quoter was waiting to run);
    with the feed's receive times of every frame (``feed_queue``, kernel stamps on), how many of them found
    the feed still reading frames written before them (``feed_behind``: a queue in the feed, not a late
    wake)."""
    tot = np.asarray(stages[total], dtype=np.int64)
    if tot.size == 0:
        return {"n": 0}
    cut = float(np.percentile(tot, pct))
    sel = np.nonzero(tot >= cut)[0]
    names = [n for n in stages if n != total]
    mat = np.asarray([stages[n] for n in names], dtype=np.int64)      # stage x sample
    med = np.median(mat, axis=1)
    sub = mat[:, sel]
    dominant: dict[str, int] = {}
    for k in np.argmax(sub, axis=0).tolist():
        dominant[names[k]] = dominant.get(names[k], 0) + 1
    excess = np.clip(sub - med[:, None], 0, None).sum(axis=1)
    share = {n: round(100.0 * float(e) / float(excess.sum()), 1) if excess.sum() else 0.0
             for n, e in zip(names, excess.tolist(), strict=True)}
    kinds: dict[str, int] = {}
    for i in sel.tolist():
        k = busy[i] or "idle"
        kinds[k] = kinds.get(k, 0) + 1
    out: dict[str, Any] = {}
    if feed_queue and feed_queue[0] >= 0:
        out["feed_behind"] = sum(1 for i in sel.tolist() if feed_queue[i] > 0)
    return out | {"pct": pct, "threshold_us": round(cut / 1000, 1), "n": int(sel.size),
            "dominant": dict(sorted(dominant.items(), key=lambda kv: -kv[1])), "excess_share": share,
            "quoter_busy": dict(sorted(kinds.items(), key=lambda kv: -kv[1]))}


def tail_attribution(joined: dict[str, Any], pct: float = TAIL_PCT) -> dict[str, Any]:
    """Who makes the tails: every price event's ``wire_to_decide`` and the first orders' ``wire_to_wire``
    at or above ``pct``, by stage and by what the quoter was busy with (:func:`_tail`)."""
    ev = joined["events"]
    ev_stages = {n: ev[n] for n in EVENT_STAGES}
    first = [r for r in joined["orders"] if r["index"] == 0]
    or_stages = {n: [r[n] for r in first] for n in (*CHAIN, "wire_to_wire")}
    return {"events": _tail(ev_stages, "wire_to_decide", joined.get("events_busy", []), pct,
                            joined.get("events_feed_queue")),
            "orders": _tail(or_stages, "wire_to_wire", [r.get("quoter_busy", "") for r in first], pct)}


def stage_summaries(joined: dict[str, Any]) -> dict[str, dict[str, dict[str, float | int]]]:
    orders = joined["orders"]
    first = [r for r in orders if r["index"] == 0]
    out_orders = {name: summarize([r[name] for r in first]) for name in (*CHAIN, "wire_to_wire")}
    out_orders["wire_to_wire_every_order"] = summarize([r["wire_to_wire"] for r in orders])
    out_events = {name: summarize(v) for name, v in joined["events"].items() if name in EVENT_STAGES}
    # what the engine owns, from the kernel's stamps: tick to first order, every order, every price event
    out_kernel = {name: summarize([r[name] for r in first if name in r]) for name in KERNEL_STAGES}
    out_kernel["kernel_rx_to_tx_every_order"] = summarize([r["kernel_rx_to_tx"] for r in orders
                                                           if "kernel_rx_to_tx" in r])
    for name in KERNEL_EVENT_STAGES:
        out_kernel[name] = summarize(joined["events"][name])
    return {"orders": out_orders, "events": out_events, "kernel": out_kernel}
