"""insight search key: SQLite's keyword index keyed on a stable integer column, not the rowid

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 12:30:00.000000

Revision 0002 keyed ``insights_fts`` on the implicit rowid of ``insights``. That table's
primary key is text, so its rowids are not stable: VACUUM, batch-mode table rebuilds and
dump/restore may renumber them, after which keyword hits point at other insights (other
users' too). This adds ``insights.search_key`` (an integer with a unique index; triggers
fill it on insert), keys the FTS5 table on it, and rebuilds the FTS5 content.

On PostgreSQL the column is added for one schema on every backend and stays unused there:
``search_vector`` is a generated column of the row itself.

A later revision that rebuilds ``insights`` in batch mode drops its triggers with the old
table: it must recreate them (`mosaic_storage._keyword_index.install_sqlite_keyword_index`
as of that revision), or `check_keyword_index` reports them missing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_FTS_CREATE = "CREATE VIRTUAL TABLE insights_fts USING fts5(text, tokenize = 'porter unicode61')"

# Frozen copies: the triggers as of this revision (the library's current ones live in
# mosaic_storage._keyword_index; `check_keyword_index` compares the two).
_TRIGGERS = {
    "insights_fts_key": """
        CREATE TRIGGER insights_fts_key AFTER INSERT ON insights
        WHEN new.search_key IS NULL BEGIN
            UPDATE insights SET search_key = (
                SELECT coalesce(max(search_key), 0) + 1 FROM insights
            ) WHERE rowid = new.rowid;
            INSERT INTO insights_fts (rowid, text)
                SELECT search_key, new.text FROM insights WHERE rowid = new.rowid;
        END""",
    "insights_fts_insert": """
        CREATE TRIGGER insights_fts_insert AFTER INSERT ON insights
        WHEN new.search_key IS NOT NULL BEGIN
            INSERT INTO insights_fts (rowid, text) VALUES (new.search_key, new.text);
        END""",
    "insights_fts_update": """
        CREATE TRIGGER insights_fts_update AFTER UPDATE OF text ON insights BEGIN
            UPDATE insights_fts SET text = new.text WHERE rowid = old.search_key;
        END""",
    "insights_fts_rekey": """
        CREATE TRIGGER insights_fts_rekey AFTER UPDATE OF search_key ON insights
        WHEN old.search_key IS NOT NULL BEGIN
            DELETE FROM insights_fts WHERE rowid = old.search_key;
            INSERT INTO insights_fts (rowid, text)
                SELECT new.search_key, new.text WHERE new.search_key IS NOT NULL;
        END""",
    "insights_fts_delete": """
        CREATE TRIGGER insights_fts_delete AFTER DELETE ON insights BEGIN
            DELETE FROM insights_fts WHERE rowid = old.search_key;
        END""",
}

# Revision 0002's triggers (rowid-keyed), restored by the downgrade.
_ROWID_TRIGGERS = {
    "insights_fts_insert": """
        CREATE TRIGGER insights_fts_insert AFTER INSERT ON insights BEGIN
            INSERT INTO insights_fts (rowid, text) VALUES (new.rowid, new.text);
        END""",
    "insights_fts_delete": """
        CREATE TRIGGER insights_fts_delete AFTER DELETE ON insights BEGIN
            DELETE FROM insights_fts WHERE rowid = old.rowid;
        END""",
    "insights_fts_update": """
        CREATE TRIGGER insights_fts_update AFTER UPDATE OF text ON insights BEGIN
            UPDATE insights_fts SET text = new.text WHERE rowid = old.rowid;
        END""",
}


def _drop_keyword_index() -> None:
    for name in {*_TRIGGERS, *_ROWID_TRIGGERS}:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS insights_fts")


def upgrade() -> None:
    # A plain ADD COLUMN on SQLite: the table (and its current rowids) stay as they are.
    op.add_column("insights", sa.Column("search_key", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # Today's rowids are unique, so they make a fine first set of keys.
        op.execute("UPDATE insights SET search_key = rowid")
    op.create_index(op.f("ix_insights_search_key"), "insights", ["search_key"], unique=True)
    if op.get_bind().dialect.name == "sqlite":
        _drop_keyword_index()
        op.execute(_FTS_CREATE)
        op.execute("INSERT INTO insights_fts (rowid, text) SELECT search_key, text FROM insights")
        for ddl in _TRIGGERS.values():
            op.execute(ddl)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        _drop_keyword_index()
    op.drop_index(op.f("ix_insights_search_key"), table_name="insights")
    # On SQLite this rebuilds the table (new rowids): the rowid-keyed index is built after it.
    with op.batch_alter_table("insights", schema=None) as batch_op:
        batch_op.drop_column("search_key")
    if sqlite:
        op.execute(_FTS_CREATE)
        op.execute("INSERT INTO insights_fts (rowid, text) SELECT rowid, text FROM insights")
        for ddl in _ROWID_TRIGGERS.values():
            op.execute(ddl)
