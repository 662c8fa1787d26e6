"""Store fixtures over every backend: SQLite, PostgreSQL without pgvector, PostgreSQL + pgvector."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

import mosaic_storage as ms

pytest_plugins = ["tests._services", "tests.storage._queues"]

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

BACKENDS = ("sqlite", "postgres", "pgvector")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user's Mosaic config or data."""
    home = tmp_path_factory.mktemp("mosaic-home")
    monkeypatch.setenv("MOSAIC_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    for name in ms._config.ENV_VARS:  # type: ignore[attr-defined]
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sqlite_store(tmp_path: os.PathLike[str]) -> Iterator[ms.Store]:
    """A fresh SQLite file store (local tier)."""
    with ms.open_store(f"sqlite:///{tmp_path}/brain.db") as store:
        yield store


@pytest.fixture
def postgres_store(request: pytest.FixtureRequest, redis_url: str) -> Iterator[ms.Store]:
    """A fresh PostgreSQL store without pgvector, opened as the standalone tier.

    On the server from ``MOSAIC_TEST_POSTGRES_URL`` (which has no pgvector) when set; else on
    the embedded server, where the standalone tier keeps embeddings as bytes and never uses
    the extension.
    """
    server = request.getfixturevalue("postgres_server") or request.getfixturevalue("pgvector_server")
    url = server.create_database("store")
    config = ms.MosaicConfig(
        tier=ms.StorageTier.STANDALONE,
        storage=ms.StorageConfig(url=url),
        queue=ms.QueueConfig(type=ms.QueueType.REDIS, url=redis_url),
    )
    try:
        with ms.open_store(config) as store:
            assert not store.capabilities.vector
            yield store
    finally:
        server.drop_database(url)


@pytest.fixture
def pgvector_store(pgvector_url: str) -> Iterator[ms.Store]:
    """A fresh PostgreSQL + pgvector store."""
    with ms.open_store(pgvector_url) as store:
        assert store.capabilities.vector
        yield store


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> ms.Store:
    """The same test on every backend: SQLite, PostgreSQL, PostgreSQL + pgvector."""
    return request.getfixturevalue(f"{request.param}_store")  # type: ignore[no-any-return]


@pytest.fixture
def migrated_store(store: ms.Store) -> ms.Store:
    """`store`, migrated to head."""
    ms.upgrade(store)
    return store
