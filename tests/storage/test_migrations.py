"""Migrations: the same alembic versions build the models' schema on every backend, and undo it."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import mosaic_storage as ms
from mosaic_storage.schema import Insight, Preference, Project, User, metadata

from ._queues import table_queue


def test_empty_database_has_no_revision(store):
    assert ms.current(store) is None


def test_upgrade_builds_exactly_the_models(migrated_store):
    assert ms.current(migrated_store) == ms.head()
    assert ms.schema_diff(migrated_store) == []
    tables = set(sa.inspect(migrated_store.engine).get_table_names())
    assert set(metadata.tables) <= tables


def test_schema_diff_sees_a_drifted_database(migrated_store):
    with migrated_store.engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_insights_user_id_created_at"))
        conn.execute(sa.text("CREATE TABLE stray_table (id integer primary key)"))
    diff = ms.schema_diff(migrated_store)
    kinds = {entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in diff}
    assert {"add_index", "remove_table"} <= kinds


def test_upgrade_is_idempotent(migrated_store):
    assert ms.upgrade(migrated_store) == ms.head()
    assert ms.schema_diff(migrated_store) == []


def test_downgrade_to_base_removes_every_table_and_upgrade_rebuilds(migrated_store):
    assert ms.downgrade(migrated_store, "base") is None
    left = set(sa.inspect(migrated_store.engine).get_table_names()) & set(metadata.tables)
    assert left == set()
    ms.upgrade(migrated_store)
    assert ms.schema_diff(migrated_store) == []


def test_embedding_column_is_vector_with_hnsw_only_on_pgvector(migrated_store):
    if migrated_store.dialect == "sqlite":
        columns = {c["name"]: c for c in sa.inspect(migrated_store.engine).get_columns("insights")}
        assert isinstance(columns["embedding"]["type"], sa.LargeBinary)
        return
    with migrated_store.engine.connect() as conn:
        column_type = conn.execute(
            sa.text(
                "select format_type(atttypid, atttypmod) from pg_attribute "
                "where attrelid = 'insights'::regclass and attname = 'embedding'"
            )
        ).scalar()
        index = conn.execute(
            sa.text("select indexdef from pg_indexes where indexname = 'ix_insights_embedding_hnsw'")
        ).scalar()
    if migrated_store.capabilities.vector:
        assert column_type == "vector(384)"
        assert index is not None and "hnsw" in index and "vector_cosine_ops" in index
    else:
        assert column_type == "bytea"
        assert index is None


def test_embeddings_round_trip_as_float32(migrated_store):
    vector = np.linspace(-1, 1, 384, dtype=np.float32)
    with Session(migrated_store.engine) as session, session.begin():
        session.add(Insight(user_id="u1", text="likes tea", embedding=vector.tolist()))
    with Session(migrated_store.engine) as session:
        stored = session.scalars(sa.select(Insight.embedding)).one()
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, vector)


def test_preferences_are_unique_per_user_and_key(migrated_store):
    with Session(migrated_store.engine) as session, session.begin():
        session.add(Preference(user_id="u1", key="theme", value="dark"))
        session.add(Preference(user_id="u2", key="theme", value="light"))
    with pytest.raises(sa.exc.IntegrityError), Session(migrated_store.engine) as session, session.begin():
        session.add(Preference(user_id="u1", key="theme", value={"again": True}))


def test_check_constraints_reject_unknown_values(migrated_store):
    with pytest.raises(sa.exc.IntegrityError), Session(migrated_store.engine) as session, session.begin():
        session.add(Preference(user_id="u1", key="k", value=1, source="robot"))


def test_deleting_a_user_cascades_to_their_projects(migrated_store):
    with Session(migrated_store.engine) as session, session.begin():
        user = User(name="Ada")
        session.add(user)
        session.flush()
        session.add(Project(name="p", owner_id=user.id))
        user_id = user.id
    with migrated_store.engine.begin() as conn:
        conn.execute(sa.delete(User).where(User.id == user_id))
        assert conn.execute(sa.select(sa.func.count()).select_from(Project)).scalar() == 0


def test_a_project_belongs_to_a_user_or_a_team_not_both(migrated_store):
    with pytest.raises(sa.exc.IntegrityError), Session(migrated_store.engine) as session, session.begin():
        session.add(Project(name="orphan"))


def test_store_records_embedding_storage_and_dimension(migrated_store):
    with migrated_store.engine.connect() as conn:
        facts = dict(conn.execute(sa.text("select key, value from store_meta")).all())
    expected = "vector" if migrated_store.capabilities.vector else "bytes"
    assert facts == {"embedding_storage": expected, "embedding_dim": "384"}
    reopened_url = migrated_store.engine.url.render_as_string(hide_password=False)
    if migrated_store.dialect == "postgresql" and not migrated_store.capabilities.vector:
        # Reopened as a bare URL, the recorded facts win over what the server could offer.
        with ms.open_store(reopened_url.replace("+psycopg", "")) as again:
            assert not again.capabilities.vector


def test_sqlite_migrations_never_cascade_deletes(sqlite_store):
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from mosaic_storage._migrations import _migration_connection

    ms.upgrade(sqlite_store)
    with Session(sqlite_store.engine) as session, session.begin():
        user = User(name="Ada")
        session.add(user)
        session.flush()
        session.add(Project(name="p", owner_id=user.id))
    # A batch migration rebuilds a parent table by copy-and-drop, as future revisions will.
    with _migration_connection(sqlite_store) as conn:
        ops = Operations(MigrationContext.configure(conn))
        with ops.batch_alter_table("users", recreate="always") as batch:
            batch.alter_column("name", existing_type=sa.Text(), nullable=True)
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Project)).scalar() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_schema_diff_notices_bytes_where_vectors_belong(pgvector_store):
    ms.upgrade(pgvector_store)
    with pgvector_store.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_insights_embedding_hnsw")
        conn.exec_driver_sql("ALTER TABLE insights ALTER COLUMN embedding TYPE bytea USING NULL")
    assert any("modify_type" in str(entry) for entry in ms.schema_diff(pgvector_store))


def test_0002_backfills_keyword_search_and_text_hashes_and_downgrades(store):
    ms.upgrade(store, "0001")
    with Session(store.engine) as session, session.begin():
        session.execute(
            sa.text(
                "INSERT INTO insights (id, user_id, text, source, metadata, created_at, updated_at) "
                "VALUES ('i1', 'u1', 'enjoys hiking in the alps', 'agent', '{}', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    assert ms.upgrade(store) == ms.head()
    assert ms.schema_diff(store) == []
    if store.dialect == "sqlite":
        match = (
            "SELECT i.id FROM insights_fts f JOIN insights i ON i.search_key = f.rowid "
            "WHERE insights_fts MATCH 'hike'"
        )
    else:
        match = "SELECT id FROM insights WHERE search_vector @@ to_tsquery('english', 'hike')"
    with store.engine.connect() as conn:
        assert conn.execute(sa.text(match)).scalars().all() == ["i1"]
        assert conn.execute(sa.text("SELECT text_hash FROM insights")).scalar() is not None
    assert ms.downgrade(store, "0001") == "0001"
    names = set(sa.inspect(store.engine).get_table_names())
    assert "insight_history" not in names and "insights_fts" not in names
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("insights")}
    assert "text_hash" not in columns and "search_vector" not in columns
    assert ms.upgrade(store) == ms.head()
    with store.engine.connect() as conn:
        assert conn.execute(sa.text(match)).scalars().all() == ["i1"]


def _project_status_revision() -> tuple[str, str]:
    """(revision, down_revision) of the migration adding the project status check, whatever its number."""
    import importlib.util
    from pathlib import Path

    versions = Path(ms.__file__).parent / "_alembic" / "versions"
    (path,) = versions.glob("*_project_status_check.py")
    spec = importlib.util.spec_from_file_location("project_status_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.revision, module.down_revision


def test_the_project_status_check_refuses_unknown_statuses_until_they_are_fixed(store):
    revision, before = _project_status_revision()
    ms.upgrade(store, before)
    insert = sa.text(
        "INSERT INTO users (id, name, email_verified, created_at, updated_at)"
        " VALUES ('u1', 'u', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);"
    )
    project = sa.text(
        "INSERT INTO projects (id, name, status, owner_id, metadata, version, created_at, updated_at)"
        " VALUES (:id, 'p', :status, 'u1', '{}', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    with store.engine.begin() as conn:
        conn.execute(insert)
        conn.execute(project, [{"id": "p1", "status": "legacy"}, {"id": "p2", "status": "active"}])
    with pytest.raises(ms.SchemaError, match="'legacy'") as refused:
        ms.upgrade(store)
    assert "active" in (refused.value.remediation or "")
    assert ms.current(store) == before
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE projects SET status = 'archived' WHERE status = 'legacy'"))
    assert ms.upgrade(store) == ms.head()
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(project, {"id": "p3", "status": "legacy"})
    ms.downgrade(store, before)
    with store.engine.begin() as conn:
        conn.execute(project, {"id": "p3", "status": "legacy"})
    ms.downgrade(store, "base")
    assert revision != before


def test_a_failed_multi_step_upgrade_changes_nothing_and_can_be_run_again(store):
    """0004 refuses unknown project statuses; the steps before it in the same run are undone too."""
    ms.upgrade(store, "0002")
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, name, email_verified, created_at, updated_at) "
                "VALUES ('u1', 'ann', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO projects (id, name, owner_id, status, metadata, version, created_at, "
                "updated_at) VALUES ('p1', 'P', 'u1', 'on_hold', '{}', 1, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    indexes_before = {i["name"] for i in sa.inspect(store.engine).get_indexes("tasks")}
    with pytest.raises(ms.SchemaError, match="on_hold"):
        ms.upgrade(store)
    assert ms.current(store) == "0002"
    assert {i["name"] for i in sa.inspect(store.engine).get_indexes("tasks")} == indexes_before
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE projects SET status = 'paused'"))
    assert ms.upgrade(store) == ms.head()
    assert ms.schema_diff(store) == []


def test_0010_keeps_jobs_and_their_keys_and_indexes_only_jobs_with_a_key(store):
    from mosaic_storage.queue import NewJob

    ms.upgrade(store, "0009")
    with table_queue(store) as queue:
        keyed, plain = queue.enqueue_many([NewJob("k", {"n": 1}, dedupe_key="once"), NewJob("k", {"n": 2})])
    assert ms.upgrade(store) == ms.head()
    assert ms.schema_diff(store) == []
    with table_queue(store) as queue:
        # The key still dedupes across the upgrade; jobs without one never collide.
        assert queue.enqueue("k", {"n": 3}, dedupe_key="once") == keyed
        assert len({queue.enqueue("k", {"n": i}) for i in range(3)} | {plain}) == 4
        assert queue.stats().queued == 5
    (index,) = [i for i in sa.inspect(store.engine).get_indexes("jobs") if i["name"] == "uq_jobs_dedupe_key"]
    assert index["unique"]
    where = index["dialect_options"].get(f"{store.dialect}_where")
    assert where is not None and "dedupe_key IS NOT NULL" in str(where)
    assert ms.downgrade(store, "0009") == "0009"
    inspector = sa.inspect(store.engine)
    unique = {c["name"]: c["column_names"] for c in inspector.get_unique_constraints("jobs")}
    assert unique.get("uq_jobs_dedupe_key") == ["dedupe_key"]  # the full constraint is back
    partial = [
        i
        for i in inspector.get_indexes("jobs")
        if i["name"] == "uq_jobs_dedupe_key" and i["dialect_options"].get(f"{store.dialect}_where")
    ]
    assert partial == []
    with table_queue(store) as queue:
        assert queue.enqueue("k", {"n": 4}, dedupe_key="once") == keyed  # the constraint is back
    assert ms.upgrade(store) == ms.head()


def test_memory_runs_on_the_oldest_schema_it_names_and_not_before(store):
    # Deploy the new SDK, then migrate: memory must work on the revision it names.
    from mosaic_memory import MEMORY_SCHEMA, open_memory

    assert ms.upgrade(store, MEMORY_SCHEMA) == MEMORY_SCHEMA != ms.head()
    with open_memory(store) as memory:
        first = memory.insights.add("Prefers window seats on long flights", user_id="u1")
        memory.insights.add_many(["Allergic to peanuts", "Works in Lisbon"], user_id="u1")
        # The keyword index kept each row once (0008's trigger and the batch writer agree).
        assert [hit.id for hit in memory.insights.search("window seats", user_id="u1", mode="keyword")] == [
            first
        ]
        assert len(memory.insights.search("peanuts Lisbon", user_id="u1", mode="keyword")) == 2
    before = ms.downgrade(store, "-1")
    with pytest.raises(ms.SchemaError, match=f"revision {before}; memory needs {MEMORY_SCHEMA} or later"):
        open_memory(store)
    assert ms.upgrade(store) == ms.head()
    with open_memory(store) as memory:
        assert memory.insights.get(first, user_id="u1").text == "Prefers window seats on long flights"


def test_the_queue_refuses_a_schema_older_than_it_names(store):
    from mosaic_storage.queue import QUEUE_SCHEMA

    assert ms.upgrade(store, QUEUE_SCHEMA) == QUEUE_SCHEMA != ms.head()
    with table_queue(store) as queue:
        # A whole job's life on the oldest schema: enqueue (deduplicated), reserve, ack.
        first = queue.enqueue("k", {"n": 1}, dedupe_key="once")
        assert queue.enqueue("k", {"n": 2}, dedupe_key="once") == first
        (job,) = queue.reserve(["k"], count=5)
        assert (job.id, job.payload) == (first, {"n": 1})
        assert queue.ack(job)
        assert queue.stats().done == 1
    older = ms.downgrade(store, "-1")
    with pytest.raises(
        ms.SchemaError, match=f"revision {older}; the job queue needs {QUEUE_SCHEMA}"
    ) as refused:
        with table_queue(store):
            pass
    assert "mosaic db upgrade" in str(refused.value)


def test_a_schema_from_a_newer_sdk_is_refused_with_the_package_to_upgrade(store):
    from mosaic_memory import open_memory
    from mosaic_storage._migrations import VERSION_TABLE

    ms.upgrade(store)
    table = f'"{store.schema}".{VERSION_TABLE}' if store.schema else VERSION_TABLE
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET version_num = 'f00d'"))

    def open_table_queue(store: ms.Store) -> None:
        with table_queue(store):
            pass

    for opener, who in ((open_memory, "memory"), (open_table_queue, "the job queue")):
        with pytest.raises(ms.SchemaError, match="revision f00d, which this SDK") as refused:
            opener(store)
        assert who in str(refused.value)
        assert "pip install -U mosaic-stack" in str(refused.value)
        assert "mosaic db upgrade" not in str(refused.value)  # migrating down is not the fix


def test_a_queue_opened_from_a_url_closes_its_store_when_the_schema_is_refused(tmp_path, monkeypatch):
    from mosaic_storage.queue import QUEUE_SCHEMA, open_queue

    url = f"sqlite:///{tmp_path}/old.db"
    with ms.open_store(url) as store:
        ms.upgrade(store, QUEUE_SCHEMA)
        older = ms.downgrade(store, "-1")
    closed = []
    real_close = ms.Store.close

    def close(self):
        closed.append(self.url)
        real_close(self)

    monkeypatch.setattr(ms.Store, "close", close)
    with pytest.raises(ms.SchemaError, match=f"revision {older}; the job queue needs"):
        open_queue(url)
    assert closed == [url]  # the store open_queue opened for itself, and only it
