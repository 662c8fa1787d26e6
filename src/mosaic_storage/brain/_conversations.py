"""Conversations and their messages: private to their user, appended in order, read in windows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .._ids import new_id
from .._types import utcnow
from ..schema import MESSAGE_ROLES
from ._access import (
    agent_visible,
    agents,
    conversation_visible,
    conversations,
    messages,
    project_visible,
    projects,
)
from ._base import (
    DEFAULT_PAGE_SIZE,
    Repository,
    check_one_of,
    exists,
    keyset,
    not_found,
    page_size,
    record_columns,
)
from ._records import Conversation, Message, Page, from_row


class Conversations(Repository):
    """A user's conversations with agents. Only the user who owns a conversation sees it."""

    def create(
        self,
        actor: str,
        *,
        title: str | None = None,
        agent_id: str | None = None,
        project_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Conversation:
        """Start a conversation of ``actor``, optionally with an agent and about a project they can see.

        Raises:
            NotFound: the agent or project is not visible to ``actor``.
        """
        now = utcnow()
        values = {
            "id": new_id(),
            "user_id": actor,
            "agent_id": agent_id,
            "project_id": project_id,
            "title": title,
            "archived": False,
            "metadata": dict(metadata or {}),
            "created_at": now,
            "updated_at": now,
        }
        with self._begin() as conn:
            if agent_id is not None and not exists(conn, agents, agent_id, agent_visible(actor)):
                raise not_found("agent", agent_id)
            if project_id is not None and not exists(conn, projects, project_id, project_visible(actor)):
                raise not_found("project", project_id)
            conn.execute(sa.insert(conversations).values(**values))
        return from_row(Conversation, values)

    def get(self, actor: str, conversation_id: str) -> Conversation:
        """The conversation, if it is ``actor``'s.

        Raises:
            NotFound: no such conversation, or someone else's.
        """
        query = sa.select(*record_columns(conversations, Conversation)).where(
            conversations.c.id == conversation_id, conversation_visible(actor)
        )
        row = self._read(lambda conn: conn.execute(query).first())
        if row is None:
            raise not_found("conversation", conversation_id)
        return Conversation(*row)

    def list(
        self,
        actor: str,
        *,
        archived: bool | None = False,
        project_id: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[Conversation]:
        """``actor``'s conversations, oldest first; ``archived=None`` lists archived ones too."""
        query = sa.select(*record_columns(conversations, Conversation)).where(conversation_visible(actor))
        if archived is not None:
            query = query.where(conversations.c.archived.is_(archived))
        if project_id is not None:
            query = query.where(conversations.c.project_id == project_id)
        query = keyset(query, conversations.c.id, after=cursor is not None)
        return self._read_page(query, {}, Conversation, cursor=cursor, limit=limit)

    def search(self, actor: str, text: str, *, limit: int = DEFAULT_PAGE_SIZE) -> tuple[Conversation, ...]:
        """``actor``'s conversations whose title contains ``text`` (any case), most recently active first."""
        query = (
            sa.select(*record_columns(conversations, Conversation))
            .where(conversation_visible(actor), conversations.c.title.icontains(text, autoescape=True))
            .order_by(conversations.c.updated_at.desc(), conversations.c.id.desc())
            .limit(page_size(limit))
        )
        return self._read(lambda conn: tuple(Conversation(*row) for row in conn.execute(query)))

    def rename(self, actor: str, conversation_id: str, title: str | None) -> Conversation:
        """Set the conversation's title.

        Raises:
            NotFound: no such conversation, or someone else's.
        """
        return self._set(actor, conversation_id, title=title)

    def archive(self, actor: str, conversation_id: str, *, archived: bool = True) -> Conversation:
        """Archive the conversation (``archived=False`` brings it back).

        Raises:
            NotFound: no such conversation, or someone else's.
        """
        return self._set(actor, conversation_id, archived=archived)

    def delete(self, actor: str, conversation_id: str) -> None:
        """Delete the conversation and its messages; only its user may.

        Raises:
            NotFound: no such conversation, or someone else's (the two look the same).
        """
        with self._begin() as conn:
            result = conn.execute(
                sa.delete(conversations).where(
                    conversations.c.id == conversation_id, conversation_visible(actor)
                )
            )
            if result.rowcount != 1:
                raise not_found("conversation", conversation_id)

    def _set(self, actor: str, conversation_id: str, **values: Any) -> Conversation:
        with self._begin() as conn:
            row = (
                conn.execute(
                    sa.update(conversations)
                    .where(conversations.c.id == conversation_id, conversation_visible(actor))
                    .values(**values, updated_at=utcnow())
                    .returning(*conversations.c)
                )
                .mappings()
                .first()
            )
        if row is None:
            raise not_found("conversation", conversation_id)
        return from_row(Conversation, row)

    def append(
        self,
        actor: str,
        conversation_id: str,
        role: str,
        content: str = "",
        *,
        tool_calls: Sequence[Any] | None = None,
        tool_call_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Append a message; its ``seq`` is one more than the last one's, even under concurrent appends.

        Raises:
            NotFound: no such conversation, or someone else's.
        """
        check_one_of("role", role, MESSAGE_ROLES)
        now = utcnow()
        with self._begin() as conn:
            # Touching the conversation first locks its row (PostgreSQL) or the file (SQLite), so
            # appends to one conversation are serialized and max(seq) + 1 is never taken twice.
            touched = conn.execute(
                sa.update(conversations)
                .where(conversations.c.id == conversation_id, conversation_visible(actor))
                .values(updated_at=now)
            )
            if touched.rowcount != 1:
                raise not_found("conversation", conversation_id)
            seq = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(messages.c.seq), 0) + 1).where(
                    messages.c.conversation_id == conversation_id
                )
            ).scalar_one()
            values = {
                "id": new_id(),
                "conversation_id": conversation_id,
                "seq": seq,
                "role": role,
                "content": content,
                "tool_calls": list(tool_calls) if tool_calls is not None else None,
                "tool_call_id": tool_call_id,
                "metadata": dict(metadata or {}),
                "created_at": now,
            }
            conn.execute(sa.insert(messages).values(**values))
        return from_row(Message, values)

    def messages(
        self, actor: str, conversation_id: str, *, last: int = DEFAULT_PAGE_SIZE, before: str | None = None
    ) -> tuple[Message, ...]:
        """A window of the conversation: the ``last`` messages (before message ``before``), oldest first.

        Raises:
            NotFound: no such conversation, or someone else's, or ``before`` is not one of its messages.
        """
        size = page_size(last)

        def read(conn: Any) -> tuple[Message, ...]:
            if not exists(conn, conversations, conversation_id, conversation_visible(actor)):
                raise not_found("conversation", conversation_id)
            query = sa.select(*record_columns(messages, Message)).where(
                messages.c.conversation_id == conversation_id
            )
            if before is not None:
                anchor = conn.execute(
                    sa.select(messages.c.seq).where(
                        messages.c.id == before, messages.c.conversation_id == conversation_id
                    )
                ).scalar()
                if anchor is None:
                    raise not_found("message", before)
                query = query.where(messages.c.seq < anchor)
            rows = conn.execute(query.order_by(messages.c.seq.desc()).limit(size)).all()
            return tuple(Message(*row) for row in reversed(rows))

        return self._read(read)
