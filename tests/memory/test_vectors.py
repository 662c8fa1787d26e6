"""VectorCache: exact top-k equal to brute force through upserts and removals."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaic_memory._embedders import normalize_rows
from mosaic_memory._vectors import UserVectors, VectorCache


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["upsert", "remove"]), st.lists(st.integers(0, 30), min_size=1, max_size=8)
        ),
        max_size=25,
    ),
    seed=st.integers(0, 1000),
)
def test_top_k_matches_brute_force_after_any_writes(steps, seed):
    rng = np.random.default_rng(seed)
    dim = 8
    vectors = UserVectors(dim, 0, [], np.zeros((0, dim), dtype=np.float32))
    truth: dict[str, np.ndarray] = {}
    for op, keys in steps:
        ids = [f"id{k}" for k in dict.fromkeys(keys)]
        if op == "upsert":
            batch = normalize_rows(rng.normal(size=(len(ids), dim)).astype(np.float32))
            vectors.upsert(ids, batch)
            truth.update(zip(ids, batch, strict=True))
        else:
            vectors.remove(ids)
            for id_ in ids:
                truth.pop(id_, None)
    assert vectors.size == len(truth) and sorted(vectors.ids) == sorted(truth)
    query = normalize_rows(rng.normal(size=(1, dim)).astype(np.float32))[0]
    expected = sorted(truth, key=lambda id_: -float(truth[id_] @ query))[:5]
    got = vectors.top_k(query, 5)
    assert [id_ for id_, _ in got] == expected
    if truth:
        among = sorted(truth)[::2]
        got_among = vectors.top_k(query, 3, vectors.rows_of(among))
        assert [i for i, _ in got_among] == sorted(among, key=lambda id_: -float(truth[id_] @ query))[:3]


def test_cache_reloads_when_another_writer_moved_the_generation():
    cache = VectorCache(4)
    loads = []

    def load():
        loads.append(1)
        return ["x"], np.eye(4, dtype=np.float32)[:1]

    query = np.eye(4, dtype=np.float32)[0]
    assert cache.search("u", 1, load, query, 1) == [("x", 1.0)]
    assert cache.search("u", 1, load, query, 1) == [("x", 1.0)]
    assert len(loads) == 1
    cache.apply("u", 2, upserts=(["y"], np.eye(4, dtype=np.float32)[1:2]))
    assert {i for i, _ in cache.search("u", 2, load, query, 5)} == {"x", "y"}
    assert len(loads) == 1
    # Generation 4 written elsewhere (3 was skipped): the patch is refused and the user reloaded.
    cache.apply("u", 4, removals=["x"])
    assert cache.search("u", 4, load, query, 5) == [("x", 1.0)]
    assert len(loads) == 2
