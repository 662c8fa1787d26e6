"""The PostgreSQL memory store without pgvector (standalone tier): full text search, numpy vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from mosaic_storage._migrations import SEARCH_VECTOR_COLUMN

from ._local import LocalVectorInsights
from ._memory import INSIGHTS, Candidates, Insights, Memory

_SEARCH_VECTOR: sa.ColumnClause[Any] = sa.literal_column(f"insights.{SEARCH_VECTOR_COLUMN}")


class PostgresKeywordSearch(Insights):
    """Keyword search over the generated ``search_vector`` column (English stemming, GIN index)."""

    def _keyword_candidates(
        self,
        conn: sa.Connection,
        user_id: str,
        words: Sequence[str],
        k: int,
        conditions: Sequence[sa.ColumnElement[bool]],
    ) -> Candidates:
        # Words are \\w+ only, so none of to_tsquery's operators can get through; any word may match.
        tsquery = sa.func.to_tsquery(sa.literal_column("'english'::regconfig"), " | ".join(words))
        rank = sa.func.ts_rank_cd(_SEARCH_VECTOR, tsquery)
        query = (
            sa.select(INSIGHTS.c.id, rank)
            .where(_SEARCH_VECTOR.op("@@")(tsquery), INSIGHTS.c.user_id == user_id, *conditions)
            .order_by(rank.desc(), INSIGHTS.c.id)
            .limit(k)
        )
        return [(row[0], float(row[1])) for row in conn.execute(query)]


class PostgresInsights(PostgresKeywordSearch, LocalVectorInsights):
    """Insights on PostgreSQL without pgvector: vectors stored as bytes, searched with numpy."""


class PostgresMemory(Memory):
    """Memory on PostgreSQL without pgvector."""

    backend = "postgres"
    insights_class = PostgresInsights
