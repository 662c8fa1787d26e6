"""The behavioural suite of `MemoryStore`: the same tests on SQLite, PostgreSQL and pgvector."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
import sqlalchemy as sa

import mosaic_storage as ms
from mosaic_memory import (
    EmbedderMismatchError,
    HashingEmbedder,
    InsightStore,
    MemoryStore,
    NewInsight,
    NotFoundError,
    PreferenceStore,
    SkillStore,
    default_dedupe_threshold,
    open_memory,
    reembed,
    to_dict,
)

EXPECTED_BACKEND = {"sqlite": "sqlite", "postgres": "postgres", "pgvector": "pgvector"}


def test_open_memory_picks_the_backend_by_what_the_store_can_do(memory, request):
    backend = request.node.callspec.params["store"]
    assert memory.backend == EXPECTED_BACKEND[backend]
    assert isinstance(memory, MemoryStore)
    assert isinstance(memory.preferences, PreferenceStore)
    assert isinstance(memory.insights, InsightStore)
    assert isinstance(memory.skills, SkillStore)


# --- preferences -------------------------------------------------------------------------------


def test_preferences_round_trip_json_values(memory):
    value = {"theme": "dark", "sizes": [1, 2.5], "on": True, "none": None}
    stored = memory.preferences.set("u1", "ui", value, category="display")
    assert stored.value == value and stored.category == "display" and stored.mutable
    assert memory.preferences.get("u1", "ui") == value
    assert memory.preferences.get("u1", "missing", default=7) == 7
    memory.preferences.set("u1", "ui", "light")
    record = memory.preferences.get_record("u1", "ui")
    assert record is not None and record.value == "light" and record.category == "display"
    assert record.updated_at >= record.created_at


def test_preferences_list_and_delete(memory):
    memory.preferences.set("u1", "b", 2, category="x")
    memory.preferences.set("u1", "a", 1)
    memory.preferences.set("u2", "a", "other user")
    assert [p.key for p in memory.preferences.list("u1")] == ["a", "b"]
    assert [p.key for p in memory.preferences.list("u1", category="x")] == ["b"]
    assert memory.preferences.delete("u1", "a") is True
    assert memory.preferences.delete("u1", "a") is False
    assert memory.preferences.get("u2", "a") == "other user"


def test_an_immutable_preference_changes_only_by_the_user(memory):
    memory.preferences.set("u1", "language", "en", mutable=False)
    with pytest.raises(ms.AccessDenied, match="immutable"):
        memory.preferences.set("u1", "language", "fr", source="agent")
    with pytest.raises(ms.AccessDenied, match="immutable"):
        memory.preferences.delete("u1", "language", source="agent")
    with pytest.raises(ms.AccessDenied, match="only the user"):
        memory.preferences.set("u1", "language", "fr", source="agent", mutable=True)
    assert memory.preferences.get("u1", "language") == "en"
    updated = memory.preferences.set("u1", "language", "de", source="user")
    assert updated.value == "de" and not updated.mutable
    agent_pref = memory.preferences.set("u1", "tone", "warm", source="agent")
    assert agent_pref.source == "agent" and agent_pref.mutable
    assert memory.preferences.set("u1", "tone", "dry", source="agent").value == "dry"


def test_user_ids_must_be_non_empty_strings(memory):
    with pytest.raises(ValueError, match="user_id"):
        memory.preferences.set("", "k", 1)
    with pytest.raises(ValueError, match="user_id"):
        memory.insights.add("text", user_id="  ")


# --- insights ------------------------------------------------------------------------------


def test_add_get_update_delete(memory):
    iid = memory.insights.add("Likes green tea", user_id="u1", category="food", metadata={"n": 1})
    insight = memory.insights.get(iid, user_id="u1")
    assert insight is not None
    assert (insight.text, insight.category, insight.metadata, insight.source) == (
        "Likes green tea",
        "food",
        {"n": 1},
        "agent",
    )
    updated = memory.insights.update(iid, user_id="u1", text="Likes black coffee", metadata={"n": 2})
    assert (
        updated.text == "Likes black coffee" and updated.metadata == {"n": 2} and updated.category == "food"
    )
    hits = memory.insights.search("Likes black coffee", user_id="u1", mode="vector", limit=1)
    assert hits[0].id == iid and hits[0].vector_score == pytest.approx(1.0, abs=1e-5)
    assert memory.insights.delete(iid, user_id="u1") is True
    assert memory.insights.get(iid, user_id="u1") is None
    assert memory.insights.delete(iid, user_id="u1") is False
    with pytest.raises(NotFoundError):
        memory.insights.update(iid, user_id="u1", text="gone")


def test_list_pages_newest_first(memory):
    ids = memory.insights.add_many([f"fact number {i} about topic {i * 7}" for i in range(7)], user_id="u1")
    assert len(set(ids)) == 7
    first = memory.insights.list(user_id="u1", limit=3)
    second = memory.insights.list(user_id="u1", limit=3, offset=3)
    third = memory.insights.list(user_id="u1", limit=3, offset=6)
    listed = [i.id for i in first + second + third]
    assert sorted(listed) == sorted(ids) and len(listed) == 7
    assert [i.id for i in first] == sorted(ids, reverse=True)[:3]
    assert memory.insights.count(user_id="u1") == 7


def test_add_many_keeps_order_and_takes_given_embeddings(memory):
    dim = memory.embedder.dim
    rng = np.random.default_rng(1)
    given = rng.normal(size=dim).astype(np.float32)
    ids = memory.insights.add_many(
        ["alpha beta", NewInsight("gamma delta", category="c", embedding=given), "epsilon zeta"],
        user_id="u1",
    )
    assert [memory.insights.get(i, user_id="u1").text for i in ids] == [
        "alpha beta",
        "gamma delta",
        "epsilon zeta",
    ]
    hits = memory.insights.search("unrelated words", user_id="u1", mode="vector", vector=given, limit=1)
    assert hits[0].id == ids[1] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="shape"):
        memory.insights.add("bad", user_id="u1", embedding=np.ones(dim + 1))


def test_same_text_is_never_added_twice_and_keeps_history(memory):
    first = memory.insights.add("Prefers short answers", user_id="u1", metadata={"a": 1})
    again = memory.insights.add("  Prefers short answers ", user_id="u1", metadata={"b": 2}, dedupe=True)
    assert again == first
    assert memory.insights.count(user_id="u1") == 1
    assert memory.insights.get(first, user_id="u1").metadata == {"a": 1, "b": 2}
    assert [h.action for h in memory.insights.history(first, user_id="u1")] == ["add", "merge"]
    # Another user's identical text is theirs alone.
    assert memory.insights.add("Prefers short answers", user_id="u2") != first


@pytest.fixture
def semantic_dedupe(migrated_store):
    """Memory that merges near duplicates at cosine 0.95 (the default of semantic embedders)."""
    with open_memory(migrated_store, dedupe_threshold=0.95) as memory:
        yield memory


def test_near_duplicates_update_the_existing_insight(semantic_dedupe):
    memory = semantic_dedupe
    dim = memory.embedder.dim
    base = np.zeros(dim, dtype=np.float32)
    base[0] = 1.0
    near = base.copy()
    near[1] = 0.2  # cosine 0.98
    far = base.copy()
    far[1] = 0.8  # cosine 0.89 with the merged vector
    iid = memory.insights.add("Lives in Paris", user_id="u1", embedding=base)
    merged = memory.insights.add("Lives in Paris, France", user_id="u1", embedding=near)
    assert merged == iid
    assert memory.insights.get(iid, user_id="u1").text == "Lives in Paris, France"
    history = memory.insights.history(iid, user_id="u1")
    assert [(h.action, h.old_text, h.new_text) for h in history] == [
        ("add", None, "Lives in Paris"),
        ("merge", "Lives in Paris", "Lives in Paris, France"),
    ]
    assert memory.insights.add("Moved to Lyon", user_id="u1", embedding=far) != iid
    assert memory.insights.add("Lives in Paris, France!", user_id="u1", embedding=near, dedupe=False) != iid
    assert memory.insights.count(user_id="u1") == 3


# Share every word but "not": the hashing embedder puts them at cosine 0.96.
ALLERGIC = "User is allergic to nuts and carries an epipen to every restaurant dinner"
NOT_ALLERGIC = "User is not allergic to nuts and carries an epipen to every restaurant dinner"


def test_a_lexical_embedder_merges_only_the_same_text(memory):
    assert memory.dedupe_threshold == math.inf
    emb = memory.embedder.embed([ALLERGIC, NOT_ALLERGIC])
    assert float(emb[0] @ emb[1]) > 0.95  # what a cosine threshold would have merged
    allergic = memory.insights.add(ALLERGIC, user_id="u1")
    not_allergic = memory.insights.add(NOT_ALLERGIC, user_id="u1")
    assert allergic != not_allergic
    assert {i.text for i in memory.insights.list(user_id="u1")} == {ALLERGIC, NOT_ALLERGIC}
    in_one_batch = memory.insights.add_many([NOT_ALLERGIC + "!", ALLERGIC + "!"], user_id="u2")
    assert len(set(in_one_batch)) == 2
    assert memory.insights.add(f"  {ALLERGIC} ", user_id="u1") == allergic  # the same text still merges


def test_the_default_threshold_follows_the_embedder():
    class Semantic:
        name, dim = "semantic-test", 8

        def embed(self, texts):
            return np.ones((len(texts), 8), dtype=np.float32)

    class Lexical(Semantic):
        lexical = True

    assert default_dedupe_threshold(Semantic()) == 0.95
    assert default_dedupe_threshold(Lexical()) == math.inf
    assert default_dedupe_threshold(HashingEmbedder(16)) == math.inf


def test_dedupe_threshold_is_configurable_and_applies_within_a_batch(migrated_store):
    with open_memory(migrated_store, dedupe_threshold=0.5) as memory:
        ids = memory.insights.add_many(
            ["likes hiking in the alps", "likes hiking in the alps a lot", "collects stamps"], user_id="u1"
        )
        assert ids[0] == ids[1] != ids[2]
        assert memory.insights.get(ids[0], user_id="u1").text == "likes hiking in the alps a lot"
    with open_memory(migrated_store, dedupe_threshold=1.01) as strict:
        # Above 1 only identical texts merge.
        assert strict.insights.add("likes hiking in the alps!", user_id="u1") != ids[0]
        assert strict.insights.add("collects stamps", user_id="u1") == ids[2]


def test_history_keeps_updates_and_deletes_and_is_scoped(memory):
    iid = memory.insights.add("Drinks tea", user_id="u1")
    memory.insights.update(iid, user_id="u1", text="Drinks coffee", source="user")
    memory.insights.delete(iid, user_id="u1")
    history = memory.insights.history(iid, user_id="u1")
    assert [(h.action, h.old_text, h.new_text, h.actor) for h in history] == [
        ("add", None, "Drinks tea", "agent"),
        ("update", "Drinks tea", "Drinks coffee", "user"),
        ("delete", "Drinks coffee", None, "agent"),
    ]
    assert memory.insights.history(iid, user_id="u2") == []
    assert to_dict(history[0])["changed_at"].startswith(str(history[0].changed_at.year))


SAMPLE = [
    ("Prefers short answers with code examples", "style", {"topic": "answers", "weight": 3}),
    ("Works mostly in Python and SQL", "skills", {"topic": "work", "weight": 1}),
    ("Is planning a hiking trip to the Alps", "life", {"topic": "travel", "weight": 5}),
    ("Drinks green tea, never coffee", "food", {"topic": "food", "weight": 2}),
    ("Answers emails in the morning", "habits", {"topic": "work", "weight": 4}),
]


@pytest.fixture
def sample(memory):
    items = [NewInsight(text, category=category, metadata=meta) for text, category, meta in SAMPLE]
    return memory.insights.add_many(items, user_id="u1")


def test_search_modes_rank_the_matching_insight_first(memory, sample):
    for mode in ("hybrid", "vector", "keyword"):
        hits = memory.insights.search("hiking in the Alps", user_id="u1", mode=mode, limit=3)
        assert hits[0].id == sample[2], mode
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    hybrid = memory.insights.search("hiking in the Alps", user_id="u1", limit=3)[0]
    assert hybrid.vector_score is not None and hybrid.keyword_score is not None
    assert hybrid.fused_score == hybrid.score == pytest.approx(2 / 61)
    keyword = memory.insights.search("hiking", user_id="u1", mode="keyword")
    assert [h.id for h in keyword] == [sample[2]]
    assert keyword[0].fused_score is None and keyword[0].keyword_score > 0
    vector = memory.insights.search("hiking", user_id="u1", mode="vector", limit=10)
    assert len(vector) == 5 and vector[0].keyword_score is None


def test_every_search_path_returns_the_stored_record(memory, sample):
    # Vector searches without filters take a driver-level path on pgvector; with a filter they
    # go through SQLAlchemy. Both must give what `get` gives, timestamps in UTC.
    for filters in (None, {"weight": {"gte": 1}}):
        hits = memory.insights.search("hiking", user_id="u1", mode="vector", limit=10, filters=filters)
        assert hits, filters
        for hit in hits:
            stored = memory.insights.get(hit.id, user_id="u1")
            assert (hit.text, hit.category, hit.metadata) == (stored.text, stored.category, stored.metadata)
            assert hit.created_at == stored.created_at and hit.created_at.utcoffset() == dt.timedelta(0)
    assert memory.insights.search("hiking", user_id="u2", mode="vector") == []


def test_keyword_search_stems_and_ignores_syntax(memory, sample):
    # "answer" matches "answers"; quotes, stars and operators in the query are just text.
    hits = memory.insights.search('answer" OR * NEAR(', user_id="u1", mode="keyword")
    assert {h.id for h in hits} == {sample[0], sample[4]}
    assert memory.insights.search("!!!", user_id="u1", mode="keyword") == []


def test_stop_words_alone_match_nothing_and_do_not_add_keyword_hits(memory, sample):
    # The same on every backend: PostgreSQL's english configuration drops them, SQLite does too.
    assert memory.insights.search("the is a of", user_id="u1", mode="keyword") == []
    with_stop_words = memory.insights.search("is it hiking in the Alps", user_id="u1", mode="keyword")
    assert [h.id for h in with_stop_words] == [sample[2]]


def test_min_score_and_limit(memory, sample):
    hits = memory.insights.search("green tea", user_id="u1", mode="vector", min_score=0.3)
    assert [h.id for h in hits] == [sample[3]]
    assert len(memory.insights.search("tea", user_id="u1", mode="vector", limit=2)) == 2
    with pytest.raises(ValueError, match="mode"):
        memory.insights.search("tea", user_id="u1", mode="fuzzy")  # type: ignore[arg-type]


def test_filters_apply_inside_the_query(memory, sample):
    def ids(**kwargs):
        return {h.id for h in memory.insights.search("answers", user_id="u1", limit=10, **kwargs)}

    assert ids(filters={"topic": "work"}) == {sample[1], sample[4]}
    assert ids(filters={"category": {"in": ["food", "life"]}}) == {sample[2], sample[3]}
    assert ids(filters={"weight": {"gte": 3}}) == {sample[0], sample[2], sample[4]}
    assert ids(filters={"weight": {"gt": 1, "lt": 3}}) == {sample[3]}
    assert ids(filters={"topic": {"ne": "work"}, "category": "style"}) == {sample[0]}
    # A filter narrows keyword hits too: "answers" matches two insights, one of them about work.
    keyword = memory.insights.search("answers", user_id="u1", mode="keyword", filters={"topic": "work"})
    assert [h.id for h in keyword] == [sample[4]]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert ids(filters={"created_at": {"gte": later}}) == set()
    assert ids(filters={"created_at": {"lt": later}}) == set(sample)
    assert {i.id for i in memory.insights.list(user_id="u1", filters={"topic": "work"})} == {
        sample[1],
        sample[4],
    }
    with pytest.raises(ValueError, match="operator"):
        memory.insights.search("x", user_id="u1", filters={"topic": {"like": "w%"}})
    with pytest.raises(ValueError, match="datetime"):
        memory.insights.search("x", user_id="u1", filters={"created_at": {"gte": "yesterday"}})


def test_another_user_sees_nothing(memory, sample):
    assert memory.insights.search("hiking", user_id="u2") == []
    assert memory.insights.list(user_id="u2") == []
    assert memory.insights.get(sample[0], user_id="u2") is None
    assert memory.insights.delete(sample[0], user_id="u2") is False
    with pytest.raises(NotFoundError):
        memory.insights.update(sample[0], user_id="u2", text="hijacked")
    assert memory.insights.history(sample[0], user_id="u2") == []
    assert memory.insights.get(sample[0], user_id="u1").text == SAMPLE[0][0]


def test_writes_from_another_process_are_seen_by_search(memory, migrated_store):
    """Two memories on one store stand for two processes: each sees the other's writes."""
    with open_memory(migrated_store) as other:
        first = memory.insights.add("Collects vintage cameras", user_id="u1")
        assert other.insights.search("vintage cameras", user_id="u1", mode="vector")[0].id == first
        second = other.insights.add("Plays the cello on weekends", user_id="u1")
        other.insights.delete(first, user_id="u1")
        hits = memory.insights.search("cello weekends vintage cameras", user_id="u1", mode="vector")
        assert [h.id for h in hits] == [second]


