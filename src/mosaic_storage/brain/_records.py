"""The records the brain hands in and out: frozen attrs classes, never ORM objects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

import attrs

from .._errors import MosaicError

T = TypeVar("T")


class NotFound(MosaicError, LookupError):
    """No such record, or the acting user may not see it; the two are indistinguishable on purpose."""


class InvalidValue(MosaicError, ValueError):
    """A value is outside what the field allows; the message lists the allowed values."""


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value or ())


def _optional_tuple(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


def _dict(value: Any) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen
class User:
    """A person who acts on the brain; ``id`` is the ``actor`` every call takes."""

    id: str
    email: str | None
    name: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class Team:
    """A group of users; members see the team's records, owners and admins change them."""

    id: str
    name: str
    slug: str
    owner_id: str
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class Membership:
    """A user's role in a team: ``owner``, ``admin`` or ``member``."""

    team_id: str
    user_id: str
    role: str
    created_at: dt.datetime


@attrs.frozen
class Project:
    """A project owned by one user (``owner_id``) or by one team (``team_id``), never both."""

    id: str
    name: str
    description: str | None
    status: str
    owner_id: str | None
    team_id: str | None
    metadata: dict[str, Any] = attrs.field(converter=_dict)
    version: int = 1
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@attrs.frozen
class Mission:
    """A goal with milestones, inside a project (or private to its creator when it has none)."""

    id: str
    project_id: str | None
    created_by: str
    title: str
    goal: str | None
    status: str
    milestones: tuple[Any, ...] = attrs.field(converter=_tuple)
    metadata: dict[str, Any] = attrs.field(converter=_dict, factory=dict)
    version: int = 1
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@attrs.frozen
class Task:
    """A unit of work in a project, optionally part of a mission and assigned to a user."""

    id: str
    project_id: str | None
    mission_id: str | None
    created_by: str
    assignee_id: str | None
    title: str
    description: str | None
    status: str
    priority: str
    due_at: dt.datetime | None
    tags: tuple[str, ...] = attrs.field(converter=_tuple)
    metadata: dict[str, Any] = attrs.field(converter=_dict, factory=dict)
    version: int = 1
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@attrs.frozen
class Conversation:
    """A conversation of one user (with an agent, optionally about a project); private to that user."""

    id: str
    user_id: str
    agent_id: str | None
    project_id: str | None
    title: str | None
    archived: bool
    metadata: dict[str, Any] = attrs.field(converter=_dict, factory=dict)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@attrs.frozen
class Message:
    """One message of a conversation; ``seq`` counts 1, 2, 3... in the order they were appended."""

    id: str
    conversation_id: str
    seq: int
    role: str
    content: str
    tool_calls: tuple[Any, ...] | None = attrs.field(converter=_optional_tuple)
    tool_call_id: str | None = None
    metadata: dict[str, Any] = attrs.field(converter=_dict, factory=dict)
    created_at: dt.datetime | None = None


@attrs.frozen
class Agent:
    """An agent configuration: personal (``owner_id``), a team's (``team_id``) or a system agent."""

    id: str
    name: str
    owner_id: str | None
    team_id: str | None
    provider: str | None
    model: str | None
    system_prompt: str | None
    allowed_tools: tuple[str, ...] = attrs.field(converter=_tuple)
    skills: tuple[str, ...] = attrs.field(converter=_tuple, factory=tuple)
    is_system: bool = False
    config: dict[str, Any] = attrs.field(converter=_dict, factory=dict)
    version: int = 1
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@attrs.frozen
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` back as ``cursor`` for the next (``None``: last page)."""

    items: tuple[T, ...]
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def to_dict(record: Any) -> dict[str, Any]:
    """A record as a JSON-ready dict: timestamps as ISO 8601 strings, tuples as lists."""

    def convert(_inst: Any, _field: Any, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.isoformat()
        return value

    return attrs.asdict(record, recurse=True, value_serializer=convert)


def from_row(cls: type[T], row: Mapping[str, Any] | Any) -> T:
    """Build a record from a result row's mapping, taking only the record's fields."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(field.name for field in attrs.fields(cls))  # type: ignore[arg-type]
    return cls(**{name: row[name] for name in names})


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
