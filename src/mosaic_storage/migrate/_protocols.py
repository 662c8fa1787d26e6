"""The two sides of a migration: where rows come from and where they go."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import attrs

Row = tuple[Any, ...]
RowFilter = tuple[str, frozenset[str]]
"""``(column, values)``: leave out rows whose ``column`` is one of ``values``; a value ending
in ``*`` leaves out every row whose ``column`` starts with what precedes the star."""


@attrs.frozen
class TargetColumn:
    """A column of a target table, as its catalog describes it."""

    name: str
    type_name: str
    """The type's name in the catalog: ``text``, ``jsonb``, ``vector``, ``timestamptz``..."""
    type_oid: int
    required: bool
    """NOT NULL without a default: the source must provide it."""
    generated: bool = False
    """Computed by the database; never written."""
    vector_dim: int | None = None
    """The dimension of a ``vector(dim)`` column."""


@attrs.frozen
class BatchResult:
    """What one committed batch did."""

    inserted: int
    existing: int = 0
    conflict_keys: tuple[str, ...] = ()
    staged: bool = False
    """Written through the staging table (asked for, or because COPY found the key taken)."""


@runtime_checkable
class MigrationSource(Protocol):
    """A database to migrate from: lists tables, counts rows, reads rows in batches.

    Names are snake_case whatever the source calls them (``userId`` arrives as ``user_id``).
    Reads see one snapshot of the source for the whole run.
    """

    @property
    def description(self) -> str:
        """Where the rows come from, credentials masked."""
        ...

    def schema_revision(self) -> str | None:
        """The source's Mosaic schema revision, or ``None`` if it has none (a foreign or older store)."""
        ...

    def tables(self) -> list[str]:
        """The source's data tables (search-index tables excluded)."""
        ...

    def search_index_tables(self) -> list[str]:
        """Full-text index tables (FTS5 virtual tables and their shadow tables): not data."""
        ...

    def columns(self, table: str) -> list[str]:
        """The table's columns."""
        ...

    def count(self, table: str, *, exclude: RowFilter | None = None) -> int:
        """The table's row count."""
        ...

    def embedding_mismatch(self, table: str, column: str, dim: int) -> tuple[str, float] | None:
        """The key and dimension of the first stored embedding whose dimension is not ``dim``."""
        ...

    def embedding_dim(self) -> int | None:
        """The dimension of the source's embeddings, if it knows one."""
        ...

    def batches(
        self,
        table: str,
        columns: Sequence[str],
        batch_size: int,
        *,
        exclude: RowFilter | None = None,
    ) -> Iterator[list[Row]]:
        """The table's rows as tuples in ``columns`` order, ``batch_size`` at a time, streamed."""
        ...

    def dicts(self, table: str, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        """The table's rows as plain dicts with snake_case keys, ``batch_size`` at a time."""
        ...

    def close(self) -> None:
        """Release the source's connections."""
        ...


@runtime_checkable
class MigrationTarget(Protocol):
    """A database to migrate into: preflight facts, an advisory lock, idempotent batch writes, counts."""

    @property
    def description(self) -> str:
        """Where the rows go, credentials masked."""
        ...

    @property
    def uses_vector(self) -> bool:
        """Embeddings are stored as pgvector ``vector(dim)`` (the federated tier)."""
        ...

    @property
    def embedding_dim(self) -> int:
        """The dimension of embeddings the target stores as bytes (from its ``store_meta``)."""
        ...

    def schema_revision(self) -> str | None:
        """The target's Mosaic schema revision (``None``: empty database)."""
        ...

    def check_ready(self) -> None:
        """Raise if the target cannot take rows as it is (e.g. pgvector is missing)."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Hold the migration lock for the block; raise at once if another run holds it."""
        ...

    def initialize(self, embedding_dim: int) -> str | None:
        """Create or upgrade the Mosaic schema to head (under the lock); returns the revision."""
        ...

    def columns(self, table: str) -> list[TargetColumn]:
        """The table's columns (empty if the table does not exist)."""
        ...

    def primary_key(self, table: str) -> list[str]:
        """The table's primary-key columns."""
        ...

    def count(self, table: str) -> int:
        """The table's row count."""
        ...

    def has_rows(self, table: str) -> bool:
        """Whether the table holds any row."""
        ...

    def defer_indexes(self, table: str) -> tuple[str, ...]:
        """Drop the table's plain indexes before a bulk load, remembering them durably; their names."""
        ...

    def restore_indexes(self, table: str | None = None) -> tuple[str, ...]:
        """Build the indexes deferred for ``table`` (``None``: every table); their names."""
        ...

    def encoder(self, table: str, columns: Sequence[str]) -> Callable[[list[Row]], list[Row]] | None:
        """A function that turns source rows into what `write_batch` sends (``None``: as they are).

        It runs on the reading thread, so conversion overlaps with writing.
        """
        ...

    def write_batch(
        self, table: str, columns: Sequence[str], rows: list[Row], *, staged: bool
    ) -> BatchResult:
        """Write one batch in one transaction.

        ``staged`` false: COPY straight into the table (it was empty when the run took the lock).
        ``staged`` true: COPY into a staging table, then ``INSERT ... ON CONFLICT (pk) DO NOTHING``;
        rows whose key exists with different content come back as conflicts.
        """
        ...

    def close(self) -> None:
        """Release the target's connections."""
        ...
