"""Does the database hold exactly the journal? Record for record, and typed row for typed row.

Used by the fault tests and ``bench/ship.py``; an operator can run it after an incident. Reads both
sides in full: meant for test sessions and audits, not for the hot path.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from fastmm.db import rows
from fastmm.journal.reader import exists, read_objects


def expected_rows(records: list[dict[str, Any]]) -> Counter[str]:
    """Typed rows a stream's records should make: one per record, a repeated exec id once."""
    out: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    for rec in records:
        table = rows.table_of(rec)
        if table is None:
            continue
        if table == "executions":
            venue = "truex" if rec.get("kind") == "fill" else "kraken"
            key = (venue, str(rec.get("exec_id")))
            if key in seen:
                continue
            seen.add(key)
        out[table] += 1
    return out


def differences(conn: Any, instance: str, streams: dict[str, Path]) -> list[str]:
    """Every way the database differs from the journals of ``instance`` (empty: they agree).
    ``conn``: a psycopg (sync) connection."""
    problems: list[str] = []
    want_tables: Counter[str] = Counter()
    for stream, path in streams.items():
        recs = list(read_objects(path)) if exists(path) else []
        want_tables += expected_rows(recs)
        got = conn.execute("SELECT seq, body FROM journal_records WHERE instance = %s AND stream = %s "
                           "ORDER BY seq", (instance, stream)).fetchall()
        want = {int(r["seq"]): r for r in recs}
        have = {int(s): (b if isinstance(b, dict) else orjson.loads(b)) for s, b in got}
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        if missing:
            problems.append(f"{stream}: {len(missing)} record(s) not in the database, first seq {missing[0]}")
        if extra:
            problems.append(f"{stream}: {len(extra)} row(s) not in the journal, first seq {extra[0]}")
        changed = [s for s in set(want) & set(have) if want[s] != have[s]]
        if changed:
            problems.append(f"{stream}: {len(changed)} record(s) differ, first seq {min(changed)}")
        cursor = conn.execute("SELECT seq FROM ship_cursor WHERE instance = %s AND stream = %s",
                              (instance, stream)).fetchone()
        last = max(want) if want else 0
        if (cursor[0] if cursor else 0) != last:
            problems.append(f"{stream}: cursor at {cursor[0] if cursor else None}, journal ends at {last}")
    for table in rows.COLUMNS:
        n = conn.execute(f"SELECT count(*) FROM {table} WHERE instance = %s", (instance,)).fetchone()[0]
        if n != want_tables.get(table, 0):
            problems.append(f"{table}: {n} row(s), the journal makes {want_tables.get(table, 0)}")
    return problems
