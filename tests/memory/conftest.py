"""Memory fixtures: a `memory` on every backend, over the migrated `store` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import mosaic_storage as ms
from mosaic_memory import Memory, open_memory


@pytest.fixture
def memory(migrated_store: ms.Store) -> Iterator[Memory]:
    """Memory with the default hashing embedder on SQLite, PostgreSQL, and PostgreSQL + pgvector."""
    with open_memory(migrated_store) as mem:
        yield mem
