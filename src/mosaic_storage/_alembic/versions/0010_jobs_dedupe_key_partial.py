"""jobs: the dedupe key's unique index holds only jobs that have a key

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 01:10:00.000000

Most jobs have no dedupe key, and a PostgreSQL row update that changes an indexed column
(``status`` does, at every reserve and ack) adds an entry to every index of the table: the
unique constraint on ``dedupe_key`` took one per job per state change, all of them NULL.
A partial unique index (``WHERE dedupe_key IS NOT NULL``) keeps the same uniqueness without
them. Measured on PostgreSQL 18, ``reserve(100)`` + ``ack_many``: 21,300-27,400 -> 31,400-32,800
jobs/s. Enqueues name the index's condition in ``ON CONFLICT (dedupe_key) WHERE ...``.
SQLite rebuilds the table to drop the inline constraint (``ix_jobs_unfinished`` is made again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

HAS_KEY = "dedupe_key IS NOT NULL"
NOT_DONE = "status <> 'done'"


def _unfinished_index() -> None:
    op.create_index(
        "ix_jobs_unfinished",
        "jobs",
        [sa.column("status").desc(), "run_at"],
        sqlite_where=sa.text(NOT_DONE),
        postgresql_where=sa.text(NOT_DONE),
    )


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.drop_index("ix_jobs_unfinished", table_name="jobs")
        with op.batch_alter_table("jobs", schema=None, recreate="always") as batch_op:
            batch_op.drop_constraint("uq_jobs_dedupe_key", type_="unique")
        _unfinished_index()
    else:
        op.drop_constraint("uq_jobs_dedupe_key", "jobs", type_="unique")
    op.create_index(
        "uq_jobs_dedupe_key",
        "jobs",
        ["dedupe_key"],
        unique=True,
        sqlite_where=sa.text(HAS_KEY),
        postgresql_where=sa.text(HAS_KEY),
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_dedupe_key", table_name="jobs")
    if op.get_context().dialect.name == "sqlite":
        op.drop_index("ix_jobs_unfinished", table_name="jobs")
        with op.batch_alter_table("jobs", schema=None, recreate="always") as batch_op:
            batch_op.create_unique_constraint("uq_jobs_dedupe_key", ["dedupe_key"])
        _unfinished_index()
    else:
        op.create_unique_constraint("uq_jobs_dedupe_key", "jobs", ["dedupe_key"])
