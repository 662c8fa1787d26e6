"""The PostgreSQL + pgvector memory store (federated tier, and embedded PostgreSQL on local).

Every vector search is filtered by ``user_id``, and left alone the planner answers
``WHERE user_id = $1 ORDER BY embedding <=> $2 LIMIT k`` from the HNSW index and filters
afterwards: for a user holding 1% of the rows that returned 4% of the true neighbours. So
each query picks its plan from how many rows it may look at (counted up to a cap):

* few (at most ``exact_max_rows``): exact search over those rows, found through the btree
  on ``(user_id, created_at)``; the ``+ 0`` on the distance keeps the planner off HNSW.
* many: HNSW with iterative index scans (``hnsw.iterative_scan = relaxed_order``) and an
  ``ef_search`` raised in inverse proportion to the share of rows that pass the filter, so
  about as many matching candidates are examined as an unfiltered search would; results
  are re-sorted because relaxed order may return them slightly out of order.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ._memory import INSIGHTS, Candidates, Matrix, Memory
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


class PgvectorInsights(PostgresKeywordSearch):
    """Insights on pgvector: the database ranks vectors, with a per-query plan (see the module doc)."""

    exact_max_rows = EXACT_MAX_ROWS
    base_ef_search = BASE_EF_SEARCH

    def __init__(self, memory: Any) -> None:
        super().__init__(memory)
        # Unfiltered row counts per user and the table's size: they only steer the plan, so a
        # short-lived cache is fine; this process's writes drop the writer's entry.
        self._counts: dict[str, tuple[float, int]] = {}
        self._table_rows: tuple[float, int] = (0.0, 1)
        self._lock = threading.Lock()

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
        self, conn: sa.Connection, user_id: str, conditions: Sequence[sa.ColumnElement[bool]]
    ) -> int:
        """Rows the search may return, counted up to ``exact_max_rows + 1`` (a cheap, capped count)."""
        now = time.monotonic()
        if not conditions:
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

    def _use_hnsw(self, conn: sa.Connection, matching: int, k: int, *, ef_search: int | None = None) -> None:
        """Set this transaction up for a filtered HNSW scan over about ``matching`` rows."""
        if ef_search is None:
            # At least as many matching candidates as an unfiltered search with base_ef_search.
            share = min(1.0, max(matching, 1) / self._table_size(conn))
            ef_search = min(MAX_EF_SEARCH, math.ceil(max(self.base_ef_search, k) / math.sqrt(share)))
        conn.exec_driver_sql(
            f"SET LOCAL hnsw.ef_search = {int(ef_search)}; SET LOCAL hnsw.iterative_scan = relaxed_order"
        )

    def _vector_candidates(
        self,
        conn: sa.Connection,
        user_id: str,
        query: Matrix,
        k: int,
        conditions: Sequence[sa.ColumnElement[bool]],
    ) -> Candidates:
        matching = self._candidate_rows(conn, user_id, conditions)
        distance = INSIGHTS.c.embedding.op("<=>", return_type=sa.Float)(
            sa.bindparam("query_vector", query, type_=self._vector_type())
        )
        statement = sa.select(INSIGHTS.c.id, distance).where(INSIGHTS.c.user_id == user_id, *conditions)
        if matching <= self.exact_max_rows:
            statement = statement.order_by(distance + 0)
        else:
            self._use_hnsw(conn, matching, k)
            statement = statement.order_by(distance)
        rows = conn.execute(statement.limit(k)).all()
        hits = [(row[0], 1.0 - float(row[1])) for row in rows]
        hits.sort(key=lambda hit: -hit[1])
        return hits

    def _nearest(self, conn: sa.Connection, user_id: str, vectors: Matrix) -> list[tuple[str, float] | None]:
        matching = self._candidate_rows(conn, user_id, ())
        if matching == 0:
            return [None] * len(vectors)
        if matching <= DEDUPE_EXACT_MAX_ROWS:
            order = "(i.embedding <=> q.v) + 0"
        else:
            self._use_hnsw(conn, matching, 1, ef_search=DEDUPE_EF_SEARCH)
            order = "i.embedding <=> q.v"
        self._driver(conn)
        rows = conn.exec_driver_sql(
            "SELECT q.ord, nn.id, nn.distance "
            "FROM unnest(%(vectors)s::vector[]) WITH ORDINALITY AS q(v, ord) "
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


class PgvectorMemory(Memory):
    """Memory on PostgreSQL with pgvector: vectors in ``vector(dim)`` with an HNSW (cosine) index."""

    backend = "pgvector"
    insights_class = PgvectorInsights
