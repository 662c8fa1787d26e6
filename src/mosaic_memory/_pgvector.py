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
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ._memory import INSIGHTS, Candidates, Matrix, Memory
from ._postgres import PostgresKeywordSearch

EXACT_MAX_ROWS = 10_000
"""Up to this many candidate rows, exact search beats HNSW at recall 1.0 (see benchmarks/memory_search.py)."""
BASE_EF_SEARCH = 40
MAX_EF_SEARCH = 1000


def _vector_literal(vector: Any) -> str:
    return "[" + ",".join(map(repr, vector.tolist())) + "]"


class PgvectorInsights(PostgresKeywordSearch):
    """Insights on pgvector: the database ranks vectors, with a per-query plan (see the module doc)."""

    exact_max_rows = EXACT_MAX_ROWS
    base_ef_search = BASE_EF_SEARCH

    def _vector_type(self) -> Any:
        from pgvector.sqlalchemy import Vector

        return Vector(self.dim)

    def _candidate_rows(
        self, conn: sa.Connection, user_id: str, conditions: Sequence[sa.ColumnElement[bool]]
    ) -> int:
        """Rows the search may return, counted up to ``exact_max_rows + 1`` (a cheap, capped count)."""
        capped = (
            sa.select(sa.literal(1))
            .where(INSIGHTS.c.user_id == user_id, *conditions)
            .limit(self.exact_max_rows + 1)
            .subquery()
        )
        return int(conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one())

    def _use_hnsw(self, conn: sa.Connection, matching: int, k: int) -> None:
        """Set this transaction up for a filtered HNSW scan over about ``matching`` rows."""
        total = conn.execute(
            sa.text("SELECT greatest(reltuples, 1)::bigint FROM pg_class WHERE oid = 'insights'::regclass")
        ).scalar_one()
        share = min(1.0, max(matching, 1) / max(int(total), 1))
        ef_search = max(self.base_ef_search, k)
        ef_search = min(MAX_EF_SEARCH, math.ceil(ef_search / math.sqrt(share)))
        conn.exec_driver_sql(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        conn.exec_driver_sql("SET LOCAL hnsw.iterative_scan = relaxed_order")

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
        if matching <= self.exact_max_rows:
            order = "(i.embedding <=> q.v) + 0"
        else:
            # Near duplicates are very close, so a small candidate list finds them.
            self._use_hnsw(conn, matching, 1)
            order = "i.embedding <=> q.v"
        array = "{" + ",".join('"' + _vector_literal(row) + '"' for row in vectors) + "}"
        rows = conn.execute(
            sa.text(
                "SELECT q.ord, nn.id, nn.distance "
                "FROM unnest(CAST(:vectors AS vector[])) WITH ORDINALITY AS q(v, ord) "
                "CROSS JOIN LATERAL ("
                "  SELECT i.id, i.embedding <=> q.v AS distance FROM insights i"
                f"  WHERE i.user_id = :user_id ORDER BY {order} LIMIT 1"
                ") nn"
            ),
            {"vectors": array, "user_id": user_id},
        ).all()
        found: list[tuple[str, float] | None] = [None] * len(vectors)
        for ordinal, id_, distance in rows:
            found[int(ordinal) - 1] = (id_, 1.0 - float(distance))
        return found


class PgvectorMemory(Memory):
    """Memory on PostgreSQL with pgvector: vectors in ``vector(dim)`` with an HNSW (cosine) index."""

    backend = "pgvector"
    insights_class = PgvectorInsights
