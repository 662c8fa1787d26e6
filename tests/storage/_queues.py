"""Fixtures for the job queue suites: one fresh queue per test on SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

import mosaic_storage as ms
from mosaic_storage.queue import Backoff, JobQueue, open_queue

QUEUE_BACKENDS = ("sqlite", "postgres", "redis")
FAST = Backoff(base=0.05, cap=0.2, jitter=0.5)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=QUEUE_BACKENDS)
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL naming a fresh, migrated queue: a SQLite file, a PostgreSQL database or a Redis db."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/jobs.db"
        with ms.open_store(url) as store:
            ms.upgrade(store)
        yield url
    elif request.param == "postgres":
        # The plain server when the environment names one, else the embedded one.
        server = request.getfixturevalue("postgres_server") or request.getfixturevalue("pgvector_server")
        url = server.create_database("jobs")
        with ms.open_store(url) as store:
            ms.upgrade(store)
        yield url
        server.drop_database(url)
    else:
        yield request.getfixturevalue("redis_url")


@pytest.fixture
def queue(queue_url: str) -> Iterator[JobQueue]:
    """The queue `queue_url` names, with a fast backoff."""
    q = open_queue(queue_url, backoff=FAST)
    yield q
    q.close()


@contextlib.contextmanager
def table_queue(store: ms.Store) -> Iterator[JobQueue]:
    """The queue in the store's own ``jobs`` table, whatever queue the store's config names
    (the ``postgres_store`` fixture names Redis), opened through `open_queue`.

    A view of the same store (its engine, no second connection string: a rendered URL would
    hold the password) whose config names the table queue."""
    view = ms.Store(
        engine=store.engine,
        tier=store.tier,
        capabilities=store.capabilities,
        config=attrs.evolve(store.config, queue=ms.QueueConfig(type=ms.QueueType.DATABASE)),
        url=store._url,
    )
    queue = open_queue(view)  # not owned: closing the queue leaves the store open
    try:
        yield queue
    finally:
        queue.close()


def wait_for(check: Callable[[], object], *, timeout: float = 15.0, what: str = "condition") -> object:
    """Poll check until it returns something truthy, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def spawn_child(*args: str) -> subprocess.Popen[bytes]:
    """Start tests/storage/_queue_child.py with this worktree's sources first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storage._queue_child", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def unique_kind() -> str:
    return f"test.{uuid.uuid4().hex[:8]}"
