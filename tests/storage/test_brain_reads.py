"""How the brain reads on PostgreSQL: autocommit, no checkout ping, one retry on a dead connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

import mosaic_storage as ms
from mosaic_storage._store import run_read
from mosaic_storage.brain import Brain, NotFound


@pytest.fixture(params=["postgres", "pgvector"])
def pg_store(request: pytest.FixtureRequest) -> ms.Store:
    store: ms.Store = request.getfixturevalue(f"{request.param}_store")
    ms.upgrade(store)
    return store


@pytest.fixture
def brain(pg_store, tmp_path):
    return Brain(pg_store, workspace_root=tmp_path)


def _terminate_pooled_connections(store: ms.Store) -> int:
    """Have the server close every other session on the store's database; the pool is not told."""
    cargs, cparams = store.engine.dialect.create_connect_args(store.engine.url)
    with psycopg.connect(*cargs, **cparams, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def invalidations(pg_store) -> Iterator[list[Any]]:
    """Connections the pool threw away as dead, in order."""
    seen: list[Any] = []

    def record(_dbapi_conn: Any, _record: Any, exception: Any) -> None:
        seen.append(exception)

    sa.event.listen(pg_store.engine, "invalidate", record)
    yield seen
    sa.event.remove(pg_store.engine, "invalidate", record)


def test_a_read_after_the_server_closed_the_pooled_connection_still_works(brain, pg_store, invalidations):
    ann = brain.users.create(name="ann").id
    project = brain.projects.create(ann, name="P")
    task = brain.tasks.create(ann, title="t", project_id=project.id)
    assert [t.id for t in brain.tasks.list(ann, project_id=project.id)] == [task.id]
    assert _terminate_pooled_connections(pg_store) >= 1
    # The read takes a dead connection without a ping, fails, and runs again on a fresh one.
    assert [t.id for t in brain.tasks.list(ann, project_id=project.id)] == [task.id]
    assert len(invalidations) >= 1
    assert brain.tasks.get(ann, task.id) == task


def test_a_write_after_the_server_closed_the_pooled_connection_still_works(brain, pg_store):
    ann = brain.users.create(name="ann").id
    brain.projects.list(ann)
    assert _terminate_pooled_connections(pg_store) >= 1
    project = brain.projects.create(ann, name="after")  # the checkout ping finds the dead one
    assert brain.projects.get(ann, project.id) == project


def test_other_users_of_the_engine_keep_the_checkout_ping(pg_store):
    with pg_store.engine.connect() as conn:
        conn.execute(sa.text("select 1"))
    assert _terminate_pooled_connections(pg_store) >= 1
    with pg_store.engine.connect() as conn:
        assert conn.execute(sa.text("select 2")).scalar() == 2


def test_reads_skip_the_ping_that_other_checkouts_make(brain, pg_store, monkeypatch):
    ann = brain.users.create(name="ann").id
    brain.projects.list(ann)
    dialect = pg_store.engine.dialect
    pings: list[Any] = []
    real_ping = dialect.do_ping

    def counted_ping(dbapi_conn: Any) -> bool:
        pings.append(dbapi_conn)
        return real_ping(dbapi_conn)

    monkeypatch.setattr(dialect, "do_ping", counted_ping)
    brain.projects.list(ann)
    brain.users.get(ann, ann)
    assert pings == []
    brain.projects.create(ann, name="P")
    with pg_store.engine.connect() as conn:
        conn.execute(sa.text("select 1"))
    assert len(pings) == 2


def test_reads_run_in_autocommit_and_hand_back_transactional_connections(brain, pg_store):
    ann = brain.users.create(name="ann").id
    autocommit: dict[str, bool] = {}

    def note(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        kind = statement.split(None, 1)[0].upper()
        autocommit[kind] = conn.connection.dbapi_connection.autocommit

    sa.event.listen(pg_store.engine, "before_cursor_execute", note)
    try:
        brain.projects.create(ann, name="P")
        brain.projects.list(ann)
    finally:
        sa.event.remove(pg_store.engine, "before_cursor_execute", note)
    assert autocommit == {"INSERT": False, "SELECT": True}
    # The next user of the pooled connection is back in a transaction: a rollback undoes.
    with pg_store.engine.connect() as conn:
        conn.execute(sa.text("update projects set name = 'changed'"))
        conn.rollback()
    assert [p.name for p in brain.projects.list(ann)] == ["P"]


def test_a_read_is_retried_once_on_a_dead_connection_then_the_error_is_raised(pg_store):
    calls: list[int] = []

    def dies(conn: sa.Connection) -> None:
        calls.append(1)
        conn.execute(sa.text("select pg_terminate_backend(pg_backend_pid())"))

    with pytest.raises(sa.exc.OperationalError) as caught:
        run_read(pg_store.engine, dies)
    assert caught.value.connection_invalidated
    assert len(calls) == 2
    assert run_read(pg_store.engine, lambda conn: conn.execute(sa.text("select 3")).scalar()) == 3


def test_a_read_failing_for_another_reason_is_not_retried(pg_store):
    calls: list[int] = []

    def bad(conn: sa.Connection) -> None:
        calls.append(1)
        conn.execute(sa.text("select * from no_such_table"))

    with pytest.raises(sa.exc.ProgrammingError):
        run_read(pg_store.engine, bad)
    assert len(calls) == 1


def test_a_reused_page_statement_applies_each_actors_rules(brain):
    ann, dan = (brain.users.create(name=n).id for n in ("ann", "dan"))
    project = brain.projects.create(ann, name="P")
    task = brain.tasks.create(ann, title="t", project_id=project.id, status="blocked")
    for _ in range(2):
        assert [t.id for t in brain.tasks.list(ann, project_id=project.id, status="blocked")] == [task.id]
        assert len(brain.tasks.list(dan, project_id=project.id, status="blocked")) == 0
        assert len(brain.tasks.list(ann, project_id=project.id, status="done")) == 0
    with pytest.raises(NotFound):
        brain.tasks.get(dan, task.id)
    assert brain.tasks.get(ann, task.id) == task