def test_search_stays_exact_as_rows_change(memory):
    """After adds, updates and deletes, vector search equals brute force over the rows stored."""
    rng = np.random.default_rng(7)
    dim = memory.embedder.dim
    vectors = rng.normal(size=(60, dim)).astype(np.float32)
    ids = memory.insights.add_many(
        [NewInsight(f"item {i}", embedding=v) for i, v in enumerate(vectors)], user_id="u1", batch_size=25
    )
    for i in range(0, 60, 6):
        memory.insights.delete(ids[i], user_id="u1")
    for i in range(1, 60, 10):
        vectors[i] = rng.normal(size=dim)
        memory.insights.update(ids[i], user_id="u1", text=f"item {i} changed", embedding=vectors[i])
    alive = [i for i in range(60) if i % 6]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for q in rng.normal(size=(5, dim)).astype(np.float32):
        expected = sorted(alive, key=lambda i: -float(unit[i] @ (q / np.linalg.norm(q))))[:5]
        hits = memory.insights.search("", user_id="u1", mode="vector", vector=q, limit=5)
        assert [h.id for h in hits] == [ids[i] for i in expected]


# --- skills --------------------------------------------------------------------------------


def test_skills_crud_enable_disable(memory):
    skill = memory.skills.create("u1", "web_search", description="search the web", config={"engine": "x"})
    assert skill.enabled and skill.version == "1"
    with pytest.raises(ms.ConflictError):
        memory.skills.create("u1", "web_search")
    memory.skills.create("u1", "calculator", enabled=False)
    memory.skills.create("u2", "web_search")
    assert [s.name for s in memory.skills.list("u1")] == ["calculator", "web_search"]
    assert [s.name for s in memory.skills.list("u1", enabled=True)] == ["web_search"]
    assert memory.skills.enable("u1", "calculator").enabled
    assert not memory.skills.disable("u1", "web_search").enabled
    updated = memory.skills.update("u1", "web_search", version="2", config={"engine": "y"})
    assert (updated.version, updated.config, updated.description) == ("2", {"engine": "y"}, "search the web")
    with pytest.raises(NotFoundError):
        memory.skills.update("u1", "nope", version="3")
    assert memory.skills.delete("u1", "web_search") is True
    assert memory.skills.get("u1", "web_search") is None
    assert memory.skills.get("u2", "web_search") is not None


