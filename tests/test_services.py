"""Checks that the service fixtures in tests._services hand out real, isolated servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests import _services
from tests._services import (
    PasswordDatabase,
    PgServer,
    blackhole_listener,
    closed_port,
    redis_db_url,
    silent_listener,
)


def _current_database(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def second_pgvector_url(pgvector_server: PgServer) -> Iterator[str]:
    url = pgvector_server.create_database("vec")
    yield url
    pgvector_server.drop_database(url)


def test_each_pgvector_url_is_its_own_database(pgvector_url: str, second_pgvector_url: str) -> None:
    assert _current_database(pgvector_url) != _current_database(second_pgvector_url)


def test_vector_extension_can_be_created(pgvector_url: str) -> None:
    with psycopg.connect(pgvector_url) as conn:
        conn.execute("CREATE EXTENSION vector")
        row = conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector").fetchone()
    assert row == (1.0,)


def test_dropped_database_is_gone(pgvector_server: PgServer) -> None:
    url = pgvector_server.create_database("gone")
    with psycopg.connect(url):
        # A session left open must not block the drop.
        pgvector_server.drop_database(url)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url).close()


def test_drop_without_force_ends_open_sessions(pgvector_server: PgServer) -> None:
    # The path taken when FORCE is refused (an autovacuum worker on a server where the role
    # lacks pg_signal_backend): this role's own sessions are ended and the drop retried.
    url = pgvector_server.create_database("noforce")
    name = _current_database(url)
    admin_url = pgvector_server.admin_url
    with psycopg.connect(url) as open_session, _services._admin_connection(admin_url) as admin:
        _services._drop_database_without_force(admin, name, sql.Identifier(name))
        with pytest.raises(psycopg.OperationalError):
            open_session.execute("SELECT 1")
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url).close()


def test_postgres_url_has_no_pgvector(postgres_server: PgServer | None, postgres_url: str) -> None:
    assert postgres_server is not None
    assert not postgres_server.has_vector_available
    assert _current_database(postgres_url).startswith("pg_")


def test_redis_url_answers_and_starts_empty(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        assert client.dbsize() == 0
        client.set("mosaic:key", "value")
        assert client.get("mosaic:key") == b"value"
    finally:
        client.close()


def test_redis_url_is_flushed_between_tests(redis_url: str) -> None:
    # Runs after the test above wrote a key into the same logical database.
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.get("mosaic:key") is None
    finally:
        client.close()


def test_redis_url_does_not_touch_database_zero(redis_server_url: str, redis_url: str) -> None:
    zero = redis.Redis.from_url(redis_db_url(redis_server_url, 0))
    mine = redis.Redis.from_url(redis_url)
    try:
        mine.set("mosaic:isolated", "1")
        assert zero.get("mosaic:isolated") is None
    finally:
        zero.close()
        mine.close()


def test_password_database_needs_the_password(password_pg: PasswordDatabase) -> None:
    assert _current_database(password_pg.good_url) == password_pg.dbname
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(password_pg.bad_url).close()
    assert password_pg.password not in repr(password_pg)
    assert "S3cret" not in repr(password_pg.good_url)


def test_pg_server_repr_hides_password() -> None:
    server = PgServer("postgresql://u:hunter2@127.0.0.1:5432/postgres", "15", False, False)
    assert "hunter2" not in repr(server)


def test_blackhole_connect_times_out() -> None:
    # psycopg raises connect_timeout below 2 s to 2 s, so 2 s is what we wait for.
    with blackhole_listener() as (host, port):
        started = time.monotonic()
        with pytest.raises(psycopg.errors.ConnectionTimeout):
            psycopg.connect(f"postgresql://u:p@{host}:{port}/db?connect_timeout=1")
        elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 4


def test_blackhole_drops_tcp_handshake() -> None:
    with blackhole_listener() as (host, port), socket.socket() as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.connect((host, port))


def test_silent_listener_accepts_but_never_answers() -> None:
    with silent_listener() as (host, port):
        started = time.monotonic()
        with pytest.raises(psycopg.errors.ConnectionTimeout):
            psycopg.connect(f"postgresql://u:p@{host}:{port}/db?connect_timeout=2")
        assert time.monotonic() - started < 4
        # Without retry=, redis-py 8 retries timeouts 3 times with backoff (~9 s here).
        client = redis.Redis(host=host, port=port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
        try:
            with pytest.raises(redis.TimeoutError):
                client.ping()
        finally:
            client.close()


def test_closed_port_is_refused_quickly(closed_port_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="refused"):
        psycopg.connect(closed_port_url + "?connect_timeout=5")
    assert time.monotonic() - started < 1


def test_closed_port_refuses_plain_tcp() -> None:
    with closed_port() as (host, port), socket.socket() as sock:
        with pytest.raises(ConnectionRefusedError):
            sock.connect((host, port))


@pytest.mark.parametrize(
    ("server_url", "expected"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/3"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:pw@127.0.0.1:6379/3"),
        ("unix:///tmp/redis.sock?db=0", "unix:///tmp/redis.sock?db=3"),
    ],
)
def test_redis_db_url_picks_the_logical_database(server_url: str, expected: str) -> None:
    assert redis_db_url(server_url, 3) == expected
