"""`SqlAlchemySource`: read a Mosaic store (SQLite file, embedded PostgreSQL, PostgreSQL) in one snapshot."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .._errors import MigrationError, MosaicError
from .._migrations import VERSION_TABLE
from .._redact import redact
from .._store import Store, open_store
from ._names import FTS5_SHADOW_SUFFIXES, snake_case
from ._protocols import Row, RowFilter


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqlAlchemySource:
    """A `MigrationSource` over any SQLAlchemy URL: ``sqlite:///FILE``, ``embedded://DIR``, ``postgresql://``.

    SQLite files are opened read-only and never created. Every read runs in one transaction
    (a snapshot), so counts and rows agree even if an application keeps writing to the source.
    """

    def __init__(self, source: str | os.PathLike[str] | Store) -> None:
        self._owned: Store | None = None
        self._own_engine = False
        if isinstance(source, Store) and source.dialect == "sqlite":
            # Rows are read on a thread of their own, which the store's connections refuse.
            self._engine = _sqlite_readonly_engine(f"sqlite:///{source.engine.url.database}")
            self._own_engine = True
            self._description = source.url
        elif isinstance(source, Store):
            self._engine = source.engine
            self._description = source.url
        else:
            url = os.fspath(source)
            self._description = redact(url)
            if url.startswith("sqlite:"):
                self._engine = _sqlite_readonly_engine(url)
                self._own_engine = True
            else:
                self._owned = open_store(url)
                self._engine = self._owned.engine
                self._description = self._owned.url
        self.dialect = self._engine.dialect.name
        self._raw: Any = None
        self._names: dict[str, str] | None = None
        self._column_names: dict[str, dict[str, str]] = {}
        # The reading thread and the caller may both ask for rows; one connection serves both.
        self._mutex = threading.RLock()
        self._cursors = 0

    # --- connection ------------------------------------------------------------------------

    def _conn(self) -> Any:
        """The driver connection holding the snapshot, opened on first use."""
        if self._raw is None:
            try:
                raw = self._engine.raw_connection()
            except sa.exc.DBAPIError as err:
                raise self._error(err) from None
            driver: Any = raw.driver_connection
            try:
                if self.dialect == "sqlite":
                    driver.isolation_level = None
                    driver.execute("BEGIN")
                    # A foreign or corrupt file fails here, not halfway through a table.
                    driver.execute("SELECT count(*) FROM sqlite_master").fetchone()
                else:
                    driver.rollback()
                    driver.autocommit = False
                    driver.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    driver.execute("SET LOCAL TimeZone = 'UTC'")
            except Exception as err:
                raw.invalidate()
                raise self._error(err) from None
            self._raw = raw
        return self._raw.driver_connection

    def _error(self, err: BaseException, table: str | None = None) -> MigrationError:
        detail = redact(getattr(err, "orig", None) or err).strip().splitlines()
        first = detail[0] if detail else type(err).__name__
        where = f"{self._description}" + (f", table {table}" if table else "")
        remediation = (
            "check that the file is a Mosaic SQLite database (mosaic db current --url ...)"
            if self.dialect == "sqlite"
            else "check that the source URL names a reachable Mosaic database"
        )
        return MigrationError(f"cannot read the source {where}: {first}", remediation=remediation)

    def _query(self, sql: str, params: Sequence[Any] = (), *, table: str | None = None) -> list[Any]:
        with self._mutex:
            conn = self._conn()
            try:
                cur = conn.execute(sql, params)
                return list(cur.fetchall())
            except MosaicError:
                raise
            except Exception as err:
                raise self._error(err, table) from None

    @property
    def description(self) -> str:
        """Where the rows come from, credentials masked."""
        return self._description

    # --- schema ----------------------------------------------------------------------------

    def _raw_tables(self) -> list[str]:
        if self.dialect == "sqlite":
            rows = self._query("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = self._query(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()"
            )
        return [str(row[0]) for row in rows]

    def search_index_tables(self) -> list[str]:
        """FTS5 virtual tables and their shadow tables: an index of the source, not data."""
        if self.dialect != "sqlite":
            return []
        virtual = [
            str(row[0])
            for row in self._query(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND upper(sql) LIKE 'CREATE VIRTUAL TABLE%' AND lower(sql) LIKE '%using fts5%'"
            )
        ]
        existing = set(self._raw_tables())
        shadows = [f"{vt}{suffix}" for vt in virtual for suffix in FTS5_SHADOW_SUFFIXES]
        return sorted(virtual + [name for name in shadows if name in existing])

    def _table_names(self) -> dict[str, str]:
        if self._names is None:
            index = set(self.search_index_tables())
            names: dict[str, str] = {}
            for raw in self._raw_tables():
                if raw in index or raw.startswith("sqlite_"):
                    continue
                snake = snake_case(raw)
                if snake in names:
                    raise MigrationError(
                        f"source tables {names[snake]!r} and {raw!r} both normalise to {snake!r}",
                        remediation="rename or drop one of them in the source, then run again",
                    )
                names[snake] = raw
            self._names = names
        return self._names

    def tables(self) -> list[str]:
        """The source's data tables, snake_case."""
        return sorted(self._table_names())

    def _raw_name(self, table: str) -> str:
        try:
            return self._table_names()[table]
        except KeyError:
            raise MigrationError(f"the source has no table {table}") from None

    def _columns(self, table: str) -> dict[str, str]:
        """snake_case name -> the source's own column name."""
        if table not in self._column_names:
            raw = self._raw_name(table)
            if self.dialect == "sqlite":
                rows = self._query(f"PRAGMA table_info({_quote(raw)})", table=table)
                names = [str(row[1]) for row in rows]
            else:
                rows = self._query(
                    # Generated columns (the search tsvector) are derived: the target derives its own.
                    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                    "AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                    (_quote(raw),),
                    table=table,
                )
                names = [str(row[0]) for row in rows]
            mapping: dict[str, str] = {}
            for name in names:
                snake = snake_case(name)
                if snake in mapping:
                    raise MigrationError(
                        f"source table {table}: columns {mapping[snake]!r} and {name!r} "
                        f"both normalise to {snake!r}",
                        remediation="drop or rename one of them in the source",
                    )
                mapping[snake] = name
            self._column_names[table] = mapping
        return self._column_names[table]

    def columns(self, table: str) -> list[str]:
        """The table's columns, snake_case, in the source's order."""
        return list(self._columns(table))

    def schema_revision(self) -> str | None:
        """The source's Mosaic schema revision (``None``: no alembic version table)."""
        if VERSION_TABLE not in self._raw_tables():
            return None
        rows = self._query(f"SELECT version_num FROM {VERSION_TABLE}")
        return str(rows[0][0]) if rows else None

    def embedding_dim(self) -> int | None:
        """The dimension recorded in the source's ``store_meta``, if any."""
        if "store_meta" not in self._table_names():
            return None
        columns = self._columns("store_meta")
        if not {"key", "value"} <= set(columns):
            return None
        rows = self._query(
            f"SELECT {_quote(columns['value'])} FROM {_quote(self._raw_name('store_meta'))} "
            f"WHERE {_quote(columns['key'])} = {self._param}",
            ("embedding_dim",),
        )
        try:
            return int(rows[0][0]) if rows else None
        except ValueError:
            return None

    @property
    def _param(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def _where(self, table: str, exclude: RowFilter | None) -> tuple[str, list[Any]]:
        if exclude is None:
            return "", []
        column, values = exclude
        raw = self._columns(table).get(column)
        if raw is None or not values:
            return "", []
        exact = sorted(value for value in values if not value.endswith("*"))
        prefixes = sorted(value[:-1] for value in values if value.endswith("*"))
        column_sql = _quote(raw)
        clauses = []
        if exact:
            clauses.append(f"{column_sql} NOT IN ({', '.join([self._param] * len(exact))})")
        clauses += [f"substr({column_sql}, 1, {len(prefix)}) <> {self._param}" for prefix in prefixes]
        return " WHERE " + " AND ".join(clauses), [*exact, *prefixes]

    def count(self, table: str, *, exclude: RowFilter | None = None) -> int:
        """The table's row count in the snapshot."""
        where, params = self._where(table, exclude)
        rows = self._query(
            f"SELECT count(*) FROM {_quote(self._raw_name(table))}{where}", params, table=table
        )
        return int(rows[0][0])

    def embedding_mismatch(self, table: str, column: str, dim: int) -> tuple[str, float] | None:
        """The key and dimension of the first embedding whose dimension is not ``dim``."""
        columns = self._columns(table)
        raw_table, raw_col = _quote(self._raw_name(table)), _quote(columns[column])
        key = _quote(columns.get("id", next(iter(columns.values()))))
        if self.dialect == "sqlite":
            sql = (
                f"SELECT {key}, CASE typeof({raw_col}) WHEN 'blob' THEN length({raw_col}) / 4.0 "
                f"WHEN 'text' THEN CASE WHEN json_valid({raw_col}) THEN json_array_length({raw_col}) "
                f"ELSE -1 END ELSE -1 END AS dim FROM {raw_table} "
                f"WHERE {raw_col} IS NOT NULL AND dim <> ? LIMIT 1"
            )
        else:
            type_name = self._query(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass(%s) AND attname = %s",
                (raw_table, columns[column]),
                table=table,
            )[0][0]
            if str(type_name).startswith("vector"):
                expr = f"vector_dims({raw_col})"
            elif type_name == "bytea":
                expr = f"length({raw_col}) / 4.0"
            elif str(type_name).endswith("[]"):
                expr = f"cardinality({raw_col})"
            else:
                expr = f"jsonb_array_length({raw_col}::jsonb)"
            sql = (
                f"SELECT {key}::text, {expr} FROM {raw_table} "
                f"WHERE {raw_col} IS NOT NULL AND {expr} <> %s LIMIT 1"
            )
        rows = self._query(sql, (dim,), table=table)
        if not rows:
            return None
        return str(rows[0][0]), float(rows[0][1])

    # --- rows ------------------------------------------------------------------------------

    def batches(
        self,
        table: str,
        columns: Sequence[str],
        batch_size: int,
        *,
        exclude: RowFilter | None = None,
    ) -> Iterator[list[Row]]:
        """The rows as tuples in ``columns`` order, streamed ``batch_size`` at a time."""
        mapping = self._columns(table)
        select = ", ".join(_quote(mapping[column]) for column in columns)
        where, params = self._where(table, exclude)
        sql = f"SELECT {select} FROM {_quote(self._raw_name(table))}{where}"
        with self._mutex:
            conn = self._conn()
            self._cursors += 1
            name = f"mosaic_migrate_{self._cursors}"
        if self.dialect == "sqlite":
            cursor = conn.cursor()
        else:
            from psycopg.types.string import TextLoader

            # A server-side cursor streams; JSON stays text so it goes out as it came in.
            cursor = conn.cursor(name=name)
            cursor.itersize = batch_size
            for type_name in ("json", "jsonb"):
                cursor.adapters.register_loader(type_name, TextLoader)
        try:
            try:
                cursor.execute(sql, params)
            except Exception as err:
                raise self._error(err, table) from None
            while True:
                try:
                    rows = cursor.fetchmany(batch_size)
                except Exception as err:
                    raise self._error(err, table) from None
                if not rows:
                    return
                yield rows
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def dicts(self, table: str, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        """The rows as plain dicts with snake_case keys."""
        columns = self.columns(table)
        for rows in self.batches(table, columns, batch_size):
            yield [dict(zip(columns, row, strict=True)) for row in rows]

    def close(self) -> None:
        """End the snapshot and release the connection (and an embedded server this source started)."""
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.driver_connection.rollback()
            with contextlib.suppress(Exception):
                self._raw.close()
            self._raw = None
        if self._owned is not None:
            self._owned.close()
        elif self._own_engine:
            self._engine.dispose()

    def __enter__(self) -> SqlAlchemySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sqlite_readonly_engine(url: str) -> sa.Engine:
    database = sa.make_url(url).database
    if not database or database == ":memory:":
        raise MigrationError(
            f"the source {redact(url)} names no SQLite file", remediation="pass sqlite:///PATH/TO/brain.db"
        )
    path = Path(database).expanduser().resolve()
    if not path.is_file():
        raise MigrationError(
            f"the source SQLite file {path} does not exist",
            remediation="check the path in --from (sqlite:///relative or sqlite:////absolute)",
        )
    # mode=ro: migrating never changes the source, not even its journal mode.
    return sa.create_engine(
        f"sqlite+pysqlite:///file:{path}?mode=ro&uri=true",
        connect_args={"check_same_thread": False},
        poolclass=sa.pool.NullPool,
    )
