"""The SQLite memory store (local tier): FTS5 keyword search, numpy vector search in process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from mosaic_storage._migrations import FTS_TABLE

from ._local import LocalVectorInsights
from ._memory import INSIGHTS, Candidates, Memory

_FTS = sa.table(FTS_TABLE, sa.column("rowid"))
_FTS_SELF: sa.ColumnClause[Any] = sa.literal_column(FTS_TABLE)


class SQLiteInsights(LocalVectorInsights):
    """Insights on SQLite: keyword search through the trigger-maintained FTS5 table (porter stemming).

    The FTS5 rowid is the insight's ``search_key`` (never its own rowid, which VACUUM and
    table rebuilds may renumber).
    """

    def _keyword_candidates(
        self,
        conn: sa.Connection,
        user_id: str,
        words: Sequence[str],
        k: int,
        conditions: Sequence[sa.ColumnElement[bool]],
    ) -> Candidates:
        # Each word quoted (so no FTS5 syntax gets through), any of them may match.
        match = " OR ".join('"' + word.replace('"', '""') + '"' for word in words)
        rank = sa.func.bm25(_FTS_SELF)
        query = (
            sa.select(INSIGHTS.c.id, rank)
            .select_from(_FTS.join(INSIGHTS, INSIGHTS.c.search_key == _FTS.c.rowid))
            .where(_FTS_SELF.op("MATCH")(match), INSIGHTS.c.user_id == user_id, *conditions)
            .order_by(rank)
            .limit(k)
        )
        # bm25 is lower-is-better; hits carry its negation so that higher is better everywhere.
        return [(row[0], -float(row[1])) for row in conn.execute(query)]


class SQLiteMemory(Memory):
    """Memory on a SQLite file."""

    backend = "sqlite"
    insights_class = SQLiteInsights
