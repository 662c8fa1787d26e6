"""agent log summarization: claim marker, unsummarized-log index, one running job per user, keyset indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 12:20:00.000000

Summarization claims a batch of a user's logs (``agent_logs.summary_batch``) before it asks
the summarizer, so a run that dies halfway is finished later with exactly that batch and its
insights are written once. It reads a user's unsummarized logs oldest first: the partial
index holds only those, so it stays small however many logs were summarized. The partial
unique index on ``summarization_jobs`` lets only one run at a time work on a user.
Log pages are keyset pages on (created_at, id); the user and session indexes gain ``id`` so
a page inside one batch's rows (all with one created_at) is a range scan, not a scan of
every tie.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in ("user_id", "session_id"):
        op.drop_index(op.f(f"ix_agent_logs_{column}_created_at"), table_name="agent_logs")
        op.create_index(
            op.f(f"ix_agent_logs_{column}_created_at_id"), "agent_logs", [column, "created_at", "id"]
        )
    with op.batch_alter_table("agent_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("summary_batch", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_agent_logs_unsummarized",
        "agent_logs",
        ["user_id", "created_at", "id"],
        unique=False,
        sqlite_where=sa.text("summarized_at IS NULL"),
        postgresql_where=sa.text("summarized_at IS NULL"),
    )
    op.create_index(
        "uq_summarization_jobs_running_user",
        "summarization_jobs",
        ["user_id"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("uq_summarization_jobs_running_user", table_name="summarization_jobs")
    op.drop_index("ix_agent_logs_unsummarized", table_name="agent_logs")
    with op.batch_alter_table("agent_logs", schema=None) as batch_op:
        batch_op.drop_column("summary_batch")
    for column in ("session_id", "user_id"):
        op.drop_index(op.f(f"ix_agent_logs_{column}_created_at_id"), table_name="agent_logs")
        op.create_index(op.f(f"ix_agent_logs_{column}_created_at"), "agent_logs", [column, "created_at"])
