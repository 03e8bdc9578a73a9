"""The test servers themselves: real, password-protected, and gone after remove()."""

from __future__ import annotations

import psycopg
import pytest
import redis

from fastmm.db.servers import PostgresServer, RedisServer


def test_postgres_requires_the_password_and_restarts_on_its_port(pg_server: PostgresServer, db: str) -> None:
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(db.replace("@", ":wrong@"), connect_timeout=5)
    with psycopg.connect(db, password=pg_server.password) as c:
        assert c.execute("SELECT current_user").fetchone() == ("fastmm",)
        c.execute("CREATE TABLE t (x int)")
        c.execute("INSERT INTO t VALUES (7)")
    port = pg_server.port
    pg_server.crash()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(db, password=pg_server.password, connect_timeout=2)
    pg_server.start()
    assert pg_server.port == port
    with psycopg.connect(db, password=pg_server.password) as c:
        assert c.execute("SELECT x FROM t").fetchall() == [(7,)]


def test_redis_requires_the_password(redis_server: RedisServer, redis_url: str) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(redis_url, password="wrong").ping()
    r = redis.Redis.from_url(redis_url, password=redis_server.password)
    assert r.ping()
    r.close()


def test_remove_leaves_nothing_behind() -> None:
    pg, rd = PostgresServer(), RedisServer()
    try:
        pg.start()
        rd.start()
        assert pg.proc is not None and rd.proc is not None
        procs = (pg.proc, rd.proc)
    finally:
        pg.remove()
        rd.remove()
    assert all(p.poll() is not None for p in procs)
    assert not pg.root.exists() and not rd.root.exists()
