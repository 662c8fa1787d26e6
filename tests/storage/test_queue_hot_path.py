"""What the queue's fast paths must keep: durable enqueues on PostgreSQL, the jobs index on
SQLite, and reservations that follow the kinds they are given."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import pytest

import mosaic_storage as ms
from mosaic_storage.queue import JobQueue, JobStatus, open_queue


def test_reserve_follows_the_kinds_it_is_given_each_time(queue: JobQueue) -> None:
    queue.enqueue("a", {"n": 1})
    queue.enqueue("b", {"n": 2})
    queue.enqueue("c", {"n": 3})
    kinds = ["a"]
    [first] = queue.reserve(kinds)
    kinds[0] = "b"  # the same list, changed in place
    [second] = queue.reserve(kinds)
    [third] = queue.reserve(kind for kind in ["c"])  # a generator, read once
    assert [first.kind, second.kind, third.kind] == ["a", "b", "c"]
    assert queue.reserve(["a", "b", "c"]) == []


@pytest.fixture
def pg_queue_url(request: pytest.FixtureRequest) -> Iterator[str]:
    server = request.getfixturevalue("postgres_server") or request.getfixturevalue("pgvector_server")
    url: str = server.create_database("jobs")
    with ms.open_store(url) as store:
        ms.upgrade(store)
    yield url
    server.drop_database(url)


def test_postgres_only_ack_and_fail_commit_asynchronously(pg_queue_url: str) -> None:
    import psycopg

    # CI's throwaway server runs with synchronous_commit off: this database gets "on" (the
    # queue must keep whatever the server says for enqueues; off would hide the difference).
    with psycopg.connect(pg_queue_url, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
    server_setting = "on"
    # A trigger records the synchronous_commit each write to the jobs table ran with.
    with psycopg.connect(pg_queue_url, autocommit=True) as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == server_setting  # type: ignore[index]
        conn.execute("CREATE TABLE commit_log (op text, kind text, status text, setting text)")
        conn.execute(
            "CREATE FUNCTION log_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " INSERT INTO commit_log VALUES (TG_OP, COALESCE(NEW.kind, OLD.kind),"
            " COALESCE(NEW.status, OLD.status), current_setting('synchronous_commit'));"
            " RETURN COALESCE(NEW, OLD); END $$"
        )
        conn.execute(
            "CREATE TRIGGER jobs_commit_log BEFORE INSERT OR UPDATE OR DELETE ON jobs"
            " FOR EACH ROW EXECUTE FUNCTION log_commit()"
        )
    with contextlib.closing(open_queue(pg_queue_url)) as queue:
        queue.enqueue("ok", {})
        queue.enqueue("bad", {}, max_attempts=1)
        [ok] = queue.reserve(["ok"])
        assert queue.ack(ok)
        [bad] = queue.reserve(["bad"])
        assert queue.fail(bad, "boom") is not None
        assert queue.retry(kind="bad") == 1
        [bad] = queue.reserve(["bad"])
        assert queue.extend(bad, 30)
        assert queue.release(bad)
        assert queue.purge(JobStatus.DONE) == 1
    with psycopg.connect(pg_queue_url) as conn:
        log = conn.execute("SELECT op, kind, status, setting FROM commit_log").fetchall()
    durable = [(op, kind) for op, kind, _, setting in log if setting == server_setting]
    # Enqueues, reserves, the retry, the extend, the release and the purge: a lost reserve or
    # extend would let a second worker run a job that is still running.
    assert durable == [
        ("INSERT", "ok"),
        ("INSERT", "bad"),
        ("UPDATE", "ok"),
        ("UPDATE", "bad"),
        ("UPDATE", "bad"),
        ("UPDATE", "bad"),
        ("UPDATE", "bad"),
        ("UPDATE", "bad"),
        ("DELETE", "ok"),
    ]
    # Everything else: ack, fail.
    assert [setting for _, _, _, setting in log].count("off") == 2


def test_sqlite_queue_queries_use_the_index_of_unfinished_jobs(tmp_path: object) -> None:
    from mosaic_storage.queue import sqlite as queue_sql

    url = f"sqlite:///{tmp_path}/jobs.db"
    with ms.open_store(url) as store:
        ms.upgrade(store)
    conn = sqlite3.connect(f"{tmp_path}/jobs.db")
    where, params = queue_sql._filters(JobStatus.DEAD, "k")
    plans = {
        "reserve": conn.execute("EXPLAIN QUERY PLAN " + queue_sql._pick(2), ("now", "a", "b", 1)),
        "reclaim": conn.execute("EXPLAIN QUERY PLAN " + queue_sql._EXPIRED, {"now": "now"}),
        "dead": conn.execute(f"EXPLAIN QUERY PLAN SELECT id FROM jobs{where}", params),
    }
    for what, plan in plans.items():
        text = " ".join(str(row[-1]) for row in plan.fetchall())
        assert "ix_jobs_unfinished" in text, (what, text)
    conn.close()


def test_reserve_checks_its_arguments_every_time(queue: JobQueue) -> None:
    from mosaic_storage.queue import QueueError

    queue.enqueue("k", {})
    assert queue.reserve(["k"], count=1, lease=30) != []
    for bad in ({"count": 1.0}, {"count": 0}, {"lease": float("nan")}, {"lease": -1}, {"wait": -1.0}):
        with pytest.raises(QueueError):
            queue.reserve(["k"], **bad)  # type: ignore[arg-type]
    with pytest.raises(QueueError):
        queue.reserve([" k"])


def test_a_redis_wait_that_rounds_to_zero_ms_still_ends() -> None:
    from mosaic_storage.queue.redis import BLOCK_SLICE_S, block_ms

    # BLOCK 0 is "forever" to Redis: what is left of a wait must never round down to it.
    assert block_ms(0.0004) == 1
    assert block_ms(0.0) is None and block_ms(-1.0) is None
    assert block_ms(0.1) == 100
    assert block_ms(60.0) == round(BLOCK_SLICE_S * 1000)
