"""The data model: SQLAlchemy 2.0 typed models for every table, in one `MetaData`.

Every table has a text ``id`` primary key (UUIDv7 strings from `new_id`), snake_case
columns, and aware UTC timestamps. Memory tables (preferences, insights, agent logs,
skills, summarization jobs) key on ``user_id`` as an app-chosen string, with no foreign
key to ``users``: memory needs no ``users`` row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ._ids import new_id
from ._types import Embedding, JSONType, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = sa.String(64)


class Base(DeclarativeBase):
    """Declarative base for every Mosaic table."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType, dt.datetime: UTCDateTime}


metadata = Base.metadata


def _id() -> Mapped[str]:
    return mapped_column(ID, primary_key=True, default=new_id)


def _created() -> Mapped[dt.datetime]:
    return mapped_column(UTCDateTime, default=utcnow, nullable=False)


def _updated() -> Mapped[dt.datetime]:
    return mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


def _fk(target: str, *, ondelete: str = "CASCADE", nullable: bool = False) -> Mapped[Any]:
    return mapped_column(ID, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable)


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


TEAM_ROLES = ("owner", "admin", "member")
TASK_STATUSES = ("not_started", "in_progress", "blocked", "done", "cancelled")
TASK_PRIORITIES = ("low", "medium", "high", "critical")
MISSION_STATUSES = ("planning", "active", "paused", "completed", "cancelled")
PROJECT_STATUSES = ("active", "paused", "completed", "archived")
MESSAGE_ROLES = ("system", "user", "assistant", "tool")
PREFERENCE_SOURCES = ("user", "agent")
INSIGHT_ACTIONS = ("add", "update", "merge", "delete")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_TIERS = ("hot", "warm", "cold")
JOB_STATUSES = ("queued", "running", "done", "failed", "dead")
SUMMARIZATION_STATUSES = ("pending", "running", "done", "failed")


# --- identity --------------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = _id()
    email: Mapped[str | None] = mapped_column(sa.String(320), unique=True)
    name: Mapped[str | None] = mapped_column(sa.Text)
    email_verified: Mapped[bool] = mapped_column(sa.Boolean, default=False, nullable=False)
    image: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Account(Base):
    """A login method of a user (OAuth provider or password); durable, so it is migrated."""

    __tablename__ = "accounts"
    __table_args__ = (sa.UniqueConstraint("provider_id", "account_id"),)

    id: Mapped[str] = _id()
    user_id: Mapped[str] = _fk("users.id")
    provider_id: Mapped[str] = mapped_column(sa.String(100))
    account_id: Mapped[str] = mapped_column(sa.String(255))
    access_token: Mapped[str | None] = mapped_column(sa.Text)
    refresh_token: Mapped[str | None] = mapped_column(sa.Text)
    id_token: Mapped[str | None] = mapped_column(sa.Text)
    access_token_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    refresh_token_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    scope: Mapped[str | None] = mapped_column(sa.Text)
    password: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Session(Base):
    """A login session; expires, so migrate-tier skips it."""

    __tablename__ = "sessions"

    id: Mapped[str] = _id()
    user_id: Mapped[str] = _fk("users.id")
    token: Mapped[str] = mapped_column(sa.String(255), unique=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ip_address: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Verification(Base):
    """A one-time verification value (email link, code); migrate-tier skips it."""

    __tablename__ = "verifications"

    id: Mapped[str] = _id()
    identifier: Mapped[str] = mapped_column(sa.String(320), index=True)
    value: Mapped[str] = mapped_column(sa.Text)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(sa.String(200))
    slug: Mapped[str] = mapped_column(sa.String(100), unique=True)
    owner_id: Mapped[str] = _fk("users.id", ondelete="RESTRICT")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class TeamMember(Base):
    __tablename__ = "team_members"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "user_id"),
        _one_of("role", TEAM_ROLES, "role"),
    )

    id: Mapped[str] = _id()
    team_id: Mapped[str] = _fk("teams.id")
    user_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(sa.String(16), default="member")
    created_at: Mapped[dt.datetime] = _created()


