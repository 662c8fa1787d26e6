"""project status check: projects.status is one of PROJECT_STATUSES, as tasks' and missions' are

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 12:40:00.000000

Rows written before this revision could hold any status. They are not rewritten: the upgrade
stops, names the values found and changes nothing, so their owner decides what they mean.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mosaic_storage._errors import SchemaError
from mosaic_storage.schema import PROJECT_STATUSES

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ALLOWED = ", ".join(f"'{status}'" for status in PROJECT_STATUSES)


def upgrade() -> None:
    projects = sa.table("projects", sa.column("status", sa.String))
    found = (
        op.get_bind()
        .execute(
            sa.select(projects.c.status)
            .where(projects.c.status.not_in(PROJECT_STATUSES))
            .distinct()
            .order_by(projects.c.status)
            .limit(10)
        )
        .scalars()
        .all()
    )
    if found:
        raise SchemaError(
            f"projects hold statuses this version does not allow: {', '.join(map(repr, found))}",
            remediation=(
                f"set them to one of {', '.join(PROJECT_STATUSES)} "
                "(UPDATE projects SET status = ... WHERE status = ...), then upgrade again"
            ),
        )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f("ck_projects_status"), f"status IN ({_ALLOWED})")


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_projects_status"), type_="check")
