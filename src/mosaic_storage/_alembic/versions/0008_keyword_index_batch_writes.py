"""SQLite keyword index: the insert trigger indexes only rows not indexed yet (batch writers index their own)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 15:45:00.000000

An FTS5 insert run by a trigger costs about as much as the insight row itself (FTS5 flushes its
pending terms at each trigger statement). The library's batch insert now keys its rows itself
(after the highest key, under the write lock) and writes their index entries first, in one
executemany; ``insights_fts_insert`` then indexes only a keyed row that has no entry yet, so rows
written by anything else (without a key, or with one, as a copy keeps it) are indexed as before.
No data changes. PostgreSQL: nothing to do.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Frozen copies of the trigger as of 0006 (down) and of this revision (up).
_BEFORE = """
    CREATE TRIGGER insights_fts_insert AFTER INSERT ON insights
    WHEN new.search_key IS NOT NULL BEGIN
        INSERT INTO insights_fts (rowid, text) VALUES (new.search_key, new.text);
    END"""
_AFTER = """
    CREATE TRIGGER insights_fts_insert AFTER INSERT ON insights
    WHEN new.search_key IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM insights_fts WHERE rowid = new.search_key) BEGIN
        INSERT INTO insights_fts (rowid, text) VALUES (new.search_key, new.text);
    END"""


def _replace(ddl: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS insights_fts_insert")
    op.execute(ddl)


def upgrade() -> None:
    _replace(_AFTER)


def downgrade() -> None:
    _replace(_BEFORE)
