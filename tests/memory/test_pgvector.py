"""pgvector's per-query plan: exact search for small owners, iterative HNSW for large ones; recall holds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from mosaic_memory import NewInsight, open_memory


@pytest.fixture
def vector_memory(pgvector_store):
    import mosaic_storage as ms

    ms.upgrade(pgvector_store)
    # Cosine dedupe on (the hashing embedder alone merges only the same text): its probe is tested here.
    with open_memory(pgvector_store, dedupe_threshold=0.95) as mem:
        yield mem


def _load(memory, user, vectors):
    items = [NewInsight(f"{user} row {i}", embedding=v) for i, v in enumerate(vectors)]
    return memory.insights.add_many(items, user_id=user, dedupe=False)


def test_filtered_search_finds_the_true_neighbours_of_small_and_large_owners(vector_memory):
    rng = np.random.default_rng(3)
    dim = vector_memory.embedder.dim
    centres = rng.normal(size=(40, dim))
    big = (centres[rng.integers(0, 40, 1200)] + rng.normal(scale=0.6, size=(1200, dim))).astype(np.float32)
    small = (centres[rng.integers(0, 40, 30)] + rng.normal(scale=0.6, size=(30, dim))).astype(np.float32)
    big_ids = _load(vector_memory, "big", big)
    small_ids = _load(vector_memory, "small", small)
    insights = vector_memory.insights
    insights.exact_max_rows = 200  # so "big" (1200 rows) takes the HNSW plan
    with vector_memory.store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE insights")

    def recall(user, ids, vectors, queries):
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        found = 0
        for q in queries:
            truth = {ids[i] for i in np.argsort(-(unit @ (q / np.linalg.norm(q))))[:10]}
            hits = insights.search("", user_id=user, mode="vector", vector=q, limit=10)
            assert all(h.id in set(ids) for h in hits)
            found += len(truth & {h.id for h in hits})
        return found / (10 * len(queries))

    # Dedupe for an owner above the exact cap probes through HNSW and still finds the twin.
    twin = big[5] + rng.normal(scale=0.01, size=dim).astype(np.float32)
    assert insights.add("big row 5 again", user_id="big", embedding=twin) == big_ids[5]
    assert insights.add("small row 5 again", user_id="small", embedding=small[5] * 2) == small_ids[5]

    queries = (centres[rng.integers(0, 40, 20)] + rng.normal(scale=0.6, size=(20, dim))).astype(np.float32)
    assert recall("small", small_ids, small, queries) == 1.0
    assert recall("big", big_ids, big, queries) >= 0.9


def test_the_plan_follows_the_owner_size(vector_memory):
    insights = vector_memory.insights
    _load(vector_memory, "few", np.eye(vector_memory.embedder.dim, dtype=np.float32)[:5])
    insights.exact_max_rows = 3
    with vector_memory.store.engine.begin() as conn:
        assert insights._candidate_rows(conn, "few", ()) == 4  # counted up to the cap + 1
        insights._use_hnsw(conn, 4, 10)
        assert conn.exec_driver_sql("SHOW hnsw.iterative_scan").scalar() == "relaxed_order"
        assert int(conn.exec_driver_sql("SHOW hnsw.ef_search").scalar()) >= 40


def _hnsw_index(store):
    with store.engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_insights_embedding_hnsw'"
        ).scalar_one_or_none()


@pytest.mark.parametrize(
    ("dim", "index"),
    [(2048, "halfvec_cosine_ops"), (4001, None), (64, "vector_cosine_ops")],
)
def test_reembed_builds_the_index_schema_creation_would_for_the_dimension(vector_memory, dim, index):
    from mosaic_memory import HashingEmbedder, reembed

    store = vector_memory.store
    ids = vector_memory.insights.add_many(["Speaks Dutch", "Plays chess", "Grows tomatoes"], user_id="u1")
    assert "vector_cosine_ops" in _hnsw_index(store)
    assert reembed(store, HashingEmbedder(dim)) == 3
    found = _hnsw_index(store)
    if index is None:
        assert found is None  # past 4,000 dimensions pgvector's HNSW cannot index: search is exact
    else:
        assert index in found
        if index.startswith("halfvec"):
            assert f"halfvec({dim})" in found
    with open_memory(store, HashingEmbedder(dim)) as memory:
        hits = memory.insights.search("chess", user_id="u1", mode="vector", limit=1)
        assert hits[0].id == ids[1]
        assert memory.insights.add("Plays chess", user_id="u1") == ids[1]


def test_version_parsing():
    from mosaic_memory._pgvector import version_tuple

    assert version_tuple("0.8.2") == (0, 8, 2)
    assert version_tuple("0.7.0-dev") == (0, 7, 0)
    assert version_tuple("0.6") < (0, 8) <= version_tuple("0.10.1")


def test_the_store_reads_the_extension_version_once(vector_memory):
    insights = vector_memory.insights
    assert insights.iterative_scans is None
    insights.exact_max_rows = -1  # so that even an empty owner takes the HNSW plan
    insights.search("anything", user_id="nobody", mode="vector")
    assert insights.iterative_scans is True  # the embedded server ships pgvector 0.8.x


def test_without_iterative_scans_search_and_dedupe_never_set_them(vector_memory):
    """pgvector < 0.8 (forced): no ``hnsw.iterative_scan``; exact for small owners, raised ef for big ones."""
    insights = vector_memory.insights
    insights.iterative_scans = False
    insights.exact_max_rows = 100
    rng = np.random.default_rng(9)
    dim = vector_memory.embedder.dim
    big = rng.normal(size=(600, dim)).astype(np.float32)
    small = rng.normal(size=(20, dim)).astype(np.float32)
    big_ids = _load(vector_memory, "big", big)
    small_ids = _load(vector_memory, "small", small)
    with vector_memory.store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE insights")
    statements: list[str] = []

    from sqlalchemy import event

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(vector_memory.store.engine, "before_cursor_execute", record)
    try:
        for user, ids, vectors in (("big", big_ids, big), ("small", small_ids, small)):
            hits = insights.search("", user_id=user, mode="vector", vector=vectors[4], limit=5)
            assert hits[0].id == ids[4] and all(h.id in set(ids) for h in hits)
        # A near twin of a big owner's row still merges (post-filtered HNSW with a raised ef_search).
        twin = big[11] + rng.normal(scale=0.01, size=dim).astype(np.float32)
        assert insights.add("big twin", user_id="big", embedding=twin) == big_ids[11]
        with vector_memory.store.engine.begin() as conn:
            insights._use_hnsw(conn, 600, 10)
            assert int(conn.exec_driver_sql("SHOW hnsw.ef_search").scalar()) > 40
    finally:
        event.remove(vector_memory.store.engine, "before_cursor_execute", record)
    assert not [s for s in statements if "iterative_scan" in s]
    assert [s for s in statements if "hnsw.ef_search" in s]  # the big owner did take HNSW


def test_a_search_on_a_connection_the_server_closed_runs_again_on_a_fresh_one(vector_memory):
    import psycopg
    import sqlalchemy as sa

    rng = np.random.default_rng(4)
    dim = vector_memory.embedder.dim
    vectors = rng.normal(size=(300, dim)).astype(np.float32)
    ids = _load(vector_memory, "u1", vectors)
    insights = vector_memory.insights
    insights.exact_max_rows = 100  # the HNSW plan: SET LOCAL and the search, both straight through psycopg
    assert insights.search("", user_id="u1", mode="vector", vector=vectors[7], limit=1)[0].id == ids[7]
    store = vector_memory.store
    cargs, cparams = store.engine.dialect.create_connect_args(store.engine.url)
    with psycopg.connect(*cargs, **cparams, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    assert killed >= 1
    for mode in ("vector", "hybrid"):
        hits = insights.search("", user_id="u1", mode=mode, vector=vectors[9], limit=1)
        assert hits[0].id == ids[9]
    # A driver error that is not a lost connection comes back as SQLAlchemy's, not psycopg's.
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE insights RENAME TO insights_gone")
    try:
        with pytest.raises(sa.exc.DBAPIError):
            insights.search("", user_id="u1", mode="vector", vector=vectors[9], limit=1)
    finally:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE insights_gone RENAME TO insights")


def test_an_hnsw_search_in_autocommit_gets_its_scan_settings(vector_memory):
    # Searches run in autocommit; an HNSW plan opens the transaction its SET LOCAL needs. Were
    # the settings lost (SET LOCAL outside a transaction does nothing), the index would be
    # post-filtered at ef_search 40 and a 1% owner would get back a fraction of its neighbours.
    rng = np.random.default_rng(5)
    dim = vector_memory.embedder.dim
    _load(vector_memory, "crowd", rng.normal(size=(1500, dim)).astype(np.float32))
    few = rng.normal(size=(15, dim)).astype(np.float32)
    few_ids = _load(vector_memory, "few", few)
    insights = vector_memory.insights
    insights.exact_max_rows = 0  # every owner takes the HNSW plan
    store = vector_memory.store
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE insights")
        # At this size the planner would rather sort the owner's 15 rows than walk the index;
        # at 100k rows it walks the index (the trap). Make it walk the index here too.
        name = conn.exec_driver_sql("SELECT current_database()").scalar()
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET enable_sort = off')
    store.engine.dispose()
    # Unfiltered searches go straight through psycopg, filtered ones through SQLAlchemy.
    since = {"created_at": {"gte": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}}
    for mode, filters in (("vector", None), ("hybrid", None), ("vector", since)):
        hits = insights.search("row", user_id="few", mode=mode, vector=few[3], limit=10, filters=filters)
        assert hits[0].id == few_ids[3]
        assert len(hits) == 10 and {h.id for h in hits} <= set(few_ids)
    # Nothing stays on the pooled connections: the next plain read sees the defaults.
    with vector_memory.store.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW hnsw.iterative_scan").scalar() == "off"
