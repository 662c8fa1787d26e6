"""Vector search for backends without pgvector: the in-process `VectorCache`, refreshed by generation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from ._embedders import normalize_rows
from ._memory import INSIGHTS, Candidates, Insights, Matrix
from ._vectors import DEFAULT_MAX_BYTES, VectorCache


class LocalVectorInsights(Insights):
    """Exact cosine search with numpy over each user's vectors, kept in memory between queries."""

    cache_max_bytes: int = DEFAULT_MAX_BYTES
    """Memory budget of the vector cache; least recently searched users are evicted beyond it."""

    def __init__(self, memory: object) -> None:
        super().__init__(memory)  # type: ignore[arg-type]
        self.cache = VectorCache(self.dim, max_bytes=self.cache_max_bytes)

    def _load(self, conn: sa.Connection, user_id: str) -> tuple[list[str], Matrix]:
        raw = sa.type_coerce(INSIGHTS.c.embedding, sa.LargeBinary)
        rows = conn.execute(
            sa.select(INSIGHTS.c.id, raw).where(
                INSIGHTS.c.user_id == user_id, INSIGHTS.c.embedding.is_not(None)
            )
        ).all()
        width = self.dim * 4
        # Rows written by other tools may hold vectors of another size: leave them out of vector search.
        kept = [(row[0], row[1]) for row in rows if len(row[1]) == width]
        if not kept:
            return [], np.zeros((0, self.dim), dtype=np.float32)
        matrix = np.frombuffer(b"".join(blob for _, blob in kept), dtype=np.float32).reshape(-1, self.dim)
        return [id_ for id_, _ in kept], normalize_rows(matrix)

    def _vector_candidates(
        self,
        conn: sa.Connection,
        user_id: str,
        query: Matrix,
        k: int,
        conditions: Sequence[sa.ColumnElement[bool]],
    ) -> Candidates:
        generation = self._generation(conn, user_id)
        among = None
        if conditions:
            among = list(
                conn.execute(
                    sa.select(INSIGHTS.c.id).where(INSIGHTS.c.user_id == user_id, *conditions)
                ).scalars()
            )
        return self.cache.search(user_id, generation, lambda: self._load(conn, user_id), query, k, among)

    def _nearest(
        self, conn: sa.Connection, user_id: str, vectors: Matrix, generation: int, threshold: float
    ) -> list[tuple[str, float] | None]:
        return self.cache.nearest(user_id, generation, lambda: self._load(conn, user_id), vectors, threshold)

    def _written(
        self,
        user_id: str,
        generation: int,
        *,
        upserts: tuple[Sequence[str], Matrix] | None = None,
        removals: Sequence[str] = (),
    ) -> None:
        self.cache.apply(user_id, generation, upserts=upserts, removals=removals)
