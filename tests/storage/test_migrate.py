"""migrate-tier: every durable row moves up a tier, exactly once, on real databases."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

import mosaic_storage as ms
from mosaic_storage import schema
from mosaic_storage.migrate import (
    SKIPPED_TABLES,
    MigrationReport,
    MigrationSource,
    MigrationTarget,
    PostgresTarget,
    SqlAlchemySource,
    migrate_tier,
    snake_case,
)

SRC = Path(__file__).resolve().parents[2] / "src"
DIM = 384
T0 = dt.datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
MIGRATED = [t.name for t in schema.metadata.sorted_tables if t.name not in SKIPPED_TABLES]


def vec(seed: int, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def fill(store: ms.Store, *, messages: int = 30) -> None:
    """One row (or more) in every table of the schema, skipped ones included."""
    with Session(store.engine) as s, s.begin():
        user = schema.User(email="ada@example.org", name="Ada", email_verified=True, created_at=T0)
        s.add(user)
        s.flush()
        s.add_all(
            [
                schema.Account(user_id=user.id, provider_id="github", account_id="ada", access_token="gho_x"),
                schema.Session(user_id=user.id, token="tok", expires_at=T0),
                schema.Verification(identifier="ada@example.org", value="123456", expires_at=T0),
                schema.Job(kind="summarize", payload={"user": "u1"}),
                schema.ProviderCredential(
                    user_id=user.id, provider="openai", encrypted_secret=b"\x00\xffsealed"
                ),
            ]
        )
        team = schema.Team(name="Core", slug="core", owner_id=user.id)
        s.add(team)
        s.flush()
        s.add(schema.TeamMember(team_id=team.id, user_id=user.id, role="owner"))
        project = schema.Project(name="Brain", team_id=team.id, metadata_={"k": [1, 2]})
        s.add(project)
        s.flush()
        mission = schema.Mission(project_id=project.id, created_by=user.id, title="Ship", milestones=["a"])
        s.add(mission)
        s.flush()
        first = schema.Task(mission_id=mission.id, created_by=user.id, title="one", tags=["x"], due_at=T0)
        second = schema.Task(mission_id=mission.id, created_by=user.id, title="two", status="blocked")
        s.add_all([first, second])
        s.flush()
        s.add(schema.TaskDependency(task_id=second.id, depends_on_id=first.id))
        agent = schema.Agent(name="helper", owner_id=user.id, allowed_tools=["search"], config={"t": 0.2})
        s.add(agent)
        s.flush()
        conversation = schema.Conversation(
            user_id=user.id, agent_id=agent.id, project_id=project.id, title="c"
        )
        s.add(conversation)
        s.flush()
        s.add_all(
            schema.Message(
                conversation_id=conversation.id,
                seq=i,
                role="user" if i % 2 else "assistant",
                content=f"message {i} \t with tabs\nnewlines \\ and ünïcödé",
                tool_calls=[{"name": "f", "args": {"i": i}}] if i % 5 == 0 else None,
                metadata_={"i": i},
            )
            for i in range(messages)
        )
        s.add_all(
            [
                schema.Preference(user_id="u1", key="theme", value="dark", mutable=False),
                schema.Preference(user_id="u1", key="limits", value={"max": 3, "on": True}),
                schema.Insight(user_id="u1", text="likes tea", embedding=vec(1)),
                schema.Insight(user_id="u1", text="no embedding yet", embedding=None),
                schema.AgentLog(session_id="s1", user_id="u1", content="ran", tier="warm", summarized_at=T0),
                schema.Skill(user_id="u1", name="sql", config={"dialect": "pg"}, enabled=False),
                schema.SummarizationJob(user_id="u1", status="done", logs_processed=3),
            ]
        )


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return tuple(float(x) for x in value.tolist())
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def digests(store: ms.Store, tables: list[str] = MIGRATED) -> dict[str, dict[str, str]]:
    """Per table, per key: a content hash of the row as the models read it back."""
    out: dict[str, dict[str, str]] = {}
    with store.engine.connect() as conn:
        for name in tables:
            table = schema.metadata.tables[name]
            key = next(iter(table.primary_key.columns)).name
            rows = {}
            for row in conn.execute(sa.select(table)).mappings():
                plain = {column: _plain(value) for column, value in row.items()}
                if name == "store_meta":
                    plain.pop("updated_at")
                # The source's keyword-index key stays behind: the target keys its own.
                plain.pop("search_key", None)
                text = json.dumps(plain, sort_keys=True, default=repr)
                rows[str(row[key])] = hashlib.sha256(text.encode()).hexdigest()
            out[name] = rows
    return out


def source_digests(url: str) -> dict[str, dict[str, str]]:
    with ms.open_store(url) as store:
        found = digests(store)
    # The target records its own embedding storage and dimension.
    found["store_meta"] = {
        k: v for k, v in found["store_meta"].items() if k not in ("embedding_storage", "embedding_dim")
    }
    return found


def target_digests(url_or_store: str | ms.Store) -> dict[str, dict[str, str]]:
    if isinstance(url_or_store, ms.Store):
        found = digests(url_or_store)
    else:
        with ms.open_store(url_or_store) as store:
            found = digests(store)
    found["store_meta"] = {
        k: v for k, v in found["store_meta"].items() if k not in ("embedding_storage", "embedding_dim")
    }
    return found


def run(source: str | ms.Store, target: str | ms.Store, **kwargs: Any) -> MigrationReport:
    with SqlAlchemySource(source) as src, PostgresTarget(target) as tgt:
        return migrate_tier(src, tgt, **kwargs)


@pytest.fixture
def sqlite_source(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/local.db"
    with ms.open_store(url) as store:
        ms.upgrade(store)
        fill(store)
    return url


def table_dump(url: str) -> str:
    """A hash of every row of every table in the target, for byte-identical comparisons."""
    digest = hashlib.sha256()
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
            )
        ]
        for table in tables:
            for row in conn.execute(f'SELECT t::text FROM "{table}" t ORDER BY 1'):
                digest.update(f"{table}:{row[0]}\n".encode())
    return digest.hexdigest()


def count_rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # type: ignore[index]


# --- the three moves -----------------------------------------------------------------------------


@pytest.fixture
def defer_small_tables(monkeypatch):
    """Drop and rebuild indexes even for the few rows these tests load (normally from 1,000 rows)."""
    monkeypatch.setattr("mosaic_storage.migrate._run._DEFER_INDEXES_FROM", 1)


@pytest.mark.usefixtures("defer_small_tables")
def test_sqlite_to_pgvector_moves_every_durable_row(sqlite_source, pgvector_url):
    report = run(sqlite_source, pgvector_url, init_target=True)

    assert report.ok and not report.dry_run
    assert report.schema == f"created at {ms.head()}"
    assert {s.table: s.reason for s in report.skipped if s.table in SKIPPED_TABLES} == SKIPPED_TABLES
    assert {s.table: s.rows for s in report.skipped if s.table in SKIPPED_TABLES} == {
        "sessions": 1,
        "verifications": 1,
        "jobs": 1,
    }
    by_table = {t.table: t for t in report.tables}
    assert by_table["messages"].written == by_table["messages"].source_rows == 30
    assert by_table["accounts"].written == 1 and by_table["provider_credentials"].written == 1
    # Foreign-key order: parents before children.
    order = [t.table for t in report.tables]
    assert order.index("users") < order.index("conversations") < order.index("messages")
    assert order.index("tasks") < order.index("task_dependencies")
    assert target_digests(pgvector_url) == source_digests(sqlite_source)
    for skipped in SKIPPED_TABLES:
        assert count_rows(pgvector_url, skipped) == 0
    with psycopg.connect(pgvector_url) as conn:
        kind = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'insights'::regclass AND attname = 'embedding'"
        ).fetchone()
        facts = dict(conn.execute("SELECT key, value FROM store_meta").fetchall())
    assert kind == ("vector(384)",)
    assert facts == {"embedding_storage": "vector", "embedding_dim": "384"}
    # Plain indexes were dropped for the bulk load and built again after it.
    assert set(by_table["insights"].indexes_rebuilt) == {
        "ix_insights_embedding_hnsw",
        "ix_insights_user_id_created_at",
        "ix_insights_user_id_text_hash",
        "ix_insights_search_vector",
    }
    with ms.open_store(pgvector_url) as store:
        assert ms.schema_diff(store) == []


def test_an_open_sqlite_store_can_be_the_source(sqlite_source, pgvector_url):
    with ms.open_store(sqlite_source) as store:
        report = run(store, pgvector_url, init_target=True)
    assert report.ok and report.source == sqlite_source
    assert target_digests(pgvector_url) == source_digests(sqlite_source)


def test_sqlite_to_postgres_without_pgvector_keeps_embeddings_as_bytes(sqlite_source, postgres_store):
    report = run(sqlite_source, postgres_store, init_target=True)

    assert report.ok
    assert not postgres_store.capabilities.vector
    assert target_digests(postgres_store) == source_digests(sqlite_source)
    with postgres_store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT embedding FROM insights WHERE text = 'likes tea'").scalar()
    assert bytes(stored) == vec(1).tobytes()


def test_embedded_postgres_to_pgvector(pgvector_url):
    # Not under tmp_path: other pytest sessions on a shared machine prune old basetemp
    # directories, and an embedded server's data directory must outlive its initdb.
    directory = tempfile.mkdtemp(prefix="mosaic-migrate-")
    try:
        _embedded_to_pgvector(f"embedded://{directory}/pgdata", pgvector_url)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _embedded_to_pgvector(source: str, pgvector_url: str) -> None:
    with ms.open_store(source) as store:
        ms.upgrade(store)
        fill(store, messages=12)
        expected = digests(store)
        with SqlAlchemySource(store) as src, PostgresTarget(pgvector_url) as target:
            report = migrate_tier(src, target, init_target=True)
    assert report.ok
    assert report.tables[0].source_rows >= 0
    expected["store_meta"] = {}
    assert target_digests(pgvector_url) == expected


# --- idempotency, conflicts, resumption ------------------------------------------------------------


def test_rerun_writes_nothing_and_reports_changed_rows_as_conflicts(sqlite_source, pgvector_url):
    first = run(sqlite_source, pgvector_url, init_target=True)
    assert first.ok
    with psycopg.connect(pgvector_url) as conn:
        changed = conn.execute(
            "UPDATE messages SET content = 'edited on the target' WHERE seq = 3 RETURNING id"
        ).fetchone()[0]  # type: ignore[index]

    again = run(sqlite_source, pgvector_url)

    by_table = {t.table: t for t in again.tables}
    assert again.rows_written == 0
    assert by_table["messages"].mode == "staged"
    assert by_table["messages"].conflicts == 1 and by_table["messages"].conflict_keys == (changed,)
    assert by_table["messages"].existing == 29
    assert again.conflicts == 1 and not again.ok
    with psycopg.connect(pgvector_url) as conn:
        content = conn.execute("SELECT content FROM messages WHERE id = %s", (changed,)).fetchone()
    assert content == ("edited on the target",)


def test_rows_already_on_the_target_are_kept_and_the_rest_copied(sqlite_source, pgvector_url):
    partial = run(sqlite_source, pgvector_url, init_target=True, tables=["users", "preferences"])
    assert [t.table for t in partial.tables] == ["preferences", "users"]

    rest = run(sqlite_source, pgvector_url)

    by_table = {t.table: t for t in rest.tables}
    assert by_table["users"].mode == "staged" and by_table["users"].existing == 1
    assert by_table["users"].written == 0
    assert by_table["messages"].mode == "copy" and by_table["messages"].written == 30
    assert rest.ok
    assert target_digests(pgvector_url) == source_digests(sqlite_source)


KILLER = """
import sys
import tempfile
from mosaic_storage.migrate import PostgresTarget, SqlAlchemySource, migrate_tier

