"""`PostgresTarget`: write a migration into PostgreSQL, with or without pgvector, through COPY."""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import sqlalchemy as sa

from .._errors import MigrationError, TierDetectionError
from .._redact import redact
from .._store import Store, open_store
from . import _encode
from ._names import LOCK_NAME
from ._protocols import BatchResult, Row, TargetColumn

_LINE = re.compile(r"\bline (\d+)")
DEFERRED_INDEX = "migrate_tier.deferred_index."
_JSONB_OID = 3802
_JSON_OID = 114
_TIMESTAMP_TYPES = {"timestamptz": True, "timestamp": False}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _embedding_columns() -> dict[str, set[str]]:
    """Model columns typed `Embedding`: bytes or ``vector(dim)`` depending on the tier."""
    from .._types import Embedding
    from ..schema import metadata

    found: dict[str, set[str]] = {}
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, Embedding):
                found.setdefault(table.name, set()).add(column.name)
    return found


class PostgresTarget:
    """A `MigrationTarget` on PostgreSQL: COPY in one transaction per batch, guarded by an advisory lock.

    Embeddings land as ``vector(dim)`` where the target uses pgvector (federated tier) and as
    float32 bytes elsewhere (standalone tier).
    """

    def __init__(self, target: str | os.PathLike[str] | Store, *, create: bool = True) -> None:
        if isinstance(target, Store):
            self._store = target
            self._owned = False
        else:
            url = os.fspath(target)
            data_dir = url.partition("://")[2]
            if not create and url.startswith("embedded://") and not os.path.isdir(data_dir):
                raise MigrationError(
                    f"the embedded target {data_dir} does not exist, and a dry run creates nothing",
                    remediation="run without --dry-run (with --init-target) to create and fill it",
                )
            self._store = open_store(url)
            self._owned = True
        if self._store.dialect != "postgresql":
            url = self._store.url
            if self._owned:
                self._store.close()
            raise MigrationError(
                f"the target {url} is not PostgreSQL",
                remediation="migrate-tier moves data up to a postgresql:// (or embedded://) database",
            )
        self._columns: dict[str, list[TargetColumn]] = {}
        self._keys: dict[str, list[str]] = {}
        self._uniques: dict[str, list[list[str]]] = {}
        self._writer: Any = None
        self._lock_pid: int | None = None
        self._formats: dict[str, bool] = {}
        self._embeddings = _embedding_columns()

    @property
    def description(self) -> str:
        """Where the rows go, credentials masked."""
        return self._store.url

    @property
    def store(self) -> Store:
        """The open target store."""
        return self._store

    @property
    def uses_vector(self) -> bool:
        """Embeddings are pgvector ``vector(dim)`` (the federated tier)."""
        return self._store.capabilities.vector

    @property
    def embedding_dim(self) -> int:
        """The dimension the target records for its embeddings."""
        return self._store.capabilities.embedding_dim

    # --- catalog ---------------------------------------------------------------------------

    def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            with self._store.engine.connect() as conn:
                return list(conn.exec_driver_sql(sql, params).all())
        except sa.exc.DBAPIError as err:
            raise MigrationError(
                f"cannot read the target {self.description}: {redact(err.orig or err).splitlines()[0]}",
                remediation="check that the target database is reachable (mosaic doctor)",
            ) from None

    def schema_revision(self) -> str | None:
        """The target's Mosaic schema revision (``None``: empty database)."""
        from .._migrations import current

        return current(self._store)

    def check_ready(self) -> None:
        """Raise `TierDetectionError` when the target stores vectors but pgvector is not installed."""
        if not self.uses_vector:
            return
        if not self._fetch("SELECT 1 FROM pg_extension WHERE extname = 'vector'"):
            raise TierDetectionError(
                "the target stores embeddings as vector(dim), but the pgvector extension is not installed",
                service="pgvector",
                remediation="run CREATE EXTENSION vector; in the target database (see `mosaic doctor`)",
            )

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``pg_try_advisory_lock(hashtext('mosaic-migrate-tier'))`` on a connection of its own."""
        try:
            raw = self._store.engine.raw_connection()
        except sa.exc.DBAPIError as err:
            raise MigrationError(f"cannot connect to the target {self.description}: {redact(err)}") from None
        try:
            conn: Any = raw.driver_connection
            conn.autocommit = True
            row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (LOCK_NAME,)).fetchone()
            if not row or not row[0]:
                raise MigrationError(
                    f"another migration holds the lock on {self.description}",
                    remediation=(
                        "wait for it to finish; if none is running, the lock goes with its connection: "
                        "find it with SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
                    ),
                )
            self._lock_pid = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            try:
                yield
            finally:
                self._lock_pid = None
                with contextlib.suppress(Exception):
                    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (LOCK_NAME,))
        finally:
            # Closing the connection releases the lock whatever state it is in.
            raw.invalidate()

    def initialize(self, embedding_dim: int) -> str | None:
        """Create or upgrade the Mosaic schema to head, embeddings of ``embedding_dim``."""
        from .._migrations import upgrade

        capabilities = attrs.evolve(self._store.capabilities, embedding_dim=embedding_dim)
        shaped = Store(
            engine=self._store.engine,
            tier=self._store.tier,
            capabilities=capabilities,
            config=self._store.config,
            url=self._store._url,
        )
        try:
            revision = upgrade(shaped)
        except sa.exc.DBAPIError as err:
            detail = redact(err.orig or err).strip().splitlines()[0]
            remediation = "check that the target role may create tables in that database"
            if "extension" in detail:
                remediation = (
                    "ask a superuser to run CREATE EXTENSION vector; in the target database "
                    "(see `mosaic doctor`), then run the same command again"
                )
            raise MigrationError(
                f"cannot create the schema on the target {self.description}: {detail}",
                remediation=remediation,
            ) from None
        self._store.capabilities = capabilities
        self._columns.clear()
        self._keys.clear()
        self._formats.clear()
        return revision

    def columns(self, table: str) -> list[TargetColumn]:
        """The table's columns from the catalog (empty when the table does not exist)."""
        if table not in self._columns:
            rows = self._fetch(
                "SELECT a.attname, t.typname, a.atttypid, a.attnotnull AND NOT a.atthasdef, "
                "a.attgenerated <> '', a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                (_quote(table),),
            )
            self._columns[table] = [
                TargetColumn(
                    name=str(name),
                    type_name=str(type_name),
                    type_oid=int(oid),
                    required=bool(required),
                    generated=bool(generated),
                    vector_dim=int(typmod) if type_name == "vector" and typmod > 0 else None,
                )
                for name, type_name, oid, required, generated, typmod in rows
            ]
        return self._columns[table]

    def primary_key(self, table: str) -> list[str]:
        """The table's primary-key columns."""
        if table not in self._keys:
            rows = self._fetch(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary ORDER BY a.attnum",
                (_quote(table),),
            )
            self._keys[table] = [str(row[0]) for row in rows]
        return self._keys[table]

    def unique_keys(self, table: str) -> list[list[str]]:
        """The column lists of the table's unique indexes other than its primary key."""
        if table not in self._uniques:
            rows = self._fetch(
                "SELECT i.indexrelid, a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND NOT i.indisprimary "
                "AND i.indpred IS NULL AND i.indexprs IS NULL ORDER BY i.indexrelid, a.attnum",
                (_quote(table),),
            )
            grouped: dict[Any, list[str]] = {}
            for index, column in rows:
                grouped.setdefault(index, []).append(str(column))
            self._uniques[table] = list(grouped.values())
        return self._uniques[table]

    def count(self, table: str) -> int:
        """The table's row count."""
        return int(self._fetch(f"SELECT count(*) FROM {_quote(table)}")[0][0])

    def has_rows(self, table: str) -> bool:
        """Whether the table holds any row."""
        return bool(self._fetch(f"SELECT EXISTS (SELECT 1 FROM {_quote(table)})")[0][0])

    # --- deferred indexes ------------------------------------------------------------------

    def defer_indexes(self, table: str) -> tuple[str, ...]:
        """Drop the table's plain (non-constraint) indexes before a bulk load; build them after.

        Building an index once is far cheaper than updating it row by row (an HNSW index by
        ~3x). Each definition is kept in ``store_meta`` in the transaction that drops it, so a
        crashed run loses none: the next run builds them when it has finished the table.
        """
        rows = self._fetch(
            "SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE i.indrelid = to_regclass(%s) AND NOT i.indisprimary AND NOT i.indisunique "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
            "ORDER BY c.relname",
            (_quote(table),),
        )
        if not rows:
            return ()
        conn = self._connection()
        with conn.transaction():
            for schema, name, definition in rows:
                conn.execute(
                    "INSERT INTO store_meta (key, value, updated_at) VALUES (%s, %s, now()) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (f"{DEFERRED_INDEX}{table}:{name}", definition),
                )
                conn.execute(f"DROP INDEX {_quote(schema)}.{_quote(name)}")
        return tuple(str(row[1]) for row in rows)

    def restore_indexes(self, table: str | None = None) -> tuple[str, ...]:
        """Build the indexes a run deferred (for ``table``, or all of them) and forget them."""
        prefix = f"{DEFERRED_INDEX}{table}:" if table else DEFERRED_INDEX
        rows = self._fetch(
            "SELECT key, value FROM store_meta WHERE starts_with(key, %s) ORDER BY key", (prefix,)
        )
        if not rows:
            return ()
        conn = self._connection()
        with conn.transaction():
            # Room to build the HNSW graph in memory: much faster than spilling to disk.
            conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
            for key, definition in rows:
                conn.execute(_checked_index_definition(str(key), str(definition)))
                conn.execute("DELETE FROM store_meta WHERE key = %s", (key,))
        return tuple(str(key).rpartition(":")[2] for key, _ in rows)

    # --- encoding --------------------------------------------------------------------------

    def _binary(self, table: str, columns: Sequence[str]) -> bool:
        """Binary COPY for tables with a vector column: formatting vectors as text costs ~40x more."""
        if table not in self._formats:
            by_name = {column.name: column for column in self.columns(table)}
            types = {by_name[name].type_name for name in columns}
            binary = "vector" in types and types <= _BINARY_TYPES
            self._formats[table] = binary
        return self._formats[table]

    def encoder(self, table: str, columns: Sequence[str]) -> Callable[[list[Row]], list[Row]] | None:
        """Convert embeddings (and, for binary COPY, timestamps and JSON) of each row; ``None``: as is."""
        by_name = {column.name: column for column in self.columns(table)}
        key_index = _key_index(self.primary_key(table), columns)
        binary = self._binary(table, columns)
        converters: list[tuple[int, Callable[[Any, Any], Any]]] = []
        for index, name in enumerate(columns):
            column = by_name[name]
            convert = self._converter(
                table, column, binary, embedding=name in self._embeddings.get(table, ())
            )
            if convert is not None:
                converters.append((index, convert))
        if not converters:
            return None

        def encode(rows: list[Row]) -> list[Row]:
            out: list[Row] = []
            for row in rows:
                values = list(row)
                key = row[key_index]
                for index, convert in converters:
                    value = values[index]
                    if value is not None:
                        try:
                            values[index] = convert(value, key)
                        except (ValueError, TypeError, OverflowError) as err:
                            raise MigrationError(
                                f"table {table}, row {key}: column {columns[index]} holds a value the "
                                f"target cannot take ({err})",
                                remediation="fix that value in the source, then run the same command again",
                            ) from None
                out.append(tuple(values))
            return out

        return encode

    def _converter(
        self, table: str, column: TargetColumn, binary: bool, *, embedding: bool
    ) -> Callable[[Any, Any], Any] | None:
        name = column.name
        if column.type_name == "vector":
            dim = column.vector_dim or self.embedding_dim
            array = functools.partial(_encode.embedding_array, table=table, column=name, dim=dim)
            if binary:
                return lambda value, key: _encode.vector_binary(array(value, key=key))
            return lambda value, key: _encode.vector_text(array(value, key=key))
        if embedding and column.type_name == "bytea":
            array = functools.partial(
                _encode.embedding_array, table=table, column=name, dim=self.embedding_dim
            )
            return lambda value, key: _encode.float32_bytes(array(value, key=key))
        if not binary:
            return None
        if column.type_name in _TIMESTAMP_TYPES:
            aware = _TIMESTAMP_TYPES[column.type_name]
            return lambda value, key: _encode.timestamp(value, aware=aware)
        if column.type_name == "jsonb":
            return lambda value, key: _encode.jsonb_value(value)
        if column.type_name == "json":
            return lambda value, key: _encode.json_value(value)
        return None

    # --- writing ---------------------------------------------------------------------------

    def _connection(self) -> Any:
        """The connection every batch is written on: autocommit, one explicit transaction per batch."""
        if self._writer is None:
            from psycopg.adapt import Dumper
            from psycopg.pq import Format

            try:
                raw = self._store.engine.raw_connection()
            except sa.exc.DBAPIError as err:
                raise MigrationError(
                    f"cannot connect to the target {self.description}: {redact(err.orig or err)}"
                ) from None
            conn: Any = raw.driver_connection
            conn.autocommit = True
            # SQLite keeps Mosaic's timestamps as UTC text without a zone.
            conn.execute("SET TimeZone = 'UTC'")
            vector = conn.execute("SELECT to_regtype('vector')::oid").fetchone()
            dumpers: list[tuple[type, int | None, Callable[[Any], bytes]]] = [
                (_encode.JsonbText, _JSONB_OID, lambda obj: b"\x01" + obj.encode()),
                (_encode.JsonText, _JSON_OID, lambda obj: obj.encode()),
                (_encode.VectorBinary, vector[0] if vector else None, bytes),
            ]
            for python_type, oid, dump in dumpers:
                if oid is None:
                    continue
                dumper = type(
                    f"_{python_type.__name__}Dumper",
                    (Dumper,),
                    {"oid": oid, "format": Format.BINARY, "dump": lambda self, obj, _dump=dump: _dump(obj)},
                )
                conn.adapters.register_dumper(python_type, dumper)
            self._writer = raw
        return self._writer.driver_connection

    def write_batch(
        self, table: str, columns: Sequence[str], rows: list[Row], *, staged: bool
    ) -> BatchResult:
        """Write one batch in one transaction: COPY straight in, or through staging + ON CONFLICT."""
        import psycopg

        conn = self._connection()
        if not staged:
            try:
                with conn.transaction():
                    self._copy(conn, table, table, columns, rows)
                    self._check_lock(conn)
                return BatchResult(inserted=len(rows))
            except psycopg.errors.UniqueViolation:
                # The table gained rows since the lock was taken (or a crashed run left some):
                # fall back to the path that skips existing keys.
                pass
            except psycopg.Error as err:
                raise self._batch_error(table, columns, rows, err) from None
        try:
            with conn.transaction():
                result = self._write_staged(conn, table, columns, rows)
                self._check_lock(conn)
                return result
        except psycopg.Error as err:
            raise self._batch_error(table, columns, rows, err) from None

    def _check_lock(self, conn: Any) -> None:
        """Before a batch commits: is the run's advisory lock still held?

        The lock lives on a connection of its own that sits idle while batches are written; a
        server timeout or an administrator can end it, and with it the lock. Then another run
        could start, so this one stops (the batch is rolled back).
        """
        if self._lock_pid is None:
            return
        held = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s)",
            (self._lock_pid,),
        ).fetchone()[0]
        if not held:
            raise MigrationError(
                f"the migration lost its lock on {self.description} (its connection was closed by the "
                "server or an administrator); this batch was rolled back, earlier batches are kept",
                remediation=(
                    "check the server's idle_session_timeout and that no one ends the run's connections, "
                    "then run the same command again"
                ),
            )

    def _copy(self, conn: Any, table: str, into: str, columns: Sequence[str], rows: list[Row]) -> None:
        names = ", ".join(_quote(name) for name in columns)
        binary = self._binary(table, columns)
        with conn.cursor() as cur:
            options = " (FORMAT BINARY)" if binary else ""
            with cur.copy(f"COPY {_quote(into)} ({names}) FROM STDIN{options}") as copy:
                if binary:
                    by_name = {column.name: column for column in self.columns(table)}
                    copy.set_types([by_name[name].type_oid for name in columns])
                write = copy.write_row
                for row in rows:
                    write(row)

    def _write_staged(self, conn: Any, table: str, columns: Sequence[str], rows: list[Row]) -> BatchResult:
        stage = f"_mosaic_stage_{table}"
        key = self.primary_key(table)
        if not key:
            raise MigrationError(
                f"target table {table} has no primary key; it cannot be migrated idempotently"
            )
        conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_quote(stage)} "
            f"(LIKE {_quote(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) ON COMMIT DELETE ROWS"
        )
        self._copy(conn, table, stage, columns, rows)
        self._refuse_unique_clashes(conn, table, stage, key, columns)
        names = ", ".join(_quote(name) for name in columns)
        keys = ", ".join(_quote(name) for name in key)
        inserted = conn.execute(
            f"INSERT INTO {_quote(table)} ({names}) SELECT {names} FROM {_quote(stage)} "
            f"ON CONFLICT ({keys}) DO NOTHING"
        ).rowcount
        join = " AND ".join(f"t.{_quote(name)} = s.{_quote(name)}" for name in key)
        source_side = ", ".join(f"s.{_quote(name)}::text" for name in columns)
        target_side = ", ".join(f"t.{_quote(name)}::text" for name in columns)
        key_text = " || ',' || ".join(f"s.{_quote(name)}::text" for name in key)
        conflicts = conn.execute(
            f"SELECT {key_text} FROM {_quote(stage)} s JOIN {_quote(table)} t ON {join} "
            f"WHERE ({source_side}) IS DISTINCT FROM ({target_side})"
        ).fetchall()
        conflict_keys = tuple(str(row[0]) for row in conflicts)
        return BatchResult(
            inserted=inserted,
            existing=len(rows) - inserted - len(conflict_keys),
            conflict_keys=conflict_keys,
            staged=True,
        )

    def _refuse_unique_clashes(
        self, conn: Any, table: str, stage: str, key: list[str], columns: Sequence[str]
    ) -> None:
        """Refuse a row whose unique value (an email, a slug) another row of the target holds.

        Which of the two rows is right is for a person to decide; skipping one would also
        orphan its children. Checked before the insert, so the error can name both rows.
        """
        differs = " OR ".join(f"s.{_quote(name)} IS DISTINCT FROM t.{_quote(name)}" for name in key)
        source_key = " || ',' || ".join(f"s.{_quote(name)}::text" for name in key)
        target_key = " || ',' || ".join(f"t.{_quote(name)}::text" for name in key)
        for unique in self.unique_keys(table):
            if not set(unique) <= set(columns):
                continue
            same = " AND ".join(f"s.{_quote(name)} = t.{_quote(name)}" for name in unique)
            clash = conn.execute(
                f"SELECT {source_key}, {target_key} FROM {_quote(stage)} s "
                f"JOIN {_quote(table)} t ON {same} WHERE {differs} LIMIT 1"
            ).fetchone()
            if clash is not None:
                raise MigrationError(
                    f"table {table}: source row {key[0]}={clash[0]!r} and target row "
                    f"{key[0]}={clash[1]!r} have the same {', '.join(unique)}, which must be unique; "
                    "this batch was rolled back, earlier batches are kept",
                    remediation=(
                        "decide which row is right: change or delete the other one (in the source "
                        "or the target), then run the same command again"
                    ),
                )

    def _batch_error(self, table: str, columns: Sequence[str], rows: list[Row], err: Any) -> MigrationError:
        diag = err.diag
        primary = diag.message_primary or (str(err).strip().splitlines() or [type(err).__name__])[0]
        key_columns = self.primary_key(table) or [columns[0]]
        where = f"table {table}"
        match = _LINE.search(diag.context or "")
        if match and 1 <= int(match.group(1)) <= len(rows):
            row = rows[int(match.group(1)) - 1]
            where += f", row {key_columns[0]}={row[_key_index(key_columns, columns)]!r}"
        detail = diag.message_detail or ""
        if detail.startswith("Key ("):
            primary += f": {detail}"
        elif diag.constraint_name:
            primary += f" (constraint {diag.constraint_name})"
        elif diag.column_name:
            primary += f" (column {diag.column_name})"
        return MigrationError(
            f"{where}: {primary}; this batch was rolled back, earlier batches are kept",
            remediation=(
                "fix or remove that row in the source, then run the same command again: rows already "
                "migrated are recognised and not written twice"
            ),
        )

    def close(self) -> None:
        """Close the write connection, and the store if this target opened it."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.invalidate()
            self._writer = None
        if self._owned:
            self._store.close()

    def __enter__(self) -> PostgresTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Types whose binary COPY format psycopg (plus the dumpers above) can produce from source values.
_BINARY_TYPES = frozenset(
    {
        "text",
        "varchar",
        "bpchar",
        "jsonb",
        "json",
        "timestamptz",
        "timestamp",
        "bool",
        "int2",
        "int4",
        "int8",
        "float4",
        "float8",
        "bytea",
        "vector",
    }
)


def _key_index(key: Sequence[str], columns: Sequence[str]) -> int:
    for name in key:
        if name in columns:
            return list(columns).index(name)
    return 0


_INDEX_DEFINITION = re.compile(r"CREATE INDEX (?P<name>\S+) ON (?P<table>\S+) USING [^;]+")


def _checked_index_definition(key: str, definition: str) -> str:
    """The saved definition as ``CREATE INDEX IF NOT EXISTS``, after checking it is one.

    Only the run itself writes these rows (they are never copied from a source), but SQL read
    back from a table is checked before it runs: one plain CREATE INDEX of the named index.
    """
    match = _INDEX_DEFINITION.fullmatch(definition)
    expected = key.rpartition(":")[2]
    if match is None or match.group("name").strip('"') != expected:
        raise MigrationError(
            f"store_meta entry {key!r} is not the definition of index {expected!r}",
            remediation=(
                "delete that store_meta row, then recreate the index from the Mosaic schema "
                "(mosaic db downgrade/upgrade on an empty target, or CREATE INDEX by hand)"
            ),
        )
    return definition.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
