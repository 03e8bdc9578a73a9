"""One real PostgreSQL and one real Redis per test session (fastmm.db.servers), a fresh database per test.

Clients get the passwords from the environment (FASTMM_DB_PASSWORD, FASTMM_REDIS_PASSWORD), as the
engine's processes do; the URLs carry none.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
import pytest

from fastmm.db.servers import PostgresServer, RedisServer

_n = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    srv = PostgresServer()
    try:
        srv.start()
        yield srv
    finally:
        srv.remove()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    srv = RedisServer()
    try:
        srv.start()
        yield srv
    finally:
        srv.remove()


@pytest.fixture
def db(pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty database on the session's server; its URL (password in FASTMM_DB_PASSWORD)."""
    if pg_server.proc is None or pg_server.proc.poll() is not None:
        pg_server.start()       # a fault test stopped it
    name = f"t{next(_n)}"
    admin = pg_server.dsn(with_password=True, database="postgres")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv("FASTMM_DB_PASSWORD", pg_server.password)
    yield pg_server.dsn(database=name)
    if pg_server.proc is None or pg_server.proc.poll() is not None:
        pg_server.start()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The session's Redis, flushed; its URL (password in FASTMM_REDIS_PASSWORD)."""
    import redis

    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    r = redis.Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
    r.flushall()
    r.close()
    monkeypatch.setenv("FASTMM_REDIS_PASSWORD", redis_server.password)
    yield redis_server.url()
