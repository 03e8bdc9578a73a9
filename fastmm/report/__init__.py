"""A PNG and an HTML summary of one session, from its journal (``fastmm report JOURNAL [--out DIR]``).

The journal is the session's complete record of orders, answers and fills, so the report rebuilds
everything from it alone (:func:`fastmm.report.session.build_session`, pure): our best bid and ask over
time from the orders and their answers, the position and exact PnL by replaying every fill through the
engine's own :class:`~fastmm.core.pnl.PnLTracker`, fills, rejects by reason, and order round-trip
latencies. Files the engine leaves next to the journal add to it when present: ``supervisor.jsonl`` (phase
changes), ``latency.quoter.txt`` (per-stage latency) and ``report.json`` (the engine's own final position
and PnL, shown beside the rebuilt one as a cross-check).

The mid: the quoter journals its fair mid in ``mark`` records (``fair_mid_e8``, at most once a second,
when it changed); quotes are drawn against it and PnL is marked to it. Before the first mark (or in a
journal without marks) the centre of our own best bid and ask stands in for it (the ladder is built
around the fair mid, shifted by the inventory skew).

Output: ``session.png`` (quotes against the mid with fills, PnL, inventory, latency), ``session.html``
(the PNG inline, plus tables) and ``summary.json``. Plots use matplotlib's Agg backend (no display).

Modules: :mod:`~fastmm.report.session` (the rebuild and the summary), :mod:`~fastmm.report.plots`,
:mod:`~fastmm.report.html`, :mod:`~fastmm.report.make` (the three files from a journal and the files
beside it). ``fastmm report --db`` (:mod:`fastmm.db.report`) draws the same pages from the database.
"""
