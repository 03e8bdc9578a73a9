"""Versioned schema migrations: ``fastmm/db/migrations/NNNN_name.sql``, applied in order, each once.

``schema_migrations`` records what ran. A migration and its record commit together, under an advisory
lock, so two shippers (or a shipper and ``fastmm db migrate``) starting at once apply each file once.
A file once released is never edited: a change is a new file.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

log = logging.getLogger("fastmm.db")

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK = 0x6661_7374_6D6D   # "fastmm": pg_advisory_xact_lock key


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped with fastmm, oldest first."""
    out = []
    for f in resources.files("fastmm.db").joinpath("migrations").iterdir():
        m = _NAME.match(f.name)
        if m:
            out.append((int(m.group(1)), m.group(2), f.read_text(encoding="utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if versions != list(range(1, len(out) + 1)):
        raise RuntimeError(f"fastmm.db migrations are not numbered 1..n: {versions}")
    return out


def latest_version() -> int:
    return len(migrations())


def current_version(conn: Any) -> int:
    """The schema version of a database (0: never migrated). ``conn``: a psycopg connection."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0])


def migrate(conn: Any) -> list[int]:
    """Bring the database to the latest version; returns the versions applied now."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, "
                     "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        have = current_version(conn)
        for version, name, sql in migrations():
            if version <= have:
                continue
            conn.execute(sql)   # our own files, no parameters
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(version)
            log.info("db: applied migration %04d_%s", version, name)
    return applied