def progress(table, done, total):
    print(table, done, total, flush=True)

with SqlAlchemySource(sys.argv[1]) as source, PostgresTarget(sys.argv[2]) as target:
    migrate_tier(source, target, init_target=True, batch_size=int(sys.argv[3]), progress=progress)
print("finished", flush=True)
"""


def wait_for_no_lock(url: str, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory'").fetchone():
            assert time.monotonic() < deadline, "the killed run's lock was never released"
            time.sleep(0.02)


def test_killed_mid_table_then_rerun_gives_the_source_row_by_row(tmp_path, pgvector_url):
    source = f"sqlite:///{tmp_path}/big.db"
    with ms.open_store(source) as store:
        ms.upgrade(store)
        fill(store, messages=20_000)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLER, source, pgvector_url, "500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            table, done, _total = line.split()
            if table == "messages" and int(done) >= 5_000:
                proc.send_signal(signal.SIGKILL)
                break
        else:
            pytest.fail(f"the run ended before it was killed: {proc.stderr.read() if proc.stderr else ''}")
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    copied = count_rows(pgvector_url, "messages")
    assert 5_000 <= copied < 20_000 and copied % 500 == 0, "only whole batches are committed"
    wait_for_no_lock(pgvector_url)

    report = run(source, pgvector_url, batch_size=3_000)

    messages = next(t for t in report.tables if t.table == "messages")
    assert messages.mode == "staged"
    assert messages.written == 20_000 - copied and messages.existing == copied
    assert report.ok
    assert target_digests(pgvector_url) == source_digests(source)


def test_two_runs_at_once_exactly_one_proceeds(sqlite_source, pgvector_url):
    ms_store = ms.open_store(pgvector_url)
    ms.upgrade(ms_store)
    ms_store.close()
    inside = threading.Event()
    release = threading.Event()
    outcome: dict[str, Any] = {}

    def hold(table: str, done: int, total: int) -> None:
        inside.set()
        assert release.wait(30)

    def first() -> None:
        try:
            outcome["first"] = run(sqlite_source, pgvector_url, progress=hold)
        except BaseException as err:  # pragma: no cover - reported by the assert below
            outcome["first"] = err

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(30)
        started = time.monotonic()
        with pytest.raises(ms.MigrationError, match="another migration holds the lock"):
            run(sqlite_source, pgvector_url)
        assert time.monotonic() - started < 10
    finally:
        release.set()
        thread.join(60)
    assert isinstance(outcome["first"], MigrationReport)
    assert outcome["first"].ok
    # Released on the way out: a third run gets the lock and finds everything there.
    assert run(sqlite_source, pgvector_url).rows_written == 0


def test_the_lock_is_released_when_a_run_fails(sqlite_source, pgvector_url):
    with psycopg.connect(pgvector_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id text)")  # a foreign table in the way: upgrade fails
    with pytest.raises(Exception):
        run(sqlite_source, pgvector_url, init_target=True)
    wait_for_no_lock(pgvector_url, deadline_s=5)


# --- dry run ---------------------------------------------------------------------------------------


def test_dry_run_leaves_the_target_byte_identical(sqlite_source, pgvector_url):
    run(sqlite_source, pgvector_url, init_target=True, tables=["users", "insights"])
    before = table_dump(pgvector_url)

    plan = run(sqlite_source, pgvector_url, dry_run=True, batch_size=7)

    assert table_dump(pgvector_url) == before
    assert plan.dry_run and plan.rows_written == 0 and plan.schema == "at head"
    by_table = {t.table: t for t in plan.tables}
    assert by_table["messages"].batches == 5 and by_table["messages"].mode == "copy"
    assert by_table["users"].mode == "staged" and by_table["users"].target_rows_before == 1
    assert {s.table for s in plan.skipped} >= set(SKIPPED_TABLES)


def test_dry_run_with_init_target_creates_nothing(sqlite_source, pgvector_url):
    before = table_dump(pgvector_url)

    plan = run(sqlite_source, pgvector_url, dry_run=True, init_target=True)

    assert plan.schema == f"would be created at {ms.head()}"
    assert all(t.target_rows_before is None for t in plan.tables)
    assert table_dump(pgvector_url) == before
    with ms.open_store(pgvector_url) as store:
        assert ms.current(store) is None


def test_an_unreachable_target_fails_with_the_doctors_remediation(sqlite_source, closed_port_url):
    with pytest.raises(ms.TierDetectionError) as caught:
        run(sqlite_source, closed_port_url)
    assert caught.value.service == "postgres"
    assert "PostgreSQL" in (caught.value.remediation or ""), "the remediation open_store (the doctor) gives"


def test_a_vector_target_without_pgvector_is_refused_before_any_write(sqlite_source, pgvector_url):
    with ms.open_store(pgvector_url) as store:
        ms.upgrade(store)
    with psycopg.connect(pgvector_url, autocommit=True) as conn:
        conn.execute("DROP EXTENSION vector CASCADE")
    before = table_dump(pgvector_url)

    with pytest.raises(ms.TierDetectionError, match="pgvector extension is not installed") as caught:
        run(sqlite_source, pgvector_url)

    assert caught.value.service == "pgvector" and "CREATE EXTENSION vector" in str(caught.value)
    assert table_dump(pgvector_url) == before


def test_target_without_schema_needs_init_target(sqlite_source, pgvector_url):
    with pytest.raises(ms.MigrationError, match="--init-target"):
        run(sqlite_source, pgvector_url)


# --- source forms ----------------------------------------------------------------------------------


def camel_source(path: Path, embeddings: list[Any]) -> str:
    """A SQLite store written by another client: camelCase columns, no schema revision."""
    db = sqlite3.connect(path)
    with db:
        db.execute(
            'CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, name TEXT, "emailVerified" INTEGER, '
            'image TEXT, "createdAt" TEXT, "updatedAt" TEXT)'
        )
        db.execute(
            'CREATE TABLE insights (id TEXT PRIMARY KEY, "userId" TEXT, text TEXT, category TEXT, '
            'source TEXT, metadata TEXT, embedding, "createdAt" TEXT, "updatedAt" TEXT)'
        )
        db.execute(
            "INSERT INTO users VALUES ('u-1', 'grace@example.org', 'Grace', 1, NULL, "
            "'2026-01-02T03:04:05.678901Z', '2026-01-02 03:04:05')"
        )
        db.executemany(
            "INSERT INTO insights VALUES (?, 'u-1', ?, NULL, 'agent', '{\"k\": 1}', ?, "
            "'2026-01-02 03:04:05', '2026-01-02 03:04:05.5')",
            [(f"i-{n}", f"insight {n}", value) for n, value in enumerate(embeddings)],
        )
    db.close()
    return f"sqlite:///{path}"


def test_camel_case_columns_arrive_snake_case(tmp_path, pgvector_url):
    source = camel_source(tmp_path / "camel.db", [vec(5).tobytes()])

    report = run(source, pgvector_url, init_target=True)

    assert report.ok and [t.table for t in report.tables] == ["insights", "users"]
    with ms.open_store(pgvector_url) as store, Session(store.engine) as s:
        user = s.get(schema.User, "u-1")
        insight = s.get(schema.Insight, "i-0")
    assert user is not None and user.email_verified is True
    assert user.created_at == dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    assert insight is not None and insight.user_id == "u-1" and insight.metadata_ == {"k": 1}
    np.testing.assert_array_equal(insight.embedding, vec(5))


@pytest.mark.parametrize("vector_target", [True, False], ids=["pgvector", "bytes"])
def test_embeddings_in_every_stored_form(tmp_path, pgvector_url, postgres_store, vector_target):
    forms = [
        vec(1).tobytes(),  # float32 bytes (the local tier)
        json.dumps(vec(2).tolist()),  # JSON text
        "[" + ",".join(repr(x) for x in vec(3).tolist()) + "]",  # pgvector text
        None,
    ]
    source = camel_source(tmp_path / "forms.db", forms)
    target: str | ms.Store = pgvector_url if vector_target else postgres_store

    assert run(source, target, init_target=True).ok

    engine_store = ms.open_store(pgvector_url) if vector_target else postgres_store
    try:
        with Session(engine_store.engine) as s:
            got = {i.id: i.embedding for i in s.scalars(sa.select(schema.Insight))}
    finally:
        if vector_target:
            engine_store.close()
    np.testing.assert_array_equal(got["i-0"], vec(1))
    np.testing.assert_array_equal(got["i-1"], vec(2))
    np.testing.assert_array_equal(got["i-2"], vec(3))
    assert got["i-3"] is None


def test_array_embeddings_from_a_postgres_source(pgvector_server, pgvector_url):
    source = pgvector_server.create_database("arrays")
    try:
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE insights (id text PRIMARY KEY, user_id text, text text, category text, "
                "source text, metadata jsonb, embedding real[], created_at timestamptz, "
                "updated_at timestamptz)"
            )
            conn.execute(
                "INSERT INTO insights VALUES ('a', 'u', 't', NULL, 'agent', '{}', %s, now(), now())",
                (vec(9).tolist(),),
            )
        assert run(source, pgvector_url, init_target=True).ok
    finally:
        pgvector_server.drop_database(source)
    with ms.open_store(pgvector_url) as store, Session(store.engine) as s:
        np.testing.assert_array_equal(s.get(schema.Insight, "a").embedding, vec(9))


def test_search_index_tables_are_skipped(sqlite_source, pgvector_url):
    path = sa.make_url(sqlite_source).database
    with sqlite3.connect(path) as db:
        # Schema 0002 already keeps insights_fts; this makes sure it has content to skip.
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS insights_fts USING fts5(text, content='insights')")
        db.execute("INSERT INTO insights_fts(insights_fts) VALUES ('rebuild')")

    report = run(sqlite_source, pgvector_url, init_target=True)

    skipped = {s.table: s.reason for s in report.skipped}
    for name in (
        "insights_fts",
        "insights_fts_data",
        "insights_fts_idx",
        "insights_fts_docsize",
        "insights_fts_config",
    ):
        assert "search index" in skipped[name]
    assert report.ok


def test_two_local_stores_merge_into_one_target_without_losing_insights(tmp_path, pgvector_url):
    from mosaic_memory import open_memory

    sources = []
    for laptop in ("a", "b"):
        url = f"sqlite:///{tmp_path}/{laptop}.db"
        with ms.open_store(url) as store:
            ms.upgrade(store)
            with open_memory(store) as memory:
                memory.insights.add_many([f"{laptop} likes tea", f"{laptop} hikes alps"], user_id=laptop)
            with store.engine.connect() as conn:
                keys = conn.exec_driver_sql("SELECT search_key FROM insights ORDER BY 1").scalars().all()
            assert keys == [1, 2]  # both laptops hold the same SQLite keyword-index keys
        sources.append(url)
    assert run(sources[0], pgvector_url, init_target=True).ok
    second = run(sources[1], pgvector_url)
    insights = next(t for t in second.tables if t.table == "insights")
    assert insights.written == 2 and insights.conflicts == 0 and not insights.short
    # (store_meta's "embedder" row differs in updated_at only: reported as a conflict, kept.)
    with ms.open_store(pgvector_url) as store, open_memory(store) as memory:
        for laptop in ("a", "b"):
            assert memory.insights.count(user_id=laptop) == 2
            hits = memory.insights.search("alps", user_id=laptop, mode="keyword")
            assert [h.text for h in hits] == [f"{laptop} hikes alps"]
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(search_key) FROM insights").scalar() == 0


# --- failures: clear, early, nothing half-written ---------------------------------------------------


def test_dimension_mismatch_fails_before_any_write(tmp_path, pgvector_url):
    source = camel_source(tmp_path / "dims.db", [vec(1).tobytes(), vec(2, dim=3).tobytes()])
    with ms.open_store(pgvector_url) as store:
        ms.upgrade(store)
    before = table_dump(pgvector_url)

    with pytest.raises(ms.MigrationError) as caught:
        run(source, pgvector_url)

    message = str(caught.value)
    assert "insights" in message and "i-1" in message and "3 dimensions" in message and "384" in message
    assert table_dump(pgvector_url) == before


def test_a_value_the_target_cannot_take_names_table_row_and_column(tmp_path, pgvector_url):
    source = camel_source(tmp_path / "bad.db", [vec(1).tobytes(), vec(2).tobytes()])
    with sqlite3.connect(tmp_path / "bad.db") as db:
        db.execute("UPDATE insights SET \"createdAt\" = 'the day before yesterday' WHERE id = 'i-1'")

    with pytest.raises(ms.MigrationError, match=r"table insights, row i-1: column created_at"):
        run(source, pgvector_url, init_target=True)

    assert count_rows(pgvector_url, "insights") == 0, "the batch holding the row was not written"


def test_corrupt_foreign_and_missing_sources_fail_clearly(tmp_path, pgvector_url):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ms.MigrationError, match=r"corrupt\.db"):
        run(f"sqlite:///{corrupt}", pgvector_url, init_target=True)

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE recipes (id integer primary key, name text)")
    with pytest.raises(ms.MigrationError, match="not a Mosaic store"):
        run(f"sqlite:///{foreign}", pgvector_url, init_target=True)

    absent = tmp_path / "absent.db"
    with pytest.raises(ms.MigrationError, match="does not exist"):
        run(f"sqlite:///{absent}", pgvector_url, init_target=True)
    assert not absent.exists()
    with ms.open_store(pgvector_url) as store:
        assert ms.current(store) is None, "nothing was written to the target"


def test_source_at_head_missing_a_table_names_it(sqlite_source, pgvector_url):
    path = sa.make_url(sqlite_source).database
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE task_dependencies")

    with pytest.raises(ms.MigrationError, match="task_dependencies"):
        run(sqlite_source, pgvector_url, init_target=True)


def test_unknown_source_columns_are_not_silently_dropped(tmp_path, pgvector_url):
    source = camel_source(tmp_path / "extra.db", [None])
    with sqlite3.connect(tmp_path / "extra.db") as db:
        db.execute('ALTER TABLE users ADD COLUMN "favouriteColour" TEXT')

    with pytest.raises(ms.MigrationError, match="favourite_colour"):
        run(source, pgvector_url, init_target=True)


@pytest.mark.parametrize(
    ("bad_row", "expected"),
    [
        (("m-bad", "no-such-conversation", 99, "user"), r"Key \(conversation_id\)=\(no-such-conversation\)"),
        (("m-bad", None, 99, "narrator"), r"row id='m-bad'.*ck_messages_role"),
    ],
    ids=["foreign-key", "check"],
)
def test_a_row_violating_a_target_constraint_names_table_and_key(
    sqlite_source, pgvector_url, bad_row, expected
):
    path = sa.make_url(sqlite_source).database
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA ignore_check_constraints = ON")  # a row another client let through
        conversation = db.execute("SELECT id FROM conversations").fetchone()[0]
        row_id, conv, seq, role = bad_row
        db.execute(
            "INSERT INTO messages (id, conversation_id, seq, role, content, metadata, created_at) "
            "VALUES (?, ?, ?, ?, 'x', '{}', '2026-01-01 00:00:00')",
            (row_id, conv or conversation, seq, role),
        )

    with pytest.raises(ms.MigrationError, match=expected) as caught:
        run(sqlite_source, pgvector_url, init_target=True, batch_size=10)

    assert "messages" in str(caught.value)
    assert count_rows(pgvector_url, "messages") == 30, "the three whole batches before it, nothing of the 4th"


@pytest.mark.usefixtures("defer_small_tables")
def test_indexes_dropped_for_a_failed_load_are_rebuilt_by_the_next_run(sqlite_source, pgvector_url):
    path = sa.make_url(sqlite_source).database
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA ignore_check_constraints = ON")
        db.executemany(
            "INSERT INTO agent_logs (id, session_id, user_id, level, content, metadata, tier, created_at) "
            "VALUES (?, 's', 'u', 'info', 'x', '{}', ?, '2026-01-01 00:00:00')",
            [(f"log-{i:02d}", "lukewarm" if i == 7 else "hot") for i in range(10)],
        )
    with pytest.raises(ms.MigrationError, match=r"agent_logs.*log-07.*ck_agent_logs_tier"):
        run(sqlite_source, pgvector_url, init_target=True, batch_size=4)
    assert count_rows(pgvector_url, "agent_logs") == 8, "two whole batches of 4, nothing of the third"
    with ms.open_store(pgvector_url) as store:
        missing = {entry[1].name for entry in ms.schema_diff(store) if entry[0] == "add_index"}
    assert missing == {
        "ix_agent_logs_session_id_created_at_id",
        "ix_agent_logs_tier_created_at",
        "ix_agent_logs_unsummarized",
        "ix_agent_logs_user_id_created_at_id",
    }
    with sqlite3.connect(path) as db:
        db.execute("UPDATE agent_logs SET tier = 'cold' WHERE id = 'log-07'")

    report = run(sqlite_source, pgvector_url, batch_size=4)

    logs = next(t for t in report.tables if t.table == "agent_logs")
    assert logs.mode == "staged" and logs.written == 3 and len(logs.indexes_rebuilt) == 4
    assert report.ok
    with ms.open_store(pgvector_url) as store:
        assert ms.schema_diff(store) == []
        with store.engine.connect() as conn:
            partial = conn.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_agent_logs_unsummarized'")
            ).scalar_one()
    assert partial.endswith("WHERE (summarized_at IS NULL)"), "rebuilt as the partial index it was"
    assert target_digests(pgvector_url) == source_digests(sqlite_source)


# --- protocol, names, property ----------------------------------------------------------------------


def test_source_and_target_implement_the_protocols(sqlite_source, pgvector_url):
    with SqlAlchemySource(sqlite_source) as source, PostgresTarget(pgvector_url) as target:
        assert isinstance(source, MigrationSource)
        assert isinstance(target, MigrationTarget)
        batches = list(source.dicts("preferences", batch_size=1))
    assert [len(batch) for batch in batches] == [1, 1]
    assert {row["key"] for batch in batches for row in batch} == {"theme", "limits"}
    assert set(batches[0][0]) >= {"id", "user_id", "key", "value", "mutable"}


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("userId", "user_id"),
        ("emailVerified", "email_verified"),
        ("accessTokenExpiresAt", "access_token_expires_at"),
        ("HTTPServer", "http_server"),
        ("user_id", "user_id"),
        ("id", "id"),
    ],
)
def test_snake_case(name, snake):
    assert snake_case(name) == snake
    assert snake_case(snake_case(name)) == snake


texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=6,
)
finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=6, deadline=None)
@given(
    preferences=st.dictionaries(st.text("abcxyz", min_size=1, max_size=8), json_values, max_size=4),
    insights=st.lists(st.tuples(texts, st.none() | st.lists(finite, min_size=4, max_size=4)), max_size=4),
)
def test_property_generated_rows_migrate_to_an_equal_copy(
    tmp_path_factory, pgvector_server, preferences, insights
):
    directory = tmp_path_factory.mktemp("prop")
    source = f"sqlite:///{directory}/p.db"
    config = ms.MosaicConfig(
        storage=ms.StorageConfig(url=source),
        memory=ms.MemoryConfig(embedder=ms.EmbedderConfig(type="hashing", dim=4)),
    )
    with ms.open_store(config) as store:
        ms.upgrade(store)
        with Session(store.engine) as s, s.begin():
            s.add_all(schema.Preference(user_id="u", key=k, value=v) for k, v in preferences.items())
            s.add_all(schema.Insight(user_id="u", text=t, embedding=e) for t, e in insights)
    target = pgvector_server.create_database("prop")
    try:
        report = run(source, target, init_target=True)
        assert report.ok
        assert target_digests(target) == source_digests(source)
    finally:
        pgvector_server.drop_database(target)


def test_a_runs_bookkeeping_rows_in_the_source_are_never_copied_or_executed(sqlite_source, pgvector_url):
    path = sa.make_url(sqlite_source).database
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO store_meta (key, value, updated_at) VALUES "
            "('migrate_tier.deferred_index.messages:evil', 'DROP TABLE messages CASCADE', CURRENT_TIMESTAMP)"
        )
    report = run(sqlite_source, pgvector_url, init_target=True)
    assert report.ok
    with psycopg.connect(pgvector_url) as conn:
        assert conn.execute("SELECT to_regclass('messages') IS NOT NULL").fetchone() == (True,)
        keys = {row[0] for row in conn.execute("SELECT key FROM store_meta").fetchall()}
    assert not any(key.startswith("migrate_tier.") for key in keys)


def test_source_tables_that_normalise_to_one_name_are_refused(sqlite_source, pgvector_url):
    path = sa.make_url(sqlite_source).database
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE "agentLogs" (id text primary key)')
        db.execute("INSERT INTO \"agentLogs\" VALUES ('x')")
    with pytest.raises(ms.MigrationError, match="agentLogs"):
        run(sqlite_source, pgvector_url, init_target=True)


def test_a_dry_run_never_creates_an_embedded_target(sqlite_source, tmp_path):
    target = tmp_path / "not-there"
    with pytest.raises(ms.MigrationError, match="dry run creates nothing"):
        PostgresTarget(f"embedded://{target}", create=False)
    assert not target.exists()


def test_a_clash_on_a_unique_column_other_than_the_key_names_both_rows(sqlite_source, pgvector_url):
    """The target already has another user with the source user's email: refused, clearly, every time."""
    with ms.open_store(pgvector_url) as store:
        ms.upgrade(store)
        with Session(store.engine) as s, s.begin():
            s.add(schema.User(id="target-ada", email="ada@example.org", name="Other Ada", created_at=T0))
    with ms.open_store(sqlite_source) as store, store.engine.connect() as conn:
        source_ada = conn.execute(sa.text("SELECT id FROM users")).scalar_one()
    for _ in range(2):  # the same clear refusal on a rerun, until a person decides
        with pytest.raises(ms.MigrationError) as caught:
            run(sqlite_source, pgvector_url)
        message = str(caught.value)
        assert f"source row id={source_ada!r} and target row id='target-ada' have the same email" in message
        assert "decide which row is right" in message
        assert count_rows(pgvector_url, "users") == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_an_embedding_with_nan_or_inf_names_table_row_and_column(tmp_path, pgvector_url, bad):
    broken = vec(2)
    broken[5] = bad
    source = camel_source(tmp_path / "nan.db", [vec(1).tobytes(), broken.tobytes()])

    with pytest.raises(ms.MigrationError, match=r"table insights, row i-1: column embedding holds NaN"):
        run(source, pgvector_url, init_target=True)

    assert count_rows(pgvector_url, "insights") == 0, "the batch holding the row was not written"


def test_a_run_whose_lock_connection_dies_stops_before_the_next_commit(sqlite_source, pgvector_url):
    terminated = []

    def kill_the_lock_holder(table, done, total):
        if terminated:
            return
        with psycopg.connect(pgvector_url, autocommit=True) as admin:
            pids = [r[0] for r in admin.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory'")]
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            terminated.extend(pids)

    with pytest.raises(ms.MigrationError, match="lost its lock"):
        run(sqlite_source, pgvector_url, init_target=True, batch_size=5, progress=kill_the_lock_holder)
    assert terminated, "the lock holder was found and ended"
    again = run(sqlite_source, pgvector_url)
    assert again.ok
    assert target_digests(pgvector_url) == source_digests(sqlite_source)