# --- work ------------------------------------------------------------------------------------


class Project(Base):
    """A project, owned by a user or by a team (exactly one of the two)."""

    __tablename__ = "projects"
    __table_args__ = (
        sa.CheckConstraint("(owner_id IS NULL) <> (team_id IS NULL)", name="owned_by_user_or_team"),
        _one_of("status", PROJECT_STATUSES, "status"),
    )

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(32), default="active")
    owner_id: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    team_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Mission(Base):
    __tablename__ = "missions"
    __table_args__ = (
        _one_of("status", MISSION_STATUSES, "status"),
        sa.Index(None, "project_id", "id"),
    )

    id: Mapped[str] = _id()
    project_id: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[str] = _fk("users.id", ondelete="RESTRICT")
    title: Mapped[str] = mapped_column(sa.String(300))
    goal: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="planning")
    milestones: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        _one_of("status", TASK_STATUSES, "status"),
        _one_of("priority", TASK_PRIORITIES, "priority"),
        sa.Index(None, "project_id", "status", "updated_at"),
        sa.Index(None, "assignee_id", "status"),
        sa.Index(None, "project_id", "id"),
        sa.Index(None, "assignee_id", "id"),
    )

    id: Mapped[str] = _id()
    project_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("projects.id", ondelete="CASCADE"))
    mission_id: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("missions.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[str] = _fk("users.id", ondelete="RESTRICT")
    assignee_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("users.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(sa.String(500))
    description: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="not_started")
    priority: Mapped[str] = mapped_column(sa.String(16), default="medium")
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    tags: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class TaskDependency(Base):
    """Task ``task_id`` cannot start before ``depends_on_id`` is done."""

    __tablename__ = "task_dependencies"
    __table_args__ = (
        sa.UniqueConstraint("task_id", "depends_on_id"),
        sa.CheckConstraint("task_id <> depends_on_id", name="not_self"),
    )

    id: Mapped[str] = _id()
    task_id: Mapped[str] = _fk("tasks.id")
    depends_on_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = _created()


# --- agents and conversations ----------------------------------------------------------------


class Agent(Base):
    """An agent configuration; system agents (``is_system``) are visible to everyone."""

    __tablename__ = "agents"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(sa.String(200))
    owner_id: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    team_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("teams.id", ondelete="CASCADE"))
    provider: Mapped[str | None] = mapped_column(sa.String(100))
    model: Mapped[str | None] = mapped_column(sa.String(200))
    system_prompt: Mapped[str | None] = mapped_column(sa.Text)
    allowed_tools: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    skills: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    is_system: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (sa.Index(None, "user_id", "updated_at"),)

    id: Mapped[str] = _id()
    user_id: Mapped[str] = _fk("users.id")
    agent_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("agents.id", ondelete="SET NULL"))
    project_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("projects.id", ondelete="SET NULL"))
    title: Mapped[str | None] = mapped_column(sa.String(500))
    archived: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Message(Base):
    """One message of a conversation; ``seq`` orders them."""

    __tablename__ = "messages"
    __table_args__ = (
        sa.UniqueConstraint("conversation_id", "seq"),
        _one_of("role", MESSAGE_ROLES, "role"),
    )

    id: Mapped[str] = _id()
    conversation_id: Mapped[str] = _fk("conversations.id")
    seq: Mapped[int] = mapped_column(sa.Integer)
    role: Mapped[str] = mapped_column(sa.String(16))
    content: Mapped[str] = mapped_column(sa.Text, default="")
    tool_calls: Mapped[list[Any] | None] = mapped_column(JSONType)
    tool_call_id: Mapped[str | None] = mapped_column(sa.String(200))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[dt.datetime] = _created()


