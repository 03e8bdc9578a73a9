"""Wire-to-wire latency of the engine, stage by stage, against a single-loop baseline of the same code.

For each replay speed (``--speeds 1,10,max``) two engines run, one after the other, each against fresh
simulators replaying the same recorded data:

* ``multiprocess``: the engine as ``fastmm supervise`` runs it (a supervisor and feed-coinbase,
  feed-kraken, feed-truex-md, quoter, hedger as separate processes, shared memory, eventfd wake-ups),
  except that the quoter carries a :class:`~bench.latency.trace.LatencyTrace`: the production ``Quoter``
  with the harness's stamps at its public tracing hooks (:class:`fastmm.procs.quoter.QuoterTrace`);
* ``single``: the same code in one process and one asyncio loop: the Coinbase and Kraken WebSocket
  feeds (same client and codecs), the TrueX market-data book, the same ``BookPublisher`` into real
  latest-value segments, and the same traced ``Quoter``, called directly after each publish instead of
  woken through an eventfd in another process. No hedger (it is not on the price path).

The Coinbase and Kraken simulators run in this process (uvloop); the TrueX simulator runs in a process
of its own, so that reading an order's bytes never waits behind the other simulators' work.

What is measured, all on CLOCK_MONOTONIC (one clock for every process of the host):

* ``t_write``: the Coinbase simulator hands an ``l2_data`` frame to websockets, which frames it and writes
  it to the socket in the same call (``WsReplayServer.on_frame_written``), keyed by its sequence_num;
* ``t_recv``, ``t_pub``: the feed's stamps (frame read from the WebSocket, top-of-book record published)
  in the record whose ``venue_seq`` is that sequence_num;
* ``t_wake``, ``t_decide``: the quoter woke, read the record and the trading core answered; only wakes that
  read a new Coinbase record count, and their cause is that record's ``venue_seq``;
* ``t_sent``: ``FixInitiator.send`` of each order message returned (its bytes written to the socket);
* ``t_read``: the TrueX simulator read the bytes carrying that ClOrdID (``TruexSimServer.order_reads``).

Each order is so joined to the frame that caused it, exactly: ClOrdID -> (venue_seq, quoter stamps) ->
frame write time, and ClOrdID -> venue read time. ``wire_to_wire`` = ``t_read - t_write`` is the sum of
``write_to_recv``, ``recv_to_pub``, ``pub_to_wake``, ``wake_to_decide``, ``decide_to_sent`` and
``sent_to_read`` (two of them can be slightly negative, see :func:`join`). The ``orders`` block of the
table takes the first order of each decision (tick to first order), ``wire_to_wire_every_order`` every
order of the bursts; the ``events`` block takes every price event caused by a Coinbase frame, orders or
not (``wire_to_decide`` = ``t_decide - t_write``), so it has many more samples.

Load: the simulator and the engine both keep TrueX's 10/s and 300/min message limits only with
``--venue-limits``; by default both are lifted so that every price change that moves a quote sends orders
(at 300/min a run yields a few samples a second). At max speed a load profile makes fills and hedges
happen (``MAX_SPEED_PROFILE``), so that the lossless ``hedge.fills`` ring carries records; the check is
that every ExecID the hedger published (its journal, written before the push) was booked by the quoter
(its journal, written as it pops). Resident memory: VmRSS and PSS of every engine process from /proc,
sampled every second on a thread, peak of the sum (the trace buffers' share is reported too).

``spin`` and CPU isolation: ``FASTMM_SHM__WAIT=spin fastmm bench latency`` runs the same harness with the
quoter busy-polling its channels instead of sleeping on the eventfd. On a machine with fewer cores than
busy processes that starves the others (the figures say by how much); on bare metal, pin the hot
processes to isolated cores (``ops/host-tuning.md``, ``[processes]`` in ``ops/fastmm.production.toml``),
keep the simulators off them with ``--sim-cpus`` (the housekeeping CPUs) and hold the CPUs out of deep
idle states with ``--cpu-dma-latency``:

    FASTMM_SHM__WAIT=spin fastmm bench latency -c ops/fastmm.production.toml --sim-cpus 0-1 --cpu-dma-latency

Absolute figures drift on shared machines; the ratios to the single loop measured in the same run are
what to compare.

    python bench/latency [--speeds 1,10,max] [--duration 30] [--json PATH] [--png PATH]
    fastmm bench latency ...   (the same)

The package, one module per job: :mod:`.common` (names and settings every part shares), :mod:`.trace`
(the stamps taken inside the quoter), :mod:`.engine` (the engine processes: supervised, or the single
loop), :mod:`.load` (the simulators that generate the load), :mod:`.watch` (the engine's processes and
their memory, from :mod:`fastmm.procinfo`), :mod:`.measure` (joining the stamps into stages),
:mod:`.spawn` (one run: start, measure, stop, clean up), :mod:`.report` (ratios, targets, table,
histograms), :mod:`.harness` (every speed and mode, the floor comparison, the command line).
"""

from __future__ import annotations

from .common import CHAIN, EVENT_FIELDS, EVENT_STAGES, MAX_SPEED, MODES, ORDER_FIELDS, TRACE_FILE, RunSpec
from .harness import main, parse_speeds, run
from .measure import FrameStamps, join, stage_summaries
from .report import compare, render, targets
from .spawn import lossless_check, run_once
from .trace import LatencyTrace
from .watch import MemorySampler, ProcessWatch, process_tree

__all__ = ["CHAIN", "EVENT_FIELDS", "EVENT_STAGES", "MAX_SPEED", "MODES", "ORDER_FIELDS", "TRACE_FILE",
           "FrameStamps", "LatencyTrace", "MemorySampler", "ProcessWatch", "RunSpec", "compare", "join",
           "lossless_check", "main", "parse_speeds", "process_tree", "render", "run", "run_once",
           "stage_summaries", "targets"]