# --- embedder rule ---------------------------------------------------------------------------


def test_the_store_records_its_embedder_and_refuses_another_dimension(memory, migrated_store):
    with migrated_store.engine.connect() as conn:
        facts = dict(conn.execute(sa.text("select key, value from store_meta")).all())
    assert facts["embedder"] == "hashing-v1" and facts["embedding_dim"] == "384"
    with pytest.raises(EmbedderMismatchError) as err:
        open_memory(migrated_store, HashingEmbedder(dim=128))
    assert "dimension 384" in str(err.value) and "reembed" in str(err.value)
    assert err.value.stored_dim == 384 and err.value.dim == 128


def test_reembed_moves_the_store_to_another_dimension(memory, migrated_store):
    iid = memory.insights.add("Speaks Portuguese", user_id="u1")
    assert reembed(migrated_store, HashingEmbedder(dim=64)) == 1
    with open_memory(migrated_store, HashingEmbedder(dim=64)) as small:
        hits = small.insights.search("Portuguese", user_id="u1", mode="vector")
        assert hits[0].id == iid and hits[0].score == pytest.approx(
            float(
                HashingEmbedder(64).embed(["Portuguese"])[0]
                @ HashingEmbedder(64).embed(["Speaks Portuguese"])[0]
            ),
            abs=1e-5,
        )
        assert small.insights.add("Speaks Portuguese", user_id="u1") == iid
    with pytest.raises(EmbedderMismatchError):
        open_memory(migrated_store)


def test_open_memory_needs_a_migrated_store(store):
    with pytest.raises(ms.SchemaError, match="upgrade"):
        open_memory(store)


def test_a_user_locking_a_preference_mid_write_beats_the_agent(sqlite_store):
    import sqlite3

    import sqlalchemy as sa

    from mosaic_memory import open_memory
    from mosaic_storage import AccessDenied, upgrade

    upgrade(sqlite_store)
    mem = open_memory(sqlite_store)
    mem.preferences.set("u", "lang", "en", source="user")
    path = sqlite_store.engine.url.database

    def user_locks_it_first(conn, cursor, statement, *args):
        # Between the agent's read and its write, the user makes the preference immutable.
        if statement.startswith("UPDATE preferences"):
            with sqlite3.connect(path) as other:
                other.execute("UPDATE preferences SET mutable = 0 WHERE user_id = 'u' AND key = 'lang'")

    sa.event.listen(sqlite_store.engine, "before_cursor_execute", user_locks_it_first)
    try:
        with pytest.raises(AccessDenied):
            mem.preferences.set("u", "lang", "fr", source="agent")
    finally:
        sa.event.remove(sqlite_store.engine, "before_cursor_execute", user_locks_it_first)
    assert mem.preferences.get("u", "lang") == "en"
