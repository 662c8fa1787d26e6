"""Schema migrations: alembic, shipped inside the package and run through `alembic.command`."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ._errors import SchemaError
from ._redact import redact

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ._store import Store

VERSION_TABLE = "mosaic_alembic_version"
HNSW_INDEX = "ix_insights_embedding_hnsw"
# pgvector's HNSW indexes `vector` up to 2,000 dimensions and `halfvec` up to 4,000.
HNSW_MAX_VECTOR_DIM = 2000
HNSW_MAX_HALFVEC_DIM = 4000
# Keyword search is backend-specific and lives outside the models (see revision 0002).
FTS_TABLE = "insights_fts"
SEARCH_VECTOR_COLUMN = "search_vector"
SEARCH_VECTOR_INDEX = "ix_insights_search_vector"
_OPTION_KEYS = ("mosaic_vector", "mosaic_embedding_dim")


def hnsw_index_ddl(dim: int) -> str | None:
    """The HNSW (cosine) index for a ``vector(dim)`` embedding column, or None when none can be built.

    Up to 2,000 dimensions it indexes the vectors; up to 4,000 their half-precision cast (the
    table keeps full precision); past that pgvector's HNSW cannot index them and search is exact.
    """
    if dim <= HNSW_MAX_VECTOR_DIM:
        return f"CREATE INDEX {HNSW_INDEX} ON insights USING hnsw (embedding vector_cosine_ops)"
    if dim <= HNSW_MAX_HALFVEC_DIM:
        return (
            f"CREATE INDEX {HNSW_INDEX} ON insights "
            f"USING hnsw ((embedding::halfvec({int(dim)})) halfvec_cosine_ops)"
        )
    return None


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


@functools.cache
def _scripts() -> ScriptDirectory:
    """The revisions this SDK ships (read once: they are files of the installed package)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "mosaic_storage:_alembic")
    return ScriptDirectory.from_config(config)


def head() -> str:
    """The newest schema revision this SDK ships."""
    revision = _scripts().get_current_head()
    if revision is None:  # pragma: no cover - the package always ships revisions
        raise SchemaError("no schema revisions found in mosaic_storage")
    return revision


def reaches(revision: str, minimum: str) -> bool:
    """Whether ``revision`` is ``minimum`` or a later revision; both must be known to this SDK."""
    return any(script.revision == minimum for script in _scripts().iterate_revisions(revision, "base"))


def current(store: Store) -> str | None:
    """The store's schema revision, or ``None`` for an empty database."""
    with store.engine.connect() as conn:
        return revision_of(conn, store.schema)


def revision_of(conn: sa.Connection, schema: str | None = None) -> str | None:
    """The schema revision of the database behind an open connection (``None``: empty)."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
    )
    return context.get_current_revision()


def is_known_revision(revision: str) -> bool:
    """Whether this SDK ships ``revision`` (a database at an unknown one was migrated by a newer SDK)."""
    from alembic.util import CommandError

    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


@contextlib.contextmanager
def _migration_connection(store: Store) -> Iterator[sa.Connection]:
    """A connection in one transaction for a migration run.

    On SQLite the transaction is begun explicitly, so DDL is inside it too. Foreign keys are
    off while a migration runs: batch mode rebuilds tables by
    copy-and-drop, and with them on, dropping a parent table would cascade-delete its
    children's rows. The result is checked with ``PRAGMA foreign_key_check`` before commit.
    """
    with store.engine.connect() as conn:
        sqlite = store.dialect == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            conn.commit()  # ends SQLAlchemy's autobegun transaction; the pragma stays set
        try:
            with conn.begin():
                if sqlite:
                    # pysqlite begins a transaction lazily, before DML only: DDL would commit
                    # one statement at a time, and a failed run would leave half a migration.
                    conn.exec_driver_sql("BEGIN")
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise SchemaError(
                            f"the migration left rows with dangling foreign keys: {broken[:5]}",
                            remediation="nothing was changed; please report this as a bug",
                        )
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")
                conn.commit()


def _run(store: Store, action: str, revision: str) -> None:
    from alembic import command
    from alembic.util import CommandError

    try:
        with _migration_connection(store) as conn:
            if action == "upgrade" and store.dialect == "postgresql":
                if store.schema:
                    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"')
                if store.capabilities.vector:
                    _create_vector_extension(conn)
            getattr(command, action)(_alembic_config(store, conn), revision)
    except CommandError as err:
        raise SchemaError(
            f"cannot {action} to {revision!r}: {err}",
            remediation=f"use a revision from `mosaic db current` (head is {head()}) or 'base'",
        ) from None
    except sa.exc.DBAPIError as err:
        raise SchemaError(
            f"{action} to {revision!r} failed; nothing was changed: {redact(err.orig).strip()}",
            remediation="check the database user's privileges, then run it again",
        ) from None


def upgrade(store: Store, revision: str = "head") -> str | None:
    """Migrate the store's schema up to ``revision`` (default: head); returns the new revision.

    Runs in one transaction: on any error nothing is changed. On PostgreSQL with pgvector this
    also runs ``CREATE EXTENSION vector`` (in ``public``) when it is not installed yet.

    Raises:
        SchemaError: an unknown revision, or the database refused a change.
    """
    _run(store, "upgrade", revision)
    return current(store)


def _create_vector_extension(conn: sa.Connection) -> None:
    if conn.exec_driver_sql("select 1 from pg_extension where extname = 'vector'").scalar():
        return
    try:
        with conn.begin_nested():
            # In public, so that stores in several named schemas share one extension.
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
    except sa.exc.DBAPIError as err:
        raise SchemaError(
            f"cannot create the pgvector extension: {str(err.orig).strip().splitlines()[0]}",
            remediation=(
                "ask a superuser to run CREATE EXTENSION vector; in this database, or open it "
                "with a config naming the standalone tier to keep embeddings without pgvector"
            ),
        ) from None


def downgrade(store: Store, revision: str) -> str | None:
    """Migrate the store's schema down to ``revision`` (``base`` drops every Mosaic table).

    Raises:
        SchemaError: an unknown revision, or the database refused a change.
    """
    _run(store, "downgrade", revision)
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
                "version_table_schema": store.schema,
                "mosaic_vector": store.capabilities.vector,
                "mosaic_embedding_dim": store.capabilities.embedding_dim,
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
    """Embedding columns must be ``vector(dim)`` on pgvector stores, bytes elsewhere."""
    from ._types import Embedding

    if not isinstance(metadata_type, Embedding):
        return None
    is_vector = "vector" in type(inspected_type).__name__.lower() or "vector" in str(inspected_type).lower()
    is_bytes = isinstance(inspected_type, sa.LargeBinary)
    vector_expected = context.opts.get("mosaic_vector")
    if vector_expected is None:  # autogenerating a revision: either form is the model's
        return not (is_vector or is_bytes)
    if not vector_expected:
        return not is_bytes
    dim = getattr(inspected_type, "dim", None)
    return not (is_vector and dim in (None, context.opts.get("mosaic_embedding_dim")))
