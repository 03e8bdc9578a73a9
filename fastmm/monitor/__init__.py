"""Watching a running instance from outside, read-only: nothing here writes anything the engine reads.

* :mod:`~fastmm.monitor.journal_stats`: journal records folded into counters, reject reasons and
  round-trip latencies (pure); the quoter's latency table parsed.
* :mod:`~fastmm.monitor.files`: the journal's tail and the latency table read from the state folder.
* :mod:`~fastmm.monitor.status`: the instance's shared memory and files as plain data, and the status
  screen (``fastmm status``, ``fastmm paper``).
* :mod:`~fastmm.monitor.metrics`: the Prometheus exporter (``fastmm metrics``) over the three above.

The modules import one way only: journal_stats <- files <- status <- metrics.
"""