# --- memory ----------------------------------------------------------------------------------


class Preference(Base):
    """A user's preference; an immutable one (``mutable`` false) changes only by the user."""

    __tablename__ = "preferences"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "key"),
        _one_of("source", PREFERENCE_SOURCES, "source"),
    )

    id: Mapped[str] = _id()
    user_id: Mapped[str] = mapped_column(sa.String(255))
    key: Mapped[str] = mapped_column(sa.String(255))
    value: Mapped[Any] = mapped_column(JSONType)
    category: Mapped[str | None] = mapped_column(sa.String(100))
    source: Mapped[str] = mapped_column(sa.String(16), default="user")
    mutable: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Insight(Base):
    """Something an agent learned about a user, with its embedding for semantic search.

    Keyword search adds backend-specific objects outside this model: an FTS5 table keyed on
    ``search_key`` and kept in sync by triggers on SQLite, a generated ``search_vector``
    tsvector column on PostgreSQL.
    """

    __tablename__ = "insights"
    __table_args__ = (
        sa.Index(None, "user_id", "created_at"),
        sa.Index(None, "user_id", "text_hash"),
        sa.Index(None, "search_key", unique=True),
    )

    id: Mapped[str] = _id()
    user_id: Mapped[str] = mapped_column(sa.String(255))
    text: Mapped[str] = mapped_column(sa.Text)
    text_hash: Mapped[str | None] = mapped_column(sa.String(64))
    """sha256 of ``text``: finds an exact duplicate without comparing long texts."""
    category: Mapped[str | None] = mapped_column(sa.String(100))
    source: Mapped[str] = mapped_column(sa.String(16), default="agent")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    embedding: Mapped[Any] = mapped_column(Embedding, nullable=True)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()
    search_key: Mapped[int | None] = mapped_column(sa.BigInteger)
    """SQLite: the insight's key in the FTS5 keyword index (rowids are not stable), set by a
    trigger on insert. Unused on PostgreSQL."""


class InsightHistory(Base):
    """One change of an insight (added, updated, merged into, deleted): who, when, the old text.

    No foreign key: the history of a deleted insight is kept.
    """

    __tablename__ = "insight_history"
    __table_args__ = (
        sa.Index(None, "insight_id", "changed_at"),
        sa.Index(None, "user_id"),
        _one_of("action", INSIGHT_ACTIONS, "action"),
        _one_of("actor", PREFERENCE_SOURCES, "actor"),
    )

    id: Mapped[str] = _id()
    insight_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str] = mapped_column(sa.String(255))
    action: Mapped[str] = mapped_column(sa.String(16))
    old_text: Mapped[str | None] = mapped_column(sa.Text)
    new_text: Mapped[str | None] = mapped_column(sa.Text)
    actor: Mapped[str] = mapped_column(sa.String(16))
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class InsightGeneration(Base):
    """A per-user counter bumped by every insight write, so in-memory vector caches know when to refresh."""

    __tablename__ = "insight_generations"

    user_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    generation: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class AgentLog(Base):
    """One log line of an agent session; ages hot -> warm -> cold and is summarized into insights."""

    __tablename__ = "agent_logs"
    __table_args__ = (
        # Keyset pages on (created_at, id): with id in the index, rows written in one batch
        # (one created_at) are a range scan too, not a scan of every tie (0004).
        sa.Index(None, "user_id", "created_at", "id"),
        sa.Index(None, "session_id", "created_at", "id"),
        sa.Index(None, "tier", "created_at"),
        # What summarization reads: a user's unsummarized logs, oldest first (0004).
        sa.Index(
            "ix_agent_logs_unsummarized",
            "user_id",
            "created_at",
            "id",
            sqlite_where=sa.text("summarized_at IS NULL"),
            postgresql_where=sa.text("summarized_at IS NULL"),
        ),
        _one_of("level", LOG_LEVELS, "level"),
        _one_of("tier", LOG_TIERS, "tier"),
    )

    id: Mapped[str] = _id()
    session_id: Mapped[str] = mapped_column(sa.String(255))
    user_id: Mapped[str] = mapped_column(sa.String(255))
    level: Mapped[str] = mapped_column(sa.String(16), default="info")
    category: Mapped[str | None] = mapped_column(sa.String(100))
    content: Mapped[str] = mapped_column(sa.Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    tier: Mapped[str] = mapped_column(sa.String(8), default="hot")
    summarized_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The summarization batch that claimed this log and has not finished it yet (0004).
    summary_batch: Mapped[str | None] = mapped_column(sa.String(64))
    #: Failed summarizer calls of the batch that claimed this log (0007).
    summary_attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default=sa.text("0"))
    #: Why summarization parked this log (it failed alone, too); None for a summarized log (0007).
    summary_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = _created()


