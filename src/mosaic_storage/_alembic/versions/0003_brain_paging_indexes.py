"""brain paging indexes: keyset pages of a project's or an assignee's tasks, and a project's missions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 12:10:00.000000

Brain lists page by ``id`` within a filter. Without ``(project_id, id)`` the planner either
sorts every task of the project per page or walks the primary key and filters; with it a
page is an index range scan that stops after ``limit`` rows.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_tasks_project_id_id"), "tasks", ["project_id", "id"], unique=False)
    op.create_index(op.f("ix_tasks_assignee_id_id"), "tasks", ["assignee_id", "id"], unique=False)
    op.create_index(op.f("ix_missions_project_id_id"), "missions", ["project_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_missions_project_id_id"), table_name="missions")
    op.drop_index(op.f("ix_tasks_assignee_id_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_project_id_id"), table_name="tasks")
