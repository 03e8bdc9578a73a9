"""End to end (issue 19): the engine reconciles with TrueX's REST API after logon and before quoting, sets
cancel_on_disconnect, and after a kill -9 of the quoter the venue has cancelled its quotes at once and
the restarted quoter reconciles again; fills on the venue and in the journal stay equal, each once."""

from __future__ import annotations

import os
import signal

from fastmm.monitor.status import _add_files, _render_files
from fastmm.procs import lifecycle as lc


def test_reconcile_at_start_and_cancel_on_disconnect_after_a_quoter_kill(engine) -> None:
    e = engine({"FASTMM_TRUEX__RECONCILE_AT_START": "true", "FASTMM_TRUEX__CANCEL_ON_DISCONNECT": "true",
                "FASTMM_TRUEX__USER_ID": "e2e-user", "FASTMM_SIM__SPEED": "3"})
    e.run_until(lambda: e.sup.lifecycle.phase == lc.Phase.QUOTING, 30, "QUOTING")
    recs = [r for r in e.journal() if r["kind"] == "reconcile"]
    assert len(recs) == 1 and "error" not in recs[0], recs
    assert recs[0]["cancel_on_disconnect"] is True and recs[0]["unknown_live"] == 0
    kinds = [r["kind"] for r in e.journal()]
    assert kinds.index("reconcile") < kinds.index("order"), "reconciled before the first quote"
    assert e.venues.truex.exchange.cancel_on_disconnect is True
    e.run_until(lambda: len(e.sim_live()) >= 4 and len(e.sim_fills()) >= 1, 60, "quotes and a fill")

    child = e.sup.children["quoter"]
    assert child.proc is not None
    old = child.proc.pid
    os.kill(old, signal.SIGKILL)
    e.run_until(lambda: not e.sim_live(), 5, "the venue cancels the quotes of the dropped session")
    by_venue = [ev for ev in e.venues.truex.exchange.order_state.values() if ev.cl_ord_id.startswith("venue-")]
    assert len(by_venue) >= 4, "canceled by the venue itself (cancel_on_disconnect), not by a new quoter"
    e.run_until(lambda: child.proc is not None and child.proc.pid != old, 20, "quoter restarted")
    e.run_until(lambda: e.sup.lifecycle.phase == lc.Phase.QUOTING
                and len([r for r in e.journal() if r["kind"] == "reconcile"]) == 2, 30, "reconciled again")
    e.run_until(lambda: len(e.sim_fills()) >= 3, 60, "more fills")
    e.sup.request_stop("test")
    e.run_until(lambda: e.sup.lifecycle.phase == lc.Phase.STOPPED, 60, "STOPPED")
    journal = e.journal()
    fills = [r for r in journal if r["kind"] == "fill"]
    venue = {f.exec_id for f in e.sim_fills()}
    booked = {str(f.get("match_id") or f["exec_id"]) for f in fills}
    assert len(booked) == len(fills) and booked == venue, "every venue fill booked exactly once"
    st: dict[str, object] = {}
    _add_files(st, e.cfg.state_path, e.cfg.journal.file)
    assert any(ln.startswith("venue    reconciled at start") and "cancel_on_disconnect on" in ln
               for ln in _render_files(st))
