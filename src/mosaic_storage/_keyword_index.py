"""The keyword index of insights: SQLite's FTS5 table, its triggers, a consistency check and a rebuild.

On SQLite, ``insights_fts`` is keyed on ``insights.search_key``, an integer column with a unique
index that triggers fill on insert. The implicit rowid of ``insights`` cannot be the key: its
primary key is text, so VACUUM, batch table rebuilds and dump/restore may renumber rowids, and
every keyword hit would then point at another insight, possibly another user's. PostgreSQL
needs none of this: its ``search_vector`` is a generated column of the row itself.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs
import sqlalchemy as sa

from ._migrations import FTS_TABLE, SEARCH_VECTOR_COLUMN

if TYPE_CHECKING:
    from ._store import Store

SEARCH_KEY_COLUMN = "search_key"
SEARCH_KEY_INDEX = "ix_insights_search_key"
FTS_CREATE = f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(text, tokenize = 'porter unicode61')"

# A row inserted without a key gets max + 1 (an index lookup) and is indexed in the same
# trigger; a row that arrives with a key (dump/restore, copies) is indexed unless it already has
# an entry. The first keying (NULL -> key) fires no other trigger; a later change of the key
# moves the entry. FTS5 flushes its pending terms at each statement's savepoint, so an FTS
# insert run by a trigger costs about as much as the row itself: the library's own batch
# inserts key their rows and write the entries first, in one executemany, and the insert
# trigger finds them there (0008).
SQLITE_TRIGGERS: dict[str, str] = {
    "insights_fts_key": f"""
        CREATE TRIGGER insights_fts_key AFTER INSERT ON insights
        WHEN new.{SEARCH_KEY_COLUMN} IS NULL BEGIN
            UPDATE insights SET {SEARCH_KEY_COLUMN} = (
                SELECT coalesce(max({SEARCH_KEY_COLUMN}), 0) + 1 FROM insights
            ) WHERE rowid = new.rowid;
            INSERT INTO {FTS_TABLE} (rowid, text)
                SELECT {SEARCH_KEY_COLUMN}, new.text FROM insights WHERE rowid = new.rowid;
        END""",
    "insights_fts_insert": f"""
        CREATE TRIGGER insights_fts_insert AFTER INSERT ON insights
        WHEN new.{SEARCH_KEY_COLUMN} IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM {FTS_TABLE} WHERE rowid = new.{SEARCH_KEY_COLUMN}) BEGIN
            INSERT INTO {FTS_TABLE} (rowid, text) VALUES (new.{SEARCH_KEY_COLUMN}, new.text);
        END""",
    "insights_fts_update": f"""
        CREATE TRIGGER insights_fts_update AFTER UPDATE OF text ON insights BEGIN
            UPDATE {FTS_TABLE} SET text = new.text WHERE rowid = old.{SEARCH_KEY_COLUMN};
        END""",
    "insights_fts_rekey": f"""
        CREATE TRIGGER insights_fts_rekey AFTER UPDATE OF {SEARCH_KEY_COLUMN} ON insights
        WHEN old.{SEARCH_KEY_COLUMN} IS NOT NULL BEGIN
            DELETE FROM {FTS_TABLE} WHERE rowid = old.{SEARCH_KEY_COLUMN};
            INSERT INTO {FTS_TABLE} (rowid, text)
                SELECT new.{SEARCH_KEY_COLUMN}, new.text WHERE new.{SEARCH_KEY_COLUMN} IS NOT NULL;
        END""",
    "insights_fts_delete": f"""
        CREATE TRIGGER insights_fts_delete AFTER DELETE ON insights BEGIN
            DELETE FROM {FTS_TABLE} WHERE rowid = old.{SEARCH_KEY_COLUMN};
        END""",
}

REBUILD_HINT = "run `mosaic memory reindex` (or mosaic_memory.rebuild_keyword_index(store))"


@attrs.frozen
class KeywordIndexReport:
    """What `check_keyword_index` found: ``ok`` when every insight is found by keyword search as it is."""

    backend: str
    insights: int
    """Insights in the store."""
    indexed: int
    """Entries in the keyword index (SQLite; on PostgreSQL the same as ``insights``)."""
    problems: tuple[str, ...] = ()
    """What is wrong, one line each; empty when the index agrees with the insights."""

    @property
    def ok(self) -> bool:
        """Whether the index agrees with the insights (no problems)."""
        return not self.problems

    @property
    def remediation(self) -> str | None:
        """What to do about the problems (None when there are none)."""
        return REBUILD_HINT if self.problems else None


def _normalised(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip().lower()


def keyword_index_report(conn: sa.Connection) -> KeywordIndexReport:
    """Check the keyword index behind an open connection (only reads; see `check_keyword_index`)."""
    insights = int(conn.exec_driver_sql("SELECT count(*) FROM insights").scalar_one())
    if conn.dialect.name != "sqlite":
        generated = conn.exec_driver_sql(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'insights' "
            "AND column_name = %(name)s AND table_schema = current_schema()",
            {"name": SEARCH_VECTOR_COLUMN},
        ).scalar_one()
        missing = () if generated else (f"the column insights.{SEARCH_VECTOR_COLUMN} is missing",)
        return KeywordIndexReport("postgresql", insights, insights, missing)

    problems: list[str] = []
    schema: dict[str, str] = {
        str(name): str(sql)
        for name, sql in conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('trigger', 'table') AND name LIKE 'insights%'"
        )
    }
    if FTS_TABLE not in schema or f"{FTS_TABLE}_content" not in schema:
        return KeywordIndexReport("sqlite", insights, 0, (f"the keyword index table {FTS_TABLE} is missing",))
    for name, ddl in SQLITE_TRIGGERS.items():
        if name not in schema:
            problems.append(f"trigger {name} is missing: new and changed insights are not indexed")
        elif _normalised(schema[name]) != _normalised(ddl):
            problems.append(f"trigger {name} is not the current definition")
    # Read through FTS5's content table (id, c0: the text of each entry) rather than the virtual
    # table: the same rows, about six times faster at 100k insights.
    content = f"{FTS_TABLE}_content"
    indexed = int(conn.exec_driver_sql(f"SELECT count(*) FROM {content}").scalar_one())
    unkeyed = int(
        conn.exec_driver_sql(f"SELECT count(*) FROM insights WHERE {SEARCH_KEY_COLUMN} IS NULL").scalar_one()
    )
    present, stale = conn.exec_driver_sql(
        f"SELECT count(f.id), coalesce(sum(f.id IS NULL OR f.c0 IS NOT i.text), 0) "
        f"FROM insights i LEFT JOIN {content} f ON f.id = i.{SEARCH_KEY_COLUMN} "
        f"WHERE i.{SEARCH_KEY_COLUMN} IS NOT NULL"
    ).one()
    if unkeyed:
        problems.append(f"{unkeyed} insights have no {SEARCH_KEY_COLUMN}: keyword search cannot find them")
    if stale:
        problems.append(f"{stale} insights are missing from the keyword index or indexed with another text")
    # Keys are unique, so each entry found through an insight's key is one entry; the rest are orphans.
    orphaned = indexed - int(present)
    if orphaned > 0:
        problems.append(f"{orphaned} keyword index entries belong to no insight")
    return KeywordIndexReport("sqlite", insights, indexed, tuple(problems))


def check_keyword_index(store: Store) -> KeywordIndexReport:
    """Whether keyword search sees every insight as it is stored (reads only; O(rows)).

    On SQLite it compares the FTS5 table with ``insights`` row by row and checks that the
    triggers that keep it in sync are in place; on PostgreSQL the index is a generated
    column and is checked for presence. Fix what it reports with `rebuild_keyword_index`.
    """
    with store.engine.connect() as conn:
        return keyword_index_report(conn)


def install_sqlite_keyword_index(conn: sa.Connection) -> None:
    """(Re)create the FTS5 table and its triggers, keying unkeyed insights and indexing every insight."""
    for name in SQLITE_TRIGGERS:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    conn.exec_driver_sql(
        f"UPDATE insights SET {SEARCH_KEY_COLUMN} = (SELECT coalesce(max({SEARCH_KEY_COLUMN}), 0) "
        f"FROM insights) + rowid WHERE {SEARCH_KEY_COLUMN} IS NULL"
    )
    conn.exec_driver_sql(FTS_CREATE)
    conn.exec_driver_sql(
        f"INSERT INTO {FTS_TABLE} (rowid, text) SELECT {SEARCH_KEY_COLUMN}, text FROM insights"
    )
    for ddl in SQLITE_TRIGGERS.values():
        conn.exec_driver_sql(ddl)


def rebuild_keyword_index(store: Store) -> KeywordIndexReport:
    """Rebuild the keyword index from the insights, in one transaction; returns the check after it.

    On SQLite: keys the insights that have none, rebuilds the FTS5 table and recreates its
    triggers. On PostgreSQL: rebuilds the GIN index of the generated column (``REINDEX``).
    Admin function: it reads every user's insights.
    """
    from ._migrations import SEARCH_VECTOR_INDEX

    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            install_sqlite_keyword_index(conn)
        else:
            conn.exec_driver_sql(f"REINDEX INDEX {SEARCH_VECTOR_INDEX}")
        return keyword_index_report(conn)
