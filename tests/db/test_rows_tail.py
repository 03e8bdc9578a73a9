"""The record -> row mapping and the journal tail (no database)."""

from __future__ import annotations

import os
from pathlib import Path

from db_journals import write_session

from fastmm.db import rows
from fastmm.db.tail import JournalTail, last_seq
from fastmm.db.verify import expected_rows
from fastmm.journal import Journal, read_journal


def test_every_record_kind_the_engine_writes_has_one_table() -> None:
    from fastmm.journal import KINDS

    for kind in KINDS - {"hedge_fill"}:
        assert rows.table_of({"kind": kind}) in rows.COLUMNS, kind
    assert rows.table_of({"kind": "hedge_fill", "source": "quoter"}) == "executions"
    assert rows.table_of({"kind": "hedge_fill"}) == "hedges"


def test_fill_row_is_integer_money_and_ticks() -> None:
    table, vals = rows.to_row({"kind": "fill", "exec_id": "E1", "cl_ord_id": "a", "side": "2", "px_ticks": 180_001,
                               "qty_lots": 7, "leaves_lots": 3, "liquidity": 1, "fee": "0.01234567"}, 50_000_000)
    assert table == "executions"
    got = dict(zip(rows.COLUMNS["executions"], vals, strict=True))
    assert got == {"venue": "truex", "exec_id": "E1", "cl_ord_id": "a", "side": 2, "px_ticks": 180_001,
                   "price_e8": 180_001 * 50_000_000, "qty_lots": 7, "leaves_lots": 3, "liquidity": 1,
                   "fee_e8": 1_234_567}
    _, vals = rows.to_row({"kind": "hedge_fill", "source": "quoter", "exec_id": "T:1", "side": "BUY",
                           "qty_lots": 5, "price": "90000.12345678", "fee": "None"}, 50_000_000)
    got = dict(zip(rows.COLUMNS["executions"], vals, strict=True))
    assert (got["venue"], got["side"], got["price_e8"], got["fee_e8"]) == ("kraken", 1, 9_000_012_345_678, None)


def test_tail_follows_rotations_and_resumes_after_a_seq(tmp_path: Path) -> None:
    state = tmp_path / "i"
    write_session(state, 60, rotate_bytes=4096)
    path = state / "journal.jsonl"
    assert len(list(path.parent.glob("journal.jsonl.*"))) >= 3, "the journal must have rotated"
    every = [r["seq"] for r in read_journal(path)]
    tail = JournalTail(path)
    got = [s for s, _, _ in tail.poll(7)]
    while True:
        more = tail.poll(7)
        if not more:
            break
        got += [s for s, _, _ in more]
    assert got == every == list(range(1, len(every) + 1))
    assert last_seq(path) == every[-1]
    tail.close()
    # from the middle of a rotated segment
    with JournalTail(path, after_seq=every[len(every) // 2]) as t2:
        assert [s for s, _, _ in t2.poll(10_000)] == every[len(every) // 2 + 1:]


def test_tail_sees_writes_and_rotations_while_it_reads(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = Journal(path, "flush", 2048)
    tail = JournalTail(path)
    seen: list[int] = []
    for i in range(400):
        j.append("note", i, detail="x" * (i % 50))
        if i % 13 == 0:
            seen += [s for s, _, _ in tail.poll(5)]
    j.close()
    for _ in range(1000):
        more = tail.poll(100)
        if not more:
            break
        seen += [s for s, _, _ in more]
    assert seen == list(range(1, 401))


def test_tail_waits_for_a_torn_line_and_rereads_after_the_writer_cuts_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    j.append("note", 1, detail="a")
    j.close()
    with path.open("ab") as f:
        f.write(b'{"seq": 2, "t_ns": 2, "kind": "no')    # a writer killed mid-line
    tail = JournalTail(path)
    assert [s for s, _, _ in tail.poll(10)] == [1]
    assert tail.poll(10) == []
    j = Journal(path)       # the restarted writer cuts the torn line and goes on
    j.append("note", 3, detail="b")
    j.close()
    got = tail.poll(10)
    assert [(s, r["t_ns"]) for s, r, _ in got] == [(2, 3)]
    assert os.path.getsize(path) > 0


def test_expected_rows_books_a_repeated_exec_id_once(tmp_path: Path) -> None:
    write_session(tmp_path, 20)
    recs = list(read_journal(tmp_path / "journal.jsonl"))
    exp = expected_rows(recs)
    assert exp["executions"] == 20 + 2          # 20 TrueX fills (3 repeated) and 2 booked hedge fills
    assert sum(exp.values()) == len(recs) - 3