class Skill(Base):
    __tablename__ = "skills"
    __table_args__ = (sa.UniqueConstraint("user_id", "name"),)

    id: Mapped[str] = _id()
    user_id: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.Text)
    version: Mapped[str] = mapped_column(sa.String(50), default="1")
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class SummarizationJob(Base):
    __tablename__ = "summarization_jobs"
    __table_args__ = (
        sa.Index(None, "user_id", "created_at"),
        # At most one running summarization per user: the second run of a user skips it (0004).
        sa.Index(
            "uq_summarization_jobs_running_user",
            "user_id",
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        ),
        _one_of("status", SUMMARIZATION_STATUSES, "status"),
    )

    id: Mapped[str] = _id()
    user_id: Mapped[str] = mapped_column(sa.String(255))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    logs_processed: Mapped[int] = mapped_column(sa.Integer, default=0)
    insights_created: Mapped[int] = mapped_column(sa.Integer, default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: Refreshed at each claim and finish: a run is stale when this is old, not its start (0007).
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = _created()


class ProviderCredential(Base):
    """An LLM provider credential of a user, encrypted at rest; durable, so it is migrated."""

    __tablename__ = "provider_credentials"
    __table_args__ = (sa.UniqueConstraint("user_id", "provider", "name"),)

    id: Mapped[str] = _id()
    user_id: Mapped[str] = _fk("users.id")
    provider: Mapped[str] = mapped_column(sa.String(100))
    name: Mapped[str] = mapped_column(sa.String(100), default="default")
    encrypted_secret: Mapped[bytes] = mapped_column(sa.LargeBinary)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


class Job(Base):
    """A background job of the table-backed queue; bound to its deployment, so never migrated."""

    __tablename__ = "jobs"
    __table_args__ = (_one_of("status", JOB_STATUSES, "status"),)

    id: Mapped[str] = _id()
    kind: Mapped[str] = mapped_column(sa.String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(sa.Integer, default=5)
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(255))
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _updated()


# Unfinished jobs only, running ones right before the oldest queued one: a worker's ack +
# reserve changes one leaf of it (0009). Queries that use it repeat its condition.
sa.Index(
    "ix_jobs_unfinished",
    Job.status.desc(),
    Job.run_at,
    sqlite_where=sa.text("status <> 'done'"),
    postgresql_where=sa.text("status <> 'done'"),
)
# Unique among the jobs that have a key; jobs without one (most) take no entry, which spares
# PostgreSQL an index insert at every state change (0010). Enqueues name the condition in
# their ON CONFLICT.
sa.Index(
    "uq_jobs_dedupe_key",
    Job.dedupe_key,
    unique=True,
    sqlite_where=sa.text("dedupe_key IS NOT NULL"),
    postgresql_where=sa.text("dedupe_key IS NOT NULL"),
)


class StoreMeta(Base):
    """Facts about this store: embedding storage and dimension, embedder name."""

    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[dt.datetime] = _updated()


TABLES: dict[str, sa.Table] = dict(metadata.tables)
