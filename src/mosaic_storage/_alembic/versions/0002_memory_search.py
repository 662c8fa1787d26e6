"""memory search: insight history, text hashes, keyword search, per-user generations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:45:00.000000

Keyword search lives outside the models because it is backend-specific: on SQLite an FTS5
table ``insights_fts`` (rowid = the insight's rowid) kept in sync by triggers, so rows
written by anything (migrate-tier included) are searchable; on PostgreSQL a generated
``search_vector`` tsvector column with a GIN index. `include_object` leaves both out of
`schema_diff`.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

from mosaic_storage._migrations import FTS_TABLE, SEARCH_VECTOR_COLUMN, SEARCH_VECTOR_INDEX

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = {
    "insights_fts_insert": f"""
        CREATE TRIGGER insights_fts_insert AFTER INSERT ON insights BEGIN
            INSERT INTO {FTS_TABLE} (rowid, text) VALUES (new.rowid, new.text);
        END""",
    "insights_fts_delete": f"""
        CREATE TRIGGER insights_fts_delete AFTER DELETE ON insights BEGIN
            DELETE FROM {FTS_TABLE} WHERE rowid = old.rowid;
        END""",
    "insights_fts_update": f"""
        CREATE TRIGGER insights_fts_update AFTER UPDATE OF text ON insights BEGIN
            UPDATE {FTS_TABLE} SET text = new.text WHERE rowid = old.rowid;
        END""",
}


def _backfill_text_hashes() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, text FROM insights WHERE text_hash IS NULL")).all()
    if rows:
        bind.execute(
            sa.text("UPDATE insights SET text_hash = :hash WHERE id = :id"),
            [{"id": id_, "hash": hashlib.sha256(text.encode()).hexdigest()} for id_, text in rows],
        )


def upgrade() -> None:
    op.create_table(
        "insight_history",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("insight_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("old_text", sa.Text(), nullable=True),
        sa.Column("new_text", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('add', 'update', 'merge', 'delete')", name=op.f("ck_insight_history_action")
        ),
        sa.CheckConstraint("actor IN ('user', 'agent')", name=op.f("ck_insight_history_actor")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_history")),
    )
    with op.batch_alter_table("insight_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_insight_history_insight_id_changed_at"), ["insight_id", "changed_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_insight_history_user_id"), ["user_id"], unique=False)

    op.create_table(
        "insight_generations",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_insight_generations")),
    )

    # A plain ADD COLUMN: SQLite keeps the table (and its rowids) as they are.
    op.add_column("insights", sa.Column("text_hash", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_insights_user_id_text_hash"), "insights", ["user_id", "text_hash"], unique=False)
    _backfill_text_hashes()

    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(text, tokenize = 'porter unicode61')")
        op.execute(f"INSERT INTO {FTS_TABLE} (rowid, text) SELECT rowid, text FROM insights")
        for ddl in _SQLITE_TRIGGERS.values():
            op.execute(ddl)
    else:
        op.execute(
            f"ALTER TABLE insights ADD COLUMN {SEARCH_VECTOR_COLUMN} tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED"
        )
        op.execute(f"CREATE INDEX {SEARCH_VECTOR_INDEX} ON insights USING gin ({SEARCH_VECTOR_COLUMN})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    else:
        op.execute(f"DROP INDEX IF EXISTS {SEARCH_VECTOR_INDEX}")
        op.execute(f"ALTER TABLE insights DROP COLUMN IF EXISTS {SEARCH_VECTOR_COLUMN}")
    op.drop_index(op.f("ix_insights_user_id_text_hash"), table_name="insights")
    with op.batch_alter_table("insights", schema=None) as batch_op:
        batch_op.drop_column("text_hash")
    op.drop_table("insight_generations")
    with op.batch_alter_table("insight_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_insight_history_user_id"))
        batch_op.drop_index(batch_op.f("ix_insight_history_insight_id_changed_at"))
    op.drop_table("insight_history")
