"""Concurrent writers on PostgreSQL: optimistic versions let exactly one of two racing updates win."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import mosaic_storage as ms
from mosaic_storage.brain import Brain, ConflictError

ROUNDS = 5


@pytest.fixture
def pg_brain(postgres_store, tmp_path):
    ms.upgrade(postgres_store)
    return Brain(postgres_store, workspace_root=tmp_path)


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; each result is a value or the exception raised."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=30)
        try:
            return call()
        except ConflictError as err:
            return err

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_threads_updating_the_same_version_one_wins_one_conflicts(pg_brain):
    owner = pg_brain.users.create(name="owner").id
    task = pg_brain.tasks.create(owner, title="start")
    for _ in range(ROUNDS):
        version = pg_brain.tasks.get(owner, task.id).version
        results = _race(
            [
                lambda title=title, v=version: pg_brain.tasks.update(owner, task.id, version=v, title=title)
                for title in ("left", "right")
            ]
        )
        winners = [r for r in results if not isinstance(r, ConflictError)]
        losers = [r for r in results if isinstance(r, ConflictError)]
        assert len(winners) == 1 and len(losers) == 1, results
        stored = pg_brain.tasks.get(owner, task.id)
        assert stored == winners[0]
        assert stored.version == version + 1


def test_concurrent_appends_get_distinct_consecutive_seqs(pg_brain):
    owner = pg_brain.users.create(name="owner").id
    conv = pg_brain.conversations.create(owner, title="busy")
    results = _race(
        [lambda i=i: pg_brain.conversations.append(owner, conv.id, "user", f"m{i}") for i in range(6)]
    )
    assert sorted(m.seq for m in results) == [1, 2, 3, 4, 5, 6]
    stored = pg_brain.conversations.messages(owner, conv.id)
    assert [m.seq for m in stored] == [1, 2, 3, 4, 5, 6]
    assert sorted(m.content for m in stored) == [f"m{i}" for i in range(6)]
