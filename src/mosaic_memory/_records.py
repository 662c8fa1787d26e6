"""The values memory hands out: frozen records, turned into JSON-ready dicts in one place."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import attrs

Source = Literal["user", "agent"]
SearchMode = Literal["hybrid", "vector", "keyword"]
SOURCES = ("user", "agent")
SEARCH_MODES = ("hybrid", "vector", "keyword")


def to_dict(record: Any) -> dict[str, Any]:
    """A record as a JSON-ready dict: datetimes become ISO 8601 strings."""

    def convert(_inst: Any, _field: Any, value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.datetime) else value

    return attrs.asdict(record, value_serializer=convert)


@attrs.frozen
class Preference:
    """A user's preference. An immutable one (``mutable`` false) changes only by the user."""

    user_id: str
    key: str
    value: Any
    category: str | None
    source: Source
    mutable: bool
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class NewInsight:
    """One insight to add with `add_many`; ``embedding`` skips the embedder for it."""

    text: str
    category: str | None = None
    metadata: dict[str, Any] | None = None
    embedding: Any = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Insight:
    """Something an agent learned about a user."""

    id: str
    user_id: str
    text: str
    category: str | None
    source: Source
    metadata: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class InsightHit:
    """One search result. ``score`` orders hits (higher is better); the parts say where it came from.

    ``vector_score`` is the cosine similarity (None: not among the vector candidates),
    ``keyword_score`` the full-text rank of the backend (SQLite: -bm25, PostgreSQL:
    ts_rank_cd; None: no keyword match), ``fused_score`` the reciprocal rank fusion of
    both (hybrid mode only). ``score`` is the part the search mode ranks by.
    """

    id: str
    text: str
    score: float
    vector_score: float | None
    keyword_score: float | None
    fused_score: float | None
    category: str | None
    metadata: dict[str, Any]
    created_at: dt.datetime


@attrs.frozen
class HistoryEntry:
    """One change of an insight: what happened, the text before and after, who and when."""

    insight_id: str
    action: Literal["add", "update", "merge", "delete"]
    old_text: str | None
    new_text: str | None
    actor: Source
    changed_at: dt.datetime


@attrs.frozen
class Skill:
    """A named capability a user's agents may use, with its config; disabled skills stay stored."""

    id: str
    user_id: str
    name: str
    description: str | None
    version: str
    config: dict[str, Any]
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime
