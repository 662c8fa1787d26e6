"""`open_store`: one handle on the storage of any tier, with its engine and what it can do."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ._config import (
    MosaicConfig,
    QueueType,
    StorageConfig,
    StorageTier,
    check_storage_url,
    url_scheme,
)
from ._detect import REMEDIATIONS, postgres_connect_error, raise_for_failure, run_probes
from ._errors import ConfigError, SchemaError, TierDetectionError
from ._extras import require
from ._redact import redact, remember_secrets_in_url
from ._types import VECTOR_FLAG

T = TypeVar("T")

META_TABLE = "store_meta"
DEFAULT_EMBEDDING_DIM = 384

Dialect = Literal["sqlite", "postgresql"]


@attrs.frozen
class Capabilities:
    """What a store can do, found out when it was opened."""

    dialect: Dialect
    server_version: str
    vector: bool
    """Embeddings are pgvector ``vector(dim)`` with an HNSW index (else float32 bytes)."""
    vector_available: bool
    """The server could provide pgvector (installed or installable), whether used or not."""
    queue: QueueType
    embedding_dim: int


class Store:
    """An open store: the SQLAlchemy engine, the tier and its capabilities.

    Use it as a context manager, or call `close`. Build it with `open_store`.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        tier: StorageTier,
        capabilities: Capabilities,
        config: MosaicConfig,
        url: str,
        closer: Any = None,
    ) -> None:
        self.engine = engine
        self.tier = tier
        self.capabilities = capabilities
        self.config = config
        self._url = url
        self._closer = closer
        self._closed = False

    @property
    def url(self) -> str:
        """The database URL with credentials masked (safe to print)."""
        return redact(self._url)

    @property
    def dialect(self) -> Dialect:
        """``sqlite`` or ``postgresql``."""
        return self.capabilities.dialect

    @property
    def schema(self) -> str | None:
        """The PostgreSQL schema the tables live in (``None``: the database's default)."""
        return self.config.storage.schema

    def close(self) -> None:
        """Dispose of the engine's connections and stop an embedded server this store started."""
        if self._closed:
            return
        self._closed = True
        self.engine.dispose()
        if self._closer is not None:
            self._closer()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Store tier={self.tier.value} dialect={self.dialect} url={self.url!r} "
            f"vector={self.capabilities.vector}>"
        )


def open_store(
    config_or_url: MosaicConfig | str | os.PathLike[str] | None = None,
) -> Store:
    """Open the store named by a config, a URL, or (with no argument) `load_config`.

    Accepts ``sqlite:///PATH``, any libpq ``postgresql://`` URI (unix sockets included:
    ``postgresql://user@/db?host=/run/dir``) and ``embedded://DIR`` (an embedded PostgreSQL
    with pgvector, started in DIR and stopped on close).

    Given a bare URL, the capabilities come from what the server has and only storage is
    checked. Given a config, everything its tier needs is checked (the queue included).

    Raises:
        ConfigError: the URL or config is malformed.
        TierDetectionError: a service the tier needs is unreachable or lacks something.
        MissingExtraError: the driver for this URL is not installed.
    """
    if config_or_url is None:
        from ._config import load_config

        config = load_config()
        tier_given = True
    elif isinstance(config_or_url, MosaicConfig):
        config = config_or_url
        tier_given = True
    else:
        url = os.fspath(config_or_url)
        check_storage_url(url, field="url")
        remember_secrets_in_url(url)
        config = MosaicConfig(storage=StorageConfig(url=url))
        tier_given = False

    url = config.storage.url
    scheme = url_scheme(url)
    closer = None
    if scheme == "embedded":
        from ._embedded import EmbeddedPostgres

        data_dir = Path(url.partition("://")[2]).expanduser().resolve()
        server = EmbeddedPostgres(data_dir)
        closer = server.stop
        db_url = server.url
    else:
        db_url = url
    try:
        if scheme == "sqlite" and config.storage.schema is not None:
            raise ConfigError(
                "a schema is a PostgreSQL setting; SQLite has none",
                field="storage.schema",
                source=str(config.source) if config.source else None,
                remediation=REMEDIATIONS["schema_on_sqlite"],
            )
        if tier_given:
            # Fail fast, with the words `mosaic doctor` would use, before any driver traceback.
            raise_for_failure(run_probes(config, timeout=None, storage_url=db_url))
        engine = _sqlite_engine(db_url) if scheme == "sqlite" else _postgres_engine(db_url, config.storage)
    except BaseException:
        if closer is not None:
            closer()
        raise
    try:
        capabilities = _probe(engine, config, tier_given=tier_given)
        tier = config.tier if tier_given else _inferred_tier(scheme, capabilities)
        setattr(engine.dialect, VECTOR_FLAG, capabilities.vector)
    except BaseException:
        engine.dispose()
        if closer is not None:
            closer()
        raise
    return Store(
        engine=engine,
        tier=tier,
        capabilities=capabilities,
        config=config if tier_given else attrs.evolve(config, tier=tier),
        url=db_url,
        closer=closer,
    )


def _inferred_tier(scheme: str, capabilities: Capabilities) -> StorageTier:
    if scheme in ("sqlite", "embedded"):
        return StorageTier.LOCAL
    return StorageTier.FEDERATED if capabilities.vector else StorageTier.STANDALONE


def _sqlite_engine(url: str) -> Engine:
    sa_url = sa.make_url(url)
    database = sa_url.database
    if database and database != ":memory:":
        path = Path(database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TierDetectionError(
                f"cannot create the directory for {path}: {err.strerror}",
                service="sqlite",
                remediation=f"choose a writable location, or create {path.parent}",
            ) from None
        sa_url = sa_url.set(database=str(path))
    engine = sa.create_engine(sa_url.set(drivername="sqlite+pysqlite"))

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 10000")
        if database and database != ":memory:":
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA cache_size = -32768")
        cursor.close()

    return engine


def _postgres_engine(url: str, storage: StorageConfig) -> Engine:
    require("psycopg", extra="postgres", purpose="PostgreSQL storage")
    sa_url = sa.make_url(url).set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {"connect_timeout": max(1, round(storage.connect_timeout))}
    if storage.schema:
        # The schema first, then public: extensions such as pgvector live in public.
        connect_args["options"] = f"-c search_path={storage.schema},public"
    engine = sa.create_engine(
        sa_url,
        pool_size=storage.pool_size,
        max_overflow=storage.pool_size,
        connect_args=connect_args,
    )
    _ping_on_checkout(engine)
    return engine


# Set only by `run_read`, around its checkout: that read retries on a dead connection instead.
_PING_SKIPPED: contextvars.ContextVar[bool] = contextvars.ContextVar("mosaic_ping_skipped", default=False)
_FRESH = "mosaic_fresh"


def _ping_on_checkout(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, except for checkouts made by `run_read`.

    A pooled connection the server has closed (restart, failover, idle timeout) is found by a
    ping when it leaves the pool, and every older connection is replaced, exactly as
    ``pool_pre_ping=True`` does. The ping is a round trip; a read through `run_read` skips it
    and retries once on a fresh connection if the one it got turns out dead.
    """
    dialect = engine.dialect
    driver_error = dialect.loaded_dbapi.Error

    @sa.event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn: Any, record: Any) -> None:
        record.info[_FRESH] = True

    @sa.event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        # A connection made for this checkout needs no ping (nor does pre_ping ping it).
        if record.info.pop(_FRESH, False) or _PING_SKIPPED.get():
            return
        try:
            dialect.do_ping(dbapi_conn)
        except driver_error as err:
            if dialect.is_disconnect(err, dbapi_conn, None):
                # Invalidates this connection and every one pooled before now, then reconnects.
                raise sa.exc.InvalidatePoolError() from err
            raise


def run_read(engine: Engine, read: Callable[[sa.Connection], T], *, transaction: bool = False) -> T:
    """Run ``read`` (statements that only read) on a pooled connection, in one round trip each.

    On PostgreSQL the connection runs in autocommit, so no ``BEGIN``/``ROLLBACK`` pair wraps
    the statements, and it leaves the pool without the pre-ping. Each statement still sees one
    consistent snapshot (READ COMMITTED gives a multi-statement transaction no more). With
    ``transaction=True`` the statements run in one transaction instead (for ``SET LOCAL``,
    which also keeps them on one server connection behind a transaction-pooling proxy). If the
    server closed the connection, SQLAlchemy invalidates it and the pool's older connections,
    and ``read`` runs once more on a fresh one; a second failure is raised.
    """
    postgres = engine.dialect.name == "postgresql"
    for attempt in (1, 2):
        token = _PING_SKIPPED.set(True)
        try:
            conn = engine.connect()
        finally:
            _PING_SKIPPED.reset(token)
        try:
            with conn:
                if transaction:
                    with conn.begin():
                        return read(conn)
                if postgres:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                return read(conn)
        except sa.exc.DBAPIError as err:
            if attempt == 2 or not err.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _probe(engine: Engine, config: MosaicConfig, *, tier_given: bool) -> Capabilities:
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                version = str(conn.exec_driver_sql("select sqlite_version()").scalar())
                meta = read_meta(conn)
                return Capabilities(
                    dialect="sqlite",
                    server_version=version,
                    vector=False,
                    vector_available=False,
                    queue=config.queue.type,
                    embedding_dim=_meta_dim(meta, config),
                )
            version = str(conn.exec_driver_sql("show server_version").scalar())
            installed = conn.exec_driver_sql("select 1 from pg_extension where extname = 'vector'").scalar()
            # pgvector is not a trusted extension: only a superuser can create it.
            can_create = conn.exec_driver_sql(
                "select rolsuper from pg_roles where rolname = current_user"
            ).scalar()
            available = conn.exec_driver_sql(
                "select 1 from pg_available_extensions where name = 'vector'"
            ).scalar()
            meta = read_meta(conn, config.storage.schema)
    except sa.exc.OperationalError as err:
        if engine.dialect.name == "sqlite":
            raise TierDetectionError(
                f"cannot open {engine.url.database}: {redact(err.orig)}",
                service="sqlite",
                remediation=REMEDIATIONS["sqlite_not_database"],
            ) from None
        raise postgres_connect_error(err.orig, str(engine.url), config.storage.connect_timeout) from None
    except sa.exc.DBAPIError as err:
        raise TierDetectionError(
            f"connected, but could not read what the database offers: {redact(err.orig).strip()}",
            service="sqlite" if engine.dialect.name == "sqlite" else "postgres",
            remediation=REMEDIATIONS["sqlite_not_database"]
            if engine.dialect.name == "sqlite"
            else "check that the database user may read the Mosaic tables",
        ) from None
    if "embedding_storage" in meta:
        vector = meta["embedding_storage"] == "vector"
    elif tier_given and config.tier is StorageTier.STANDALONE:
        vector = False
    else:
        vector = bool(installed or (available and can_create))
    return Capabilities(
        dialect="postgresql",
        server_version=version,
        vector=vector,
        vector_available=bool(installed or available),
        queue=config.queue.type,
        embedding_dim=_meta_dim(meta, config),
    )


def read_meta(conn: sa.Connection, schema: str | None = None) -> dict[str, str]:
    # Qualified by the configured schema: never a store of the same name elsewhere on the path.
    if not sa.inspect(conn).has_table(META_TABLE, schema=schema):
        return {}
    table = f'"{schema}".{META_TABLE}' if schema else META_TABLE
    rows = conn.execute(sa.text(f"select key, value from {table}")).all()
    return {str(key): str(value) for key, value in rows}


def _meta_dim(meta: dict[str, str], config: MosaicConfig) -> int:
    if "embedding_dim" in meta:
        return int(meta["embedding_dim"])
    return config.memory.embedder.dim


def require_schema(store: Store, *, at_least: str, needed_by: str) -> None:
    """Raise `SchemaError` unless the store's schema is ``at_least`` or a later revision this SDK ships.

    A component asks for the oldest revision its tables work with, not for the head: new code
    runs on the previous schema while a deployment upgrades (deploy, then migrate). A
    revision this SDK does not ship was written by a newer SDK, whose tables this code may
    not understand: refused, with the package to upgrade.
    """
    from ._migrations import current, head, is_known_revision, reaches

    rev = current(store)
    if rev is None:
        raise SchemaError(
            f"the database has no mosaic schema; {needed_by} needs revision {at_least} or later",
            remediation=REMEDIATIONS["schema_upgrade"],
        )
    if not is_known_revision(rev):
        raise SchemaError(
            f"the database schema is at revision {rev}, which this SDK (schema {head()}) does not know:"
            f" a newer mosaic-stack migrated it, and {needed_by} here may not understand its tables",
            remediation=REMEDIATIONS["schema_newer"],
        )
    if not reaches(rev, at_least):
        raise SchemaError(
            f"the database schema is at revision {rev}; {needed_by} needs {at_least} or later",
            remediation=REMEDIATIONS["schema_upgrade"],
        )
