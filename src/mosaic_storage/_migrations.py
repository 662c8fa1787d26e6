"""Schema migrations: alembic, shipped inside the package and run through `alembic.command`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ._errors import SchemaError

if TYPE_CHECKING:
    from alembic.config import Config

    from ._store import Store

VERSION_TABLE = "mosaic_alembic_version"
HNSW_INDEX = "ix_insights_embedding_hnsw"
# Keyword search is backend-specific and lives outside the models (see revision 0002).
FTS_TABLE = "insights_fts"
SEARCH_VECTOR_COLUMN = "search_vector"
SEARCH_VECTOR_INDEX = "ix_insights_search_vector"
_OPTION_KEYS = ("mosaic_vector", "mosaic_embedding_dim")


def _alembic_config(store: Store, connection: sa.Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "mosaic_storage:_alembic")
    config.attributes["connection"] = connection
    config.attributes["mosaic_vector"] = store.capabilities.vector
    config.attributes["mosaic_embedding_dim"] = store.capabilities.embedding_dim
    config.attributes["mosaic_schema"] = store.schema
    return config


def migration_options() -> dict[str, Any]:
    """Inside a migration: whether embeddings are pgvector, and their dimension."""
    from alembic import context

    attributes = context.config.attributes
    return {key: attributes.get(key) for key in _OPTION_KEYS}


def head() -> str:
    """The newest schema revision this SDK ships."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "mosaic_storage:_alembic")
    revision = ScriptDirectory.from_config(config).get_current_head()
    if revision is None:  # pragma: no cover - the package always ships revisions
        raise SchemaError("no schema revisions found in mosaic_storage")
    return revision


def current(store: Store) -> str | None:
    """The store's schema revision, or ``None`` for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade(store: Store, revision: str = "head") -> str | None:
    """Migrate the store's schema up to ``revision`` (default: head); returns the new revision.

    On PostgreSQL with pgvector available this also runs ``CREATE EXTENSION vector``.
    """
    from alembic import command

    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            if store.schema:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"')
            if store.capabilities.vector:
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
        command.upgrade(_alembic_config(store, conn), revision)
    return current(store)


def downgrade(store: Store, revision: str) -> str | None:
    """Migrate the store's schema down to ``revision`` (``base`` drops every Mosaic table)."""
    from alembic import command

    with store.engine.begin() as conn:
        command.downgrade(_alembic_config(store, conn), revision)
    return current(store)


def schema_diff(store: Store) -> list[Any]:
    """Differences between the models and the live database (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from .schema import metadata

    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": compare_type,
                "include_object": include_object,
                "version_table": VERSION_TABLE,
            },
        )
        return list(compare_metadata(context, metadata))


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """What autogenerate compares: every Mosaic table, except objects that depend on the backend.

    Those are the HNSW index (pgvector) and keyword search: the FTS5 table and its shadow
    tables (SQLite), the generated tsvector column and its GIN index (PostgreSQL).
    """
    if type_ == "index" and name in (HNSW_INDEX, SEARCH_VECTOR_INDEX):
        return False
    if type_ == "table" and name is not None and name.startswith(FTS_TABLE) and compare_to is None:
        return False
    if type_ == "column" and name == SEARCH_VECTOR_COLUMN and compare_to is None:
        return False
    return not (type_ == "table" and reflected and compare_to is None and name == VERSION_TABLE)


def compare_type(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: Any,
    metadata_type: Any,
) -> bool | None:
    """Embedding columns are ``vector`` or bytes by backend; everything else: alembic's default."""
    from ._types import Embedding

    if isinstance(metadata_type, Embedding):
        vector = type(inspected_type).__name__.lower() in ("vector", "nulltype") or (
            "vector" in str(inspected_type).lower()
        )
        bytes_like = isinstance(inspected_type, sa.LargeBinary)
        return not (vector or bytes_like)
    return None
