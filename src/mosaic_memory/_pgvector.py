"""The PostgreSQL + pgvector memory store (federated tier, and embedded PostgreSQL on local).

Every vector search is filtered by ``user_id``, and left alone the planner answers
``WHERE user_id = $1 ORDER BY embedding <=> $2 LIMIT k`` from the HNSW index and filters
afterwards: for a user holding 1% of the rows that returned 4% of the true neighbours. So
each query picks its plan from how many rows it may look at (counted up to a cap):

* few (at most ``exact_max_rows``): exact search over those rows, found through the btree
  on ``(user_id, created_at)``; the ``+ 0`` on the distance keeps the planner off HNSW.
* many: HNSW with iterative index scans (``hnsw.iterative_scan = relaxed_order``) and an
  ``ef_search`` of ``ITERATIVE_EF_FACTOR`` times the base, raised in inverse proportion to
  the square root of the share of rows that pass the filter; results are re-sorted
  because relaxed order may return them slightly out of order.

pgvector before 0.8 has no iterative scans (``SET hnsw.iterative_scan`` is an error there).
The extension's version is read once per store; on an older one a filtered search takes
the exact plan unless the rows it may return are at least ``FALLBACK_HNSW_MIN_SHARE`` of
the table, and then HNSW with ``ef_search`` raised by the inverse of that share (the
index is post-filtered, so it must produce that many more candidates).

In vector mode the rows of the hits come back with the search itself: one statement.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from ._memory import INSIGHT_COLUMNS, INSIGHTS, Candidates, Matrix, Memory
from ._postgres import PostgresKeywordSearch

EXACT_MAX_ROWS = 10_000
"""Up to this many candidate rows, exact search beats HNSW at recall 1.0 (see benchmarks/memory_search.py)."""
BASE_EF_SEARCH = 40
MAX_EF_SEARCH = 1000
DEDUPE_EXACT_MAX_ROWS = 1000
"""Dedupe probes a whole batch at once; above this many rows per user they go through HNSW."""
DEDUPE_EF_SEARCH = 16
"""Near duplicates (cosine >= 0.95) sit right next to the probe, so a short candidate list finds them."""
COUNT_TTL_S = 30.0
ITERATIVE_EF_FACTOR = 1.0
"""Multiplies ``base_ef_search`` for filtered iterative scans, before the raise by the inverse
square root of the share of rows that may pass the filter (counted up to the exact cap, so an
underestimate: a larger list, never a smaller one). Whether the raise buys recall depends on
the index: on an index built in one go (CREATE INDEX) over 100k x 384 clustered vectors,
relaxed scans at ef_search 40 already gave recall@10 0.99-1.0 for owners of 20-69% of the
rows; on one grown insert by insert through the API (with 40k lexical vectors beside them)
they gave 0.971 (30%) and 0.963 (69%), and 0.994-0.997 at 100 (benchmarks/memory_search.py,
session 3)."""
ITERATIVE_SCAN_VERSION = (0, 8)
"""The first pgvector release with ``hnsw.iterative_scan``."""
FALLBACK_HNSW_MIN_SHARE = 0.2
"""Without iterative scans, HNSW (post-filtered) only for owners of at least this share of the rows."""

_INSERT_COLUMNS = (
    "id",
    "user_id",
    "text",
    "text_hash",
    "category",
    "source",
    "metadata",
    "embedding",
    "created_at",
    "updated_at",
)
_INSERT_SQL = (
    f"INSERT INTO insights ({', '.join(_INSERT_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_INSERT_COLUMNS))})"
)
_UPDATE_SQL = (
    "UPDATE insights SET text = %s, text_hash = %s, category = %s, metadata = %s, embedding = %s, "
    "updated_at = %s WHERE id = %s"
)
_ADAPTERS_FLAG = "mosaic_pgvector_adapters"


def _plain_search_sql(with_rows: bool, exact: bool) -> str:
    columns = "id, user_id, text, category, source, metadata, created_at, updated_at" if with_rows else "id"
    # "+ 0" keeps the planner off the HNSW index: exact search over the user's rows (btree).
    order = "(embedding <=> %(query)s) + 0" if exact else "embedding <=> %(query)s"
    return (
        f"SELECT {columns}, {order} AS distance FROM insights"
        f" WHERE user_id = %(user_id)s ORDER BY distance LIMIT %(k)s"
    )


_PLAIN_SEARCH_SQL = {
    (rows, exact): _plain_search_sql(rows, exact) for rows in (True, False) for exact in (True, False)
}


def _hits(rows: Sequence[Any]) -> Candidates:
    """(id, cosine similarity) of rows ending in their distance, best first (relaxed-order
    scans may return them slightly out of order)."""
    hits = [(row[0], 1.0 - float(row[-1])) for row in rows]
    hits.sort(key=lambda hit: -hit[1])
    return hits


@contextlib.contextmanager
def _as_sqlalchemy_errors(conn: sa.Connection) -> Iterator[None]:
    """Driver errors raised as SQLAlchemy raises them: a `DBAPIError` (parameters hidden), and
    on a lost connection the connection invalidated, so `run_read` retries on a fresh one."""
    import psycopg

    try:
        yield
    except psycopg.Error as err:
        fairy = conn.connection
        lost = conn.dialect.is_disconnect(err, fairy.dbapi_connection, None)  # type: ignore[arg-type]
        if lost:
            conn.invalidate()
        raise sa.exc.DBAPIError.instance(
            None,
            None,
            err,
            psycopg.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=conn.dialect,
        ) from err


class _HitRow(NamedTuple):
    """One insight row of a search, as `Insights.search` reads it (timestamps in UTC)."""

    id: str
    user_id: str
    text: str
    category: str | None
    source: str
    metadata: Any
    created_at: dt.datetime
    updated_at: dt.datetime


class PgvectorInsights(PostgresKeywordSearch):
    """Insights on pgvector: the database ranks vectors, with a per-query plan (see the module doc)."""

    # A search runs in autocommit: one round trip for an exact plan; an HNSW scan opens the
    # transaction its SET LOCAL needs (`_hnsw_scan`).
    search_in_transaction = False

    exact_max_rows = EXACT_MAX_ROWS
    base_ef_search = BASE_EF_SEARCH

    def __init__(self, memory: Any) -> None:
        super().__init__(memory)
        # Unfiltered row counts per user and the table's size: they only steer the plan, so a
        # short-lived cache is fine; this process's writes drop the writer's entry.
        self._counts: dict[str, tuple[float, int]] = {}
        self._table_rows: tuple[float, int] = (0.0, 1)
        self._lock = threading.Lock()
        self.iterative_scans: bool | None = None
        """Whether the server's pgvector has iterative index scans (None: not asked yet)."""

    def _driver(self, conn: sa.Connection) -> Any:
        """The psycopg connection under ``conn``, with pgvector's binary adapters registered (once)."""
        fairy = conn.connection
        if not fairy.info.get(_ADAPTERS_FLAG):
            from pgvector.psycopg import register_vector

            register_vector(fairy.driver_connection)  # type: ignore[arg-type]
            fairy.info[_ADAPTERS_FLAG] = True
        return fairy.driver_connection

    def _insert_rows(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        # Vectors go over the wire in pgvector's binary format: no float-to-text round trip.
        from psycopg.types.json import Jsonb

        self._driver(conn)
        params = [
            tuple(Jsonb(row[c]) if c == "metadata" else row[c] for c in _INSERT_COLUMNS) for row in rows
        ]
        conn.exec_driver_sql(_INSERT_SQL, params)

    def _update_rows(self, conn: sa.Connection, updates: list[dict[str, Any]]) -> None:
        from psycopg.types.json import Jsonb

        self._driver(conn)
        params = [
            (
                u["b_text"],
                u["b_text_hash"],
                u["b_category"],
                Jsonb(u["b_metadata"]),
                u["b_embedding"],
                u["b_updated_at"],
                u["b_id"],
            )
            for u in updates
        ]
        conn.exec_driver_sql(_UPDATE_SQL, params)

    def _written(
        self,
        user_id: str,
        generation: int,
        *,
        upserts: tuple[Sequence[str], Matrix] | None = None,
        removals: Sequence[str] = (),
    ) -> None:
        with self._lock:
            self._counts.pop(user_id, None)

    def _vector_type(self) -> Any:
        from pgvector.sqlalchemy import Vector

        return Vector(self.dim)

    def _candidate_rows(
        self,
        conn: sa.Connection,
        user_id: str,
        conditions: Sequence[sa.ColumnElement[bool]],
        *,
        fresh: bool = False,
    ) -> int:
        """Rows the search may return, counted up to ``exact_max_rows + 1`` (a cheap, capped count).

        Searches may use a count cached for a few seconds; a write's dedupe (``fresh``) counts
        under its lock, since another process may have written since.
        """
        now = time.monotonic()
        if not conditions and not fresh:
            with self._lock:
                cached = self._counts.get(user_id)
            if cached is not None and now - cached[0] < COUNT_TTL_S:
                return cached[1]
        capped = (
            sa.select(sa.literal(1))
            .where(INSIGHTS.c.user_id == user_id, *conditions)
            .limit(self.exact_max_rows + 1)
            .subquery()
        )
        count = int(conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one())
        if not conditions:
            with self._lock:
                self._counts[user_id] = (now, count)
        return count

    def _table_size(self, conn: sa.Connection) -> int:
        now = time.monotonic()
        with self._lock:
            stamp, rows = self._table_rows
        if now - stamp < COUNT_TTL_S:
            return rows
        rows = int(
            conn.execute(
                sa.text(
                    "SELECT greatest(reltuples, 1)::bigint FROM pg_class WHERE oid = 'insights'::regclass"
                )
            ).scalar_one()
        )
        with self._lock:
            self._table_rows = (now, rows)
        return rows

    def _has_iterative_scans(self, conn: sa.Connection) -> bool:
        if self.iterative_scans is None:
            version = conn.exec_driver_sql(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).scalar_one_or_none()
            self.iterative_scans = version_tuple(str(version or "0")) >= ITERATIVE_SCAN_VERSION
        return self.iterative_scans

    def _share(self, conn: sa.Connection, matching: int) -> float:
        return min(1.0, max(matching, 1) / self._table_size(conn))

    @contextlib.contextmanager
    def _hnsw_scan(
        self, conn: sa.Connection, matching: int, k: int, *, ef_search: int | None = None
    ) -> Iterator[None]:
        """Run the block as an HNSW scan over about ``matching`` rows: its settings are
        ``SET LOCAL``, so on a connection in autocommit (a search) the block gets a transaction
        of its own; inside a transaction (a write's dedupe) it joins that one."""
        from psycopg.pq import TransactionStatus

        driver = self._driver(conn)
        if driver.autocommit and driver.info.transaction_status == TransactionStatus.IDLE:
            with _as_sqlalchemy_errors(conn), driver.transaction():
                self._use_hnsw(conn, matching, k, ef_search=ef_search)
                yield
        else:
            self._use_hnsw(conn, matching, k, ef_search=ef_search)
            yield

    def _use_hnsw(self, conn: sa.Connection, matching: int, k: int, *, ef_search: int | None = None) -> None:
        """Set this transaction up for a filtered HNSW scan over about ``matching`` rows."""
        iterative = self._has_iterative_scans(conn)
        if ef_search is None:
            share = self._share(conn, matching)
            base = max(self.base_ef_search, k)
            # Iterative scans go on until enough rows pass the filter, so a modest raise keeps
            # recall; a post-filtered scan must find 1/share times the candidates itself.
            scale = ITERATIVE_EF_FACTOR / math.sqrt(share) if iterative else 1.0 / share
            ef_search = min(MAX_EF_SEARCH, math.ceil(base * scale))
        settings = f"SET LOCAL hnsw.ef_search = {int(ef_search)}"
        if iterative:
            settings += "; SET LOCAL hnsw.iterative_scan = relaxed_order"
        with _as_sqlalchemy_errors(conn):
            self._driver(conn).execute(settings)

    def _plan_exact(self, conn: sa.Connection, matching: int) -> bool:
        """Whether a search over ``matching`` candidate rows takes the exact plan."""
        if matching <= self.exact_max_rows:
            return True
        if self._has_iterative_scans(conn):
            return False
        return self._share(conn, matching) < FALLBACK_HNSW_MIN_SHARE

    def _vector_candidates(
        self,
        conn: sa.Connection,
        user_id: str,
        query: Matrix,
        k: int,
        conditions: Sequence[sa.ColumnElement[bool]],
    ) -> Candidates:
        return self._vector_search(conn, user_id, query, k, conditions, with_rows=False)[0]

    def _vector_search(
        self,
        conn: sa.Connection,
        user_id: str,
        query: Matrix,
        k: int,
        conditions: Sequence[sa.ColumnElement[bool]],
        *,
        with_rows: bool,
    ) -> tuple[Candidates, dict[str, Any]]:
        matching = self._candidate_rows(conn, user_id, conditions)
        driver = self._driver(conn)  # the query vector goes to psycopg as is and is sent in binary
        if not conditions:
            return self._plain_search(conn, driver, user_id, query, k, matching, with_rows=with_rows)
        distance: sa.ColumnElement[float] = INSIGHTS.c.embedding.op("<=>", return_type=sa.Float)(
            sa.bindparam("query_vector", query, type_=_RAW_VECTOR)
        )
        exact = self._plan_exact(conn, matching)
        if exact:
            # The same expression in the select list and ORDER BY is computed once per row.
            distance = distance + 0
        columns = (*INSIGHT_COLUMNS, distance) if with_rows else (INSIGHTS.c.id, distance)
        statement = sa.select(*columns).where(INSIGHTS.c.user_id == user_id, *conditions)
        statement = statement.order_by(distance).limit(k)
        with contextlib.nullcontext() if exact else self._hnsw_scan(conn, matching, k):
            rows = conn.execute(statement).all()
        return _hits(rows), ({row[0]: row for row in rows} if with_rows else {})

    def _plain_search(
        self,
        conn: sa.Connection,
        driver: Any,
        user_id: str,
        query: Matrix,
        k: int,
        matching: int,
        *,
        with_rows: bool,
    ) -> tuple[Candidates, dict[str, Any]]:
        """`_vector_search` without filters, straight through psycopg: the statements are
        fixed, and SQLAlchemy's per-statement work cost more than the HNSW scan itself."""
        exact = self._plan_exact(conn, matching)
        sql = _PLAIN_SEARCH_SQL[(with_rows, exact)]
        with (
            contextlib.nullcontext() if exact else self._hnsw_scan(conn, matching, k),
            _as_sqlalchemy_errors(conn),
            driver.cursor() as cursor,
        ):
            rows = cursor.execute(sql, {"query": query, "user_id": user_id, "k": k}).fetchall()
        hits = _hits(rows)
        if not with_rows:
            return hits, {}
        return hits, {
            row[0]: _HitRow(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                row[6].astimezone(dt.UTC),
                row[7].astimezone(dt.UTC),
            )
            for row in rows
        }

    def _nearest(
        self, conn: sa.Connection, user_id: str, vectors: Matrix, generation: int, threshold: float
    ) -> list[tuple[str, float] | None]:
        matching = self._candidate_rows(conn, user_id, (), fresh=True)
        if matching == 0:
            return [None] * len(vectors)
        if matching <= DEDUPE_EXACT_MAX_ROWS:
            order = "(i.embedding <=> q.v) + 0"
        else:
            ef_search = DEDUPE_EF_SEARCH
            if not self._has_iterative_scans(conn):
                ef_search = min(MAX_EF_SEARCH, math.ceil(ef_search / self._share(conn, matching)))
            # Dedupe runs inside the write's transaction, where SET LOCAL holds until its commit.
            self._use_hnsw(conn, matching, 1, ef_search=ef_search)
            order = "i.embedding <=> q.v"
        self._driver(conn)
        # %(vectors)b: the array of vectors travels in binary (as text it cost more than the search).
        rows = conn.exec_driver_sql(
            "SELECT q.ord, nn.id, nn.distance "
            "FROM unnest(%(vectors)b::vector[]) WITH ORDINALITY AS q(v, ord) "
            "CROSS JOIN LATERAL ("
            "  SELECT i.id, i.embedding <=> q.v AS distance FROM insights i"
            f"  WHERE i.user_id = %(user_id)s ORDER BY {order} LIMIT 1"
            ") nn",
            {"vectors": list(vectors), "user_id": user_id},
        ).all()
        found: list[tuple[str, float] | None] = [None] * len(vectors)
        for ordinal, id_, distance in rows:
            found[int(ordinal) - 1] = (id_, 1.0 - float(distance))
        return found


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.8.2"`` as ``(0, 8, 2)``; suffixes such as ``"0.7.0-dev"`` are ignored."""
    parts: list[int] = []
    for part in version.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


class _RawVector(sa.types.UserDefinedType[Any]):
    """A ``vector`` bind value handed to psycopg untouched (pgvector's adapters send it in binary)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"

    def bind_processor(self, dialect: sa.Dialect) -> None:
        return None


_RAW_VECTOR = _RawVector()


class PgvectorMemory(Memory):
    """Memory on PostgreSQL with pgvector: vectors in ``vector(dim)`` with an HNSW (cosine) index."""

    backend = "pgvector"
    insights_class = PgvectorInsights
