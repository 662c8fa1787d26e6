"""Writers that race, and readers in other connections: dedupe holds, caches notice, memory stays bounded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import mosaic_storage as ms
from mosaic_memory import Memory, open_memory
from mosaic_memory._vectors import VectorCache


def _race(workers: int, action: Callable[[int], object]) -> list[object]:
    """Run ``action(i)`` in ``workers`` threads released at the same moment; their results in order."""
    barrier = threading.Barrier(workers)
    results: list[object] = [None] * workers
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = action(i)
        except BaseException as err:  # re-raised in the test's thread below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def test_concurrent_adds_of_the_same_text_store_it_once(memory: Memory) -> None:
    for round_ in range(8):
        user = f"racer-{round_}"
        text = f"the user prefers green tea, round {round_}"
        ids = _race(2, lambda _i, user=user, text=text: memory.insights.add(text, user_id=user))
        assert ids[0] == ids[1]
        assert memory.insights.count(user_id=user) == 1


def test_concurrent_batches_with_a_shared_text_merge_it(memory: Memory) -> None:
    user = "batch-racer"
    shared = "both batches carry this sentence"
    results = _race(
        2,
        lambda i: memory.insights.add_many([f"batch {i} own line", shared], user_id=user),
    )
    first, second = results
    assert isinstance(first, list) and isinstance(second, list)
    assert first[1] == second[1]
    assert memory.insights.count(user_id=user) == 3


@pytest.fixture
def second_memory(migrated_store: ms.Store) -> Iterator[Memory]:
    """Another store (its own engine and connections) on the same database, as another process has."""
    # The standalone tier is only what its config says (the server has pgvector); the others by URL.
    standalone = migrated_store.tier == ms.StorageTier.STANDALONE
    named = migrated_store.config if standalone else migrated_store._url  # type: ignore[attr-defined]
    with ms.open_store(named) as other, open_memory(other) as mem:
        assert type(mem) is type(open_memory(migrated_store))
        yield mem


def test_search_sees_writes_made_through_another_connection(memory: Memory, second_memory: Memory) -> None:
    user = "shared-user"
    kept = memory.insights.add("tea is the morning drink", user_id=user)
    assert [h.id for h in memory.insights.search("tea", user_id=user, mode="vector")] == [kept]

    added = second_memory.insights.add("coffee after lunch, never tea", user_id=user)
    hits = memory.insights.search("coffee after lunch", user_id=user, mode="vector")
    assert {h.id for h in hits} == {kept, added}

    second_memory.insights.update(kept, user_id=user, text="cocoa is the morning drink")
    best = memory.insights.search("cocoa morning", user_id=user, mode="vector", limit=1)
    assert [h.id for h in best] == [kept]
    assert best[0].vector_score is not None and best[0].vector_score > 0.5

    assert second_memory.insights.delete(added, user_id=user)
    assert [h.id for h in memory.insights.search("coffee", user_id=user, mode="vector")] == [kept]

    # Dedupe in the first memory also sees the other writer's insight.
    again = second_memory.insights.add("a lemon in the evening tea", user_id=user)
    assert memory.insights.add("a lemon in the evening tea", user_id=user) == again


def _unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_vector_cache_evicts_least_recently_used_users_beyond_its_budget() -> None:
    dim = 16
    per_user = 100
    matrices = {user: _unit_rows(per_user, dim, seed) for seed, user in enumerate("abcd")}
    loads: list[str] = []

    def loader(user: str) -> Callable[[], tuple[list[str], np.ndarray]]:
        def load() -> tuple[list[str], np.ndarray]:
            loads.append(user)
            return [f"{user}{i}" for i in range(per_user)], matrices[user]

        return load

    probe = VectorCache(dim)
    probe.search("a", 1, loader("a"), matrices["a"][0], 1)
    one_user = probe.nbytes
    loads.clear()

    cache = VectorCache(dim, max_bytes=int(one_user * 2.5))
    for user in "abc":
        assert cache.search(user, 1, loader(user), matrices[user][3], 1) == [(f"{user}3", pytest.approx(1.0))]
    assert cache.cached_users() == ["b", "c"]  # "a" was the least recently used
    assert cache.nbytes <= cache.max_bytes
    cache.search("b", 1, loader("b"), matrices["b"][0], 1)  # "b" is now the most recent
    cache.search("d", 1, loader("d"), matrices["d"][0], 1)
    assert cache.cached_users() == ["b", "d"]
    assert loads == ["a", "b", "c", "d"]

    # A user bigger than the whole budget is searched but not kept.
    tiny = VectorCache(dim, max_bytes=one_user // 2)
    for _ in range(2):
        assert tiny.search("a", 1, loader("a"), matrices["a"][7], 1)[0][0] == "a7"
    assert tiny.cached_users() == [] and tiny.nbytes == 0
    assert loads[-2:] == ["a", "a"]


def test_writes_keep_the_cache_within_its_budget(sqlite_store: ms.Store) -> None:
    ms.upgrade(sqlite_store)
    with open_memory(sqlite_store) as mem:
        cache = mem.insights.cache  # type: ignore[attr-defined]
        cache.max_bytes = 200_000  # about 100 vectors of 384 floats with spare rows
        for user in ("u1", "u2", "u3"):
            mem.insights.add_many([f"{user} fact number {i}" for i in range(40)], user_id=user)
            assert mem.insights.search("fact number 7", user_id=user, mode="vector", limit=1)
            assert cache.nbytes <= cache.max_bytes
        assert "u1" not in cache.cached_users()
        # An evicted user is reloaded on demand, with the right answer.
        hits = mem.insights.search("u1 fact number 7", user_id="u1", mode="vector", limit=1)
        assert hits[0].text == "u1 fact number 7"


def test_adds_racing_updates_and_deletes_of_one_user_never_deadlock(memory: Memory) -> None:
    """`add` takes the user's generation row before any insight row; so do `update` and `delete`."""
    user = "lock-order"
    kept = memory.insights.add("the fact", user_id=user)

    def work(i: int) -> None:
        for n in range(15):
            if i == 0:
                memory.insights.add_many(["the fact"] + [f"filler {n} {j}" for j in range(10)], user_id=user)
            elif i == 1:
                memory.insights.update(kept, user_id=user, metadata={"n": n})
            else:
                extra = memory.insights.add(f"short lived {n}", user_id=user)
                memory.insights.delete(extra, user_id=user)

    _race(3, work)  # raises the first error (a deadlock would be one)
    assert memory.insights.get(kept, user_id=user) is not None


def test_near_duplicates_are_merged_even_right_after_another_connection_wrote(
    migrated_store: ms.Store,
) -> None:
    """A count cached by one store instance must not hide rows another one wrote."""
    user = "fresh-count"
    with (
        open_memory(migrated_store, dedupe_threshold=0.8) as first,
        open_memory(migrated_store, dedupe_threshold=0.8) as second,
    ):
        assert first.insights.search("alarm", user_id=user) == []  # counts (and caches) 0 rows
        stored = second.insights.add("wakes up at seven every morning", user_id=user)
        merged = first.insights.add("wakes up at seven every morning!", user_id=user)
        assert merged == stored and first.insights.count(user_id=user) == 1
