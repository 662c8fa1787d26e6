"""Agent configurations: personal, a team's, or system agents everyone may use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .._ids import new_id
from .._types import utcnow
from ._access import agent_visible, agent_writable, agents
from ._base import (
    DEFAULT_PAGE_SIZE,
    UNSET,
    Repository,
    changes,
    insert_owned,
    keyset,
    not_found,
    record_columns,
    versioned_delete,
    versioned_update,
)
from ._records import Agent, Page, from_row


class Agents(Repository):
    """Agents: everyone sees system agents; users see their own and their teams' agents.

    Writers: the owner of a personal agent, owners and admins of the team of a team agent.
    System agents are set up with `create_system` by the deployment and change through no
    ``actor``.
    """

    def create(
        self,
        actor: str,
        *,
        name: str,
        team_id: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        allowed_tools: Sequence[str] = (),
        skills: Sequence[str] = (),
        config: dict[str, Any] | None = None,
    ) -> Agent:
        """Create a personal agent of ``actor``, or one of ``team_id`` (``actor`` its owner or admin).

        Raises:
            NotFound: the team is not visible to ``actor``, or ``actor`` is not a user.
            AccessDenied: ``actor`` is a plain member of the team.
        """
        values = self._values(
            name=name,
            owner_id=None if team_id else actor,
            team_id=team_id,
            provider=provider,
            model=model,
            system_prompt=system_prompt,
            allowed_tools=allowed_tools,
            skills=skills,
            config=config,
            is_system=False,
        )
        with self._begin() as conn:
            insert_owned(conn, agents, values, actor, team_id, "agents")
        return from_row(Agent, values)

    def create_system(
        self,
        *,
        name: str,
        provider: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        allowed_tools: Sequence[str] = (),
        skills: Sequence[str] = (),
        config: dict[str, Any] | None = None,
    ) -> Agent:
        """Create a system agent, visible to every user (deployment set-up: no ``actor``)."""
        values = self._values(
            name=name,
            owner_id=None,
            team_id=None,
            provider=provider,
            model=model,
            system_prompt=system_prompt,
            allowed_tools=allowed_tools,
            skills=skills,
            config=config,
            is_system=True,
        )
        with self._begin() as conn:
            conn.execute(sa.insert(agents).values(**values))
        return from_row(Agent, values)

    @staticmethod
    def _values(**fields: Any) -> dict[str, Any]:
        now = utcnow()
        return {
            **fields,
            "id": new_id(),
            "allowed_tools": list(fields["allowed_tools"]),
            "skills": list(fields["skills"]),
            "config": dict(fields["config"] or {}),
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }

    def get(self, actor: str, agent_id: str) -> Agent:
        """The agent, if ``actor`` may see it.

        Raises:
            NotFound: no such agent, or not visible to ``actor``.
        """
        query = sa.select(*record_columns(agents, Agent)).where(agents.c.id == agent_id, agent_visible(actor))
        row = self._read(lambda conn: conn.execute(query).first())
        if row is None:
            raise not_found("agent", agent_id)
        return Agent(*row)

    def list(
        self,
        actor: str,
        *,
        team_id: str | None = None,
        system: bool | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[Agent]:
        """The agents ``actor`` may see (``system=True``: only system agents; ``False``: leave them out)."""
        query = sa.select(*record_columns(agents, Agent)).where(agent_visible(actor))
        if team_id is not None:
            query = query.where(agents.c.team_id == team_id)
        if system is not None:
            query = query.where(agents.c.is_system.is_(system))
        query = keyset(query, agents.c.id, after=cursor is not None)
        return self._read_page(query, {}, Agent, cursor=cursor, limit=limit)

    def update(
        self,
        actor: str,
        agent_id: str,
        *,
        version: int,
        name: str | Any = UNSET,
        provider: str | Any | None = UNSET,
        model: str | Any | None = UNSET,
        system_prompt: str | Any | None = UNSET,
        allowed_tools: Sequence[str] | Any = UNSET,
        skills: Sequence[str] | Any = UNSET,
        config: dict[str, Any] | Any = UNSET,
    ) -> Agent:
        """Change the given fields if the agent is still at ``version``; returns it at ``version + 1``.

        Raises:
            NotFound: not visible to ``actor``.
            AccessDenied: visible but not changeable (a system agent, or a plain team member).
            ConflictError: it changed since ``version`` was read; nothing was written.
        """
        if allowed_tools is not UNSET:
            allowed_tools = list(allowed_tools)
        if skills is not UNSET:
            skills = list(skills)
        values = changes(
            name=name,
            provider=provider,
            model=model,
            system_prompt=system_prompt,
            allowed_tools=allowed_tools,
            skills=skills,
            config=config,
        )
        with self._begin() as conn:
            row = versioned_update(
                conn,
                agents,
                agent_id,
                version=version,
                values=values,
                writable=agent_writable(actor),
                visible=agent_visible(actor),
                what="agent",
            )
        return from_row(Agent, row)

    def delete(self, actor: str, agent_id: str, *, version: int) -> None:
        """Delete the agent if it is still at ``version``; its conversations stay, without an agent.

        Raises:
            NotFound: not visible to ``actor``.
            AccessDenied: visible but not changeable (a system agent, or a plain team member).
            ConflictError: it changed since ``version`` was read; nothing was deleted.
        """
        with self._begin() as conn:
            versioned_delete(
                conn,
                agents,
                agent_id,
                version=version,
                writable=agent_writable(actor),
                visible=agent_visible(actor),
                what="agent",
            )
