"""Reconciliation with TrueX at start (issue 19): the quoter's REST step against the simulator's REST
endpoints, with a journal left by a "previous run" that missed a fill and never recorded one live order."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "venues" / "truex"))
from truex_venue import INSTRUMENT, KEY, SECRET, USER, Venue

from fastmm.config import Config, load_config
from fastmm.core.ids import RecentIds
from fastmm.event_loop import run
from fastmm.journal import Journal, read_journal
from fastmm.monitor.status import _add_files, _render_files
from fastmm.procs.order_journal import journal_report
from fastmm.procs.quoter import Quoter
from fastmm.procs.recovery import recover
from fastmm.procs.venue_reconcile import reconcile_at_start
from fastmm.venues.truex.codec import BUY, SELL
from fastmm.venues.truex.reconcile import JournalView, plan_start
from fastmm.venues.truex.rest_codec import RestOrder, RestTrade


def _cfg(tmp: Path, url: str) -> Config:
    return load_config(None, environ={
        "FASTMM_INSTANCE__STATE_DIR": str(tmp), "FASTMM_TRUEX__REST_URL": url, "FASTMM_TRUEX__USER_ID": USER,
        "FASTMM_TRUEX__RECONCILE_AT_START": "true", "FASTMM_TRUEX__CANCEL_ON_DISCONNECT": "true",
        "FASTMM_TRUEX__REST_MIN_INTERVAL_MS": "0",
        "FASTMM_TRUEX_API_KEY_ID": KEY, "FASTMM_TRUEX_API_SECRET": SECRET})   # no client id: from GET /client


def _start(cfg: Config) -> Quoter:
    """A quoter as main() makes it: journal, recovery from it, its booked fill ids."""
    cfg.state_path.mkdir(parents=True, exist_ok=True)
    path = cfg.state_path / cfg.journal.file
    q = Quoter(cfg, None, Journal(path, cfg.journal.durability, cfg.journal.rotate_bytes), {}, None, None, None)
    rec = recover(path, q.core, cfg)
    for exec_id in rec.fill_ids:
        q._fill_ids.add(exec_id)
    return q


def test_unknown_live_order_canceled_and_missed_fill_booked_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with Venue() as v:
            cfg = _cfg(tmp_path, v.url)
            cfg.state_path.mkdir(parents=True)
            # -- the previous run: o1 journalled and acknowledged; x2 sent but never journalled; o1's fill
            # reached the venue's books while the journal missed it.
            prev = Journal(cfg.state_path / cfg.journal.file)
            prev.append("order", 1, cl_ord_id="o1", side="1", price_ticks=119_990, qty_lots=20)
            ack = await v.place("o1", BUY, 20, 119_990)
            assert ack.exec_type == "0" and journal_report(prev, ack, RecentIds()) is not None
            await v.place("x2", SELL, 5, 120_020)
            v.sim.exchange.take("2", 8, v.sim.clock())       # an outside seller hits o1 for 8 lots
            v.sim.flush()
            await v.until(lambda: any(r.exec_type == "F" for r in v.reports()))
            fix_fill = next(r for r in v.reports() if r.exec_type == "F")
            prev.close()

            # -- start: reconcile
            q = _start(cfg)
            assert q.core.inventory.position_lots == 0
            counts = await reconcile_at_start(q)
            assert counts["venue_live"] == 2 and counts["known_live"] == 1
            assert (counts["unknown_live"], counts["unknown_canceled"], counts["cancel_failed"]) == (1, 1, 0)
            assert (counts["fills_missed"], counts["fills_booked"], counts["fills_foreign"]) == (1, 1, 0)
            assert counts["client_id_from_venue"] is True and counts["cancel_on_disconnect"] is True
            assert q.core.inventory.position_lots == 8 and q.fills == 1
            assert [o.last_cl_ord_id for o in v.sim.exchange.engine.live_orders()] == ["o1"]
            assert v.sim.exchange.cancel_on_disconnect is True
            assert q.codec.new_order_single("n1", BUY, 1, 119_000).count(b"448=SIMCLIENT") == 1
            # the same fill over FIX (a resend after the gap) is a duplicate by its match id
            assert fix_fill.trd_match_id and journal_report(q.journal, fix_fill, q._fill_ids) is None
            q.journal.close()
            recs = list(read_journal(cfg.state_path / cfg.journal.file))
            fills = [r for r in recs if r["kind"] == "fill"]
            assert len(fills) == 1 and fills[0]["source"] == "rest" and fills[0]["match_id"] == fix_fill.trd_match_id
            assert fills[0]["qty_lots"] == 8 and fills[0]["leaves_lots"] == 12 and fills[0]["cl_ord_id"] == "o1"
            assert [r["kind"] for r in recs].count("reconcile") == 1

            st: dict[str, object] = {}
            _add_files(st, cfg.state_path, cfg.journal.file)
            line = next(ln for ln in _render_files(st) if ln.startswith("venue"))
            assert "2 live (1 unknown, 1 canceled, 0 failed)" in line and "1 booked from REST" in line

            # -- a second start: the fill is in the journal now, nothing is booked twice
            q2 = _start(cfg)
            assert q2.core.inventory.position_lots == 8
            again = await reconcile_at_start(q2)
            assert (again["fills_booked"], again["fills_already_booked"], again["unknown_live"]) == (0, 1, 0)
            assert q2.core.inventory.position_lots == 8
            assert journal_report(q2.journal, fix_fill, q2._fill_ids) is None    # over FIX after a restart
            q2.journal.close()

    run(main())


def test_a_rest_failure_is_journalled_and_shown_not_a_crash(tmp_path: Path) -> None:
    async def main() -> None:
        cfg = _cfg(tmp_path, "http://127.0.0.1:9")
        q = _start(cfg)
        counts = await reconcile_at_start(q)
        assert "GET /client" in counts["error"]
        q.journal.close()
        st: dict[str, object] = {}
        _add_files(st, cfg.state_path, cfg.journal.file)
        assert any("reconcile at start FAILED: TrueX REST GET /client" in ln for ln in _render_files(st))

    run(main())


def test_start_quoting_waits_for_the_reconciliation(tmp_path: Path) -> None:
    q = _start(_cfg(tmp_path, "http://127.0.0.1:9"))
    q.reconciling = True
    assert q.on_command(7, "start_quoting") is False and q.deferred_start == 7 and not q.quoting
    q.reconciling = False
    assert q.on_command(7, "start_quoting") is True and q.quoting
    q.journal.close()


def _order(oid: str, cl: str, leaves: int = 5) -> RestOrder:
    return RestOrder(oid, cl, "ACTIVE", "1", 100, 10, leaves, "C")


def _trade(oid: str, match: str, ts: int = 1) -> RestTrade:
    return RestTrade(oid, match, 100, 5, Decimal("0.001"), 1, ts)


def test_plan_classifies_orders_and_fills() -> None:
    view = JournalView(sent={"a": "1", "b": "2"}, order_ids={"OA": "a", "OB": "b"}, booked={"M1", "rest:M2"})
    active = [_order("OA", "a"), _order("OX", "zz"), _order("OB2", "b")]
    trades = [_trade("OA", "M1"), _trade("OA", "M2"), _trade("OA", "M3"), _trade("OA", "M3"),
              _trade("OB", "M4", 0), _trade("OQ", "M5")]
    plan = plan_start(view, active, trades)
    assert [o.order_id for o in plan.unknown_live] == ["OX"]
    assert sorted(o.order_id for o in plan.known_live) == ["OA", "OB2"]
    assert [(m.trade.match_id, m.cl_ord_id, m.side, m.leaves_lots) for m in plan.missed] == [
        ("M4", "b", "2", 0), ("M3", "a", "1", 5)]
    assert plan.already_booked == 2 and [t.match_id for t in plan.unresolved] == ["M5"]
    plan.resolve(view, {"OQ": None})
    assert [t.match_id for t in plan.foreign] == ["M5"] and plan.unresolved == []
    assert INSTRUMENT.notional(100, 5) * plan.missed[0].trade.fee_rate == plan.missed[0].fee(INSTRUMENT)
