"""Metadata filters: typed, never failing on mixed types, any key, the same rows on every backend."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mosaic_storage as ms
from mosaic_memory import NewInsight, open_memory

MIXED = [
    {"n": "5"},
    {"n": 5},
    {"n": 5.0},
    {"n": True},
    {"n": [5]},
    {"n": None},
    {},
    {"n": 7.5},
    {"n": "abc"},
    {"n": False},
]


def _ids(memory, filters):
    return {
        int(insight.text.split()[1])
        for insight in memory.insights.list(user_id="u1", filters=filters, limit=1000)
    }


@pytest.fixture
def mixed(memory):
    items = [NewInsight(f"row {i}", metadata=meta) for i, meta in enumerate(MIXED)]
    memory.insights.add_many(items, user_id="u1", dedupe=False)
    return memory


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"n": 5}, {1, 2}),
        ({"n": "5"}, {0}),
        ({"n": True}, {3}),
        ({"n": False}, {9}),
        ({"n": {"ne": True}}, {9}),
        ({"n": {"gt": 4}}, {1, 2, 7}),
        ({"n": {"lte": 5}}, {1, 2}),
        ({"n": {"ne": 5}}, {7}),
        ({"n": {"ne": "5"}}, {8}),
        ({"n": {"gte": "a"}}, {8}),
        ({"n": {"in": ["5", True, 7.5]}}, {0, 3, 7}),
        ({"n": {"in": []}}, set()),
        ({"missing": {"ne": 1}}, set()),
    ],
)
def test_a_key_of_mixed_types_filters_by_the_type_of_the_value_given(mixed, filters, expected):
    assert _ids(mixed, filters) == expected
    hits = mixed.insights.search("row", user_id="u1", filters=filters, limit=20)
    assert {int(hit.text.split()[1]) for hit in hits} == expected


def test_booleans_do_not_order(mixed):
    with pytest.raises(ValueError, match="booleans compare with eq, ne or in"):
        _ids(mixed, {"n": {"gt": True}})
    with pytest.raises(ValueError, match="string, number or boolean"):
        _ids(mixed, {"n": None})


SPECIAL_KEYS = ['a"b', "café", "a.b", "back\\slash", "$[0]", "🎉 party", "with space", "tab\tkey", "'quote"]


def test_any_metadata_key_can_be_filtered(memory):
    items = [NewInsight(f"row {i}", metadata={key: i, "other": key}) for i, key in enumerate(SPECIAL_KEYS)]
    memory.insights.add_many(items, user_id="u1", dedupe=False)
    for i, key in enumerate(SPECIAL_KEYS):
        assert _ids(memory, {key: i}) == {i}, key
        assert _ids(memory, {key: {"gte": 0}}) == {i}, key
        assert _ids(memory, {"other": key}) == {i}, key
    with pytest.raises(ValueError, match="NUL"):
        _ids(memory, {"nul\x00key": 1})


# --- SQLite and PostgreSQL agree -----------------------------------------------------------------

KEYS = st.sampled_from(["n", 'q"k', "café", "a.b"])
SCALARS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([-1.5, 0.0, 2.5, 3.0, 1e300]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet='ab5Zé"\\', max_size=3),
    st.booleans(),
)
VALUES = st.one_of(SCALARS, st.none(), st.lists(st.integers(0, 3), max_size=2))
ROWS = st.lists(st.dictionaries(KEYS, VALUES, max_size=3), min_size=1, max_size=8)
FILTERS = st.one_of(
    st.tuples(KEYS, st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]), SCALARS),
    st.tuples(KEYS, st.just("in"), st.lists(SCALARS, max_size=3)),
)


@pytest.fixture
def both(sqlite_store, pgvector_store):
    memories = []
    for store in (sqlite_store, pgvector_store):
        ms.upgrade(store)
        memories.append(open_memory(store))
    yield memories
    for memory in memories:
        memory.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, conditions=st.lists(FILTERS, min_size=1, max_size=2))
def test_sqlite_and_postgresql_return_the_same_rows_for_any_metadata(both, rows, conditions):
    filters: dict = {}
    for key, op, value in conditions:
        filters.setdefault(key, {})[op] = value
    outcomes = []
    for memory in both:
        with memory.store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM insights")
        items = [NewInsight(f"row {i}", metadata=meta) for i, meta in enumerate(rows)]
        memory.insights.add_many(items, user_id="u1", dedupe=False)
        try:
            outcomes.append(_ids(memory, filters))
        except ValueError as err:
            outcomes.append(f"ValueError: {err}")
    assert outcomes[0] == outcomes[1], (filters, rows)
