"""The access rules, as SQL predicates every query of the brain embeds.

A user sees their own records and their teams' records; owners and admins of a team may
change its records, plain members only read them. The rules are expressions, not checks
done in Python after a read, so no query can forget them and a membership change counts
from the very next statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import sqlalchemy as sa

from ..schema import TABLES

WRITE_ROLES = ("owner", "admin")

Id: TypeAlias = str | sa.BindParameter[Any]
"""An id, or a bind parameter standing for one in a statement built once and reused."""

ACTOR: sa.BindParameter[str] = sa.bindparam("actor")

users = TABLES["users"]
teams = TABLES["teams"]
team_members = TABLES["team_members"]
projects = TABLES["projects"]
missions = TABLES["missions"]
tasks = TABLES["tasks"]
task_dependencies = TABLES["task_dependencies"]
conversations = TABLES["conversations"]
messages = TABLES["messages"]
agents = TABLES["agents"]


# Aliases are built once: building one per query costs more than running the query.
_actor_teams = team_members.alias("actor_teams")
_shared_teams = team_members.alias("shared_teams")
_access_projects = projects.alias("access_projects")


def teams_of(actor: Id, roles: Sequence[str] | None = None) -> sa.Select[Any]:
    """Ids of the teams ``actor`` belongs to (with one of ``roles``, when given)."""
    tm = _actor_teams
    query = sa.select(tm.c.team_id).where(tm.c.user_id == actor)
    if roles is not None:
        query = query.where(tm.c.role.in_(roles))
    return query


def in_team(actor: str, team_id: str, roles: Sequence[str] | None = None) -> sa.ColumnElement[bool]:
    """Whether ``actor`` belongs to ``team_id`` (with one of ``roles``, when given)."""
    return sa.literal(team_id).in_(teams_of(actor, roles))


def project_visible(actor: Id, table: sa.Table | Any = projects) -> sa.ColumnElement[bool]:
    """Rows of ``projects`` that ``actor`` may read."""
    return sa.or_(table.c.owner_id == actor, table.c.team_id.in_(teams_of(actor)))


def project_writable(actor: Id, table: sa.Table | Any = projects) -> sa.ColumnElement[bool]:
    """Rows of ``projects`` that ``actor`` may change."""
    return sa.or_(table.c.owner_id == actor, table.c.team_id.in_(teams_of(actor, WRITE_ROLES)))


def _in_project(
    table: sa.Table, actor: Id, *, write: bool, project_id: Id | None = None
) -> sa.ColumnElement[bool]:
    # IN, not a correlated EXISTS: SQLite then builds the set of projects once, not once per row.
    p = _access_projects
    rule = project_writable(actor, p) if write else project_visible(actor, p)
    if project_id is not None:
        # Filtered to one project, the private branch below cannot match: leaving it out spares
        # the planner an OR, so the project's index serves the page, and the rule is checked
        # once, on the project's primary key.
        project_ok = sa.exists().where(p.c.id == project_id, rule)
        return sa.and_(table.c.project_id == project_id, project_ok)
    # A mission or task without a project is private to the user who created it.
    return sa.or_(
        table.c.project_id.in_(sa.select(p.c.id).where(rule)),
        sa.and_(table.c.project_id.is_(None), table.c.created_by == actor),
    )


def work_visible(table: sa.Table, actor: Id, project_id: Id | None = None) -> sa.ColumnElement[bool]:
    """Rows of ``missions`` or ``tasks`` that ``actor`` may read (by their project).

    With ``project_id``, only that project's rows (the same rule, spelled for its index).
    """
    return _in_project(table, actor, write=False, project_id=project_id)


def work_writable(table: sa.Table, actor: Id) -> sa.ColumnElement[bool]:
    """Rows of ``missions`` or ``tasks`` that ``actor`` may change (by their project)."""
    return _in_project(table, actor, write=True)


def agent_visible(actor: Id) -> sa.ColumnElement[bool]:
    """Agents ``actor`` may read: system agents, their own and their teams'."""
    return sa.or_(
        agents.c.is_system.is_(True),
        agents.c.owner_id == actor,
        agents.c.team_id.in_(teams_of(actor)),
    )


def agent_writable(actor: Id) -> sa.ColumnElement[bool]:
    """Agents ``actor`` may change: their own and those of teams they own or administer."""
    return sa.and_(
        agents.c.is_system.is_(False),
        sa.or_(agents.c.owner_id == actor, agents.c.team_id.in_(teams_of(actor, WRITE_ROLES))),
    )


def user_visible(actor: Id) -> sa.ColumnElement[bool]:
    """Users ``actor`` may read: themselves and everyone sharing a team with them."""
    tm = _shared_teams
    return sa.or_(
        users.c.id == actor,
        users.c.id.in_(sa.select(tm.c.user_id).where(tm.c.team_id.in_(teams_of(actor)))),
    )


def conversation_visible(actor: Id) -> sa.ColumnElement[bool]:
    """Conversations are private to their user."""
    return conversations.c.user_id == actor
