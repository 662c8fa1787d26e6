"""summarization heartbeat and per-log attempts: a live slow run is not taken over; a poison log is parked

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 13:45:00.000000

``summarization_jobs.heartbeat_at`` is refreshed by a run at each claim and finish; another
run takes a ``running`` row over only when its heartbeat (not its start) is older than the
stale limit. ``agent_logs.summary_attempts`` counts the failed summarizer calls of the batch
that claimed a log; after a few the batch is split and a log that still fails is parked:
``summarized_at`` set and ``summary_error`` recorded, so the user's other logs go on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs: no table rebuild on SQLite.
    op.add_column("summarization_jobs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "agent_logs",
        sa.Column("summary_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("agent_logs", sa.Column("summary_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agent_logs", schema=None) as batch_op:
        batch_op.drop_column("summary_error")
        batch_op.drop_column("summary_attempts")
    with op.batch_alter_table("summarization_jobs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
