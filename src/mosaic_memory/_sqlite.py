"""The SQLite memory store (local tier): FTS5 keyword search, numpy vector search in process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from mosaic_storage._migrations import FTS_TABLE

from ._local import LocalVectorInsights
from ._memory import INSIGHTS, Candidates, Memory

_FTS = sa.table(FTS_TABLE, sa.column("rowid"))

#: English stop words (Snowball's list, which PostgreSQL's ``english`` configuration uses), left
#: out of keyword queries as PostgreSQL leaves them out: ORed in, "is" or "the" would match
#: nearly every insight and drown the words that matter in hybrid search.
STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
    her hers herself it its itself they them their theirs themselves what which who whom this that
    these those am is are was were be been being have has had having do does did doing a an the and
    but if or because as until while of at by for with about against between into through during
    before after above below to from up down in out on off over under again further then once here
    there when where why how all any both each few more most other some such no nor not only own
    same so than too very s t can will just don should now
    """.split()  # noqa: SIM905 - one readable block of words
)
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
        # Each word quoted (so no FTS5 syntax gets through), any of them may match; stop words
        # are left out, as PostgreSQL's english configuration does.
        words = [word for word in words if word.lower() not in STOP_WORDS]
        if not words:
            return []
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

    def _insert_rows(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        # An FTS5 insert run by the per-row trigger costs as much as the row; one executemany
        # of the batch's entries costs a fraction. So the rows are keyed here, after the
        # highest key, and their entries written first: the insert trigger skips a row whose
        # entry exists (0008). The transaction holds SQLite's write lock (the generation bump
        # came first), so the keys are still free when it commits.
        highest = conn.execute(sa.select(sa.func.max(INSIGHTS.c.search_key))).scalar_one() or 0
        # Past an orphaned entry too (the index check reports those): its key would clash.
        entry = conn.exec_driver_sql(f"SELECT rowid FROM {FTS_TABLE} ORDER BY rowid DESC LIMIT 1").scalar()
        for key, row in enumerate(rows, max(highest, entry or 0) + 1):
            row["search_key"] = key
        conn.exec_driver_sql(
            f"INSERT INTO {FTS_TABLE} (rowid, text) VALUES (?, ?)",
            [(row["search_key"], row["text"]) for row in rows],
        )
        super()._insert_rows(conn, rows)


class SQLiteMemory(Memory):
    """Memory on a SQLite file."""

    backend = "sqlite"
    insights_class = SQLiteInsights
