"""The `MemoryStore` contract every backend implements, and the three parts it is made of."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ._embedders import Embedder
from ._logs import Level, LogEntry, LogPage, NewLogEntry, Tier, TierMove
from ._records import HistoryEntry, Insight, InsightHit, NewInsight, Preference, SearchMode, Skill, Source


@runtime_checkable
class PreferenceStore(Protocol):
    """Preferences by user and key; immutable ones change only by the user."""

    def get(self, user_id: str, key: str, default: Any = None) -> Any: ...
    def get_record(self, user_id: str, key: str) -> Preference | None: ...
    def set(
        self,
        user_id: str,
        key: str,
        value: Any,
        *,
        category: str | None = None,
        source: Source = "user",
        mutable: bool | None = None,
    ) -> Preference: ...
    def list(self, user_id: str, *, category: str | None = None) -> builtins.list[Preference]: ...
    def delete(self, user_id: str, key: str, *, source: Source = "user") -> bool: ...


@runtime_checkable
class InsightStore(Protocol):
    """Insights of each user: add (deduplicated), get, update, delete, list, search, history."""

    def add(
        self,
        text: str,
        *,
        user_id: str,
        category: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        embedding: Any = None,
        source: Source = "agent",
        dedupe: bool = True,
    ) -> str: ...
    def add_many(
        self,
        items: Iterable[str | NewInsight],
        *,
        user_id: str,
        source: Source = "agent",
        dedupe: bool = True,
        batch_size: int = 1000,
    ) -> builtins.list[str]: ...
    def get(self, insight_id: str, *, user_id: str) -> Insight | None: ...
    def update(self, insight_id: str, *, user_id: str, text: str | None = None) -> Insight: ...
    def delete(self, insight_id: str, *, user_id: str, source: Source = "agent") -> bool: ...
    def list(
        self, *, user_id: str, limit: int = 50, offset: int = 0, filters: Mapping[str, Any] | None = None
    ) -> builtins.list[Insight]: ...
    def count(self, *, user_id: str) -> int: ...
    def search(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 10,
        filters: Mapping[str, Any] | None = None,
        mode: SearchMode = "hybrid",
        min_score: float | None = None,
    ) -> builtins.list[InsightHit]: ...
    def history(self, insight_id: str, *, user_id: str) -> builtins.list[HistoryEntry]: ...


@runtime_checkable
class SkillStore(Protocol):
    """Skills of each user: create, get, list, update, enable, disable, delete."""

    def create(
        self,
        user_id: str,
        name: str,
        *,
        description: str | None = None,
        version: str = "1",
        config: Mapping[str, Any] | None = None,
        enabled: bool = True,
    ) -> Skill: ...
    def get(self, user_id: str, name: str) -> Skill | None: ...
    def list(self, user_id: str, *, enabled: bool | None = None) -> builtins.list[Skill]: ...
    def enable(self, user_id: str, name: str) -> Skill: ...
    def disable(self, user_id: str, name: str) -> Skill: ...
    def delete(self, user_id: str, name: str) -> bool: ...


@runtime_checkable
class LogStore(Protocol):
    """Agent logs of each user: append (one or many), query with keyset pages, tail; tiers by age."""

    def append(
        self,
        session_id: str,
        user_id: str,
        level: Level,
        category: str | None,
        content: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        created_at: dt.datetime | None = None,
    ) -> LogEntry: ...
    def append_many(
        self, entries: Iterable[NewLogEntry], *, user_id: str, batch_size: int = 1000
    ) -> builtins.list[LogEntry]: ...
    def query(
        self,
        *,
        user_id: str,
        session_id: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        levels: Sequence[Level] | None = None,
        min_level: Level | None = None,
        category: str | None = None,
        tier: Tier | None = None,
        summarized: bool | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> LogPage: ...
    def tail(
        self, *, user_id: str, session_id: str | None = None, limit: int = 20
    ) -> builtins.list[LogEntry]: ...
    def get(self, log_id: str, *, user_id: str) -> LogEntry | None: ...
    def count(self, *, user_id: str, tier: Tier | None = None, summarized: bool | None = None) -> int: ...
    def move_tiers(
        self,
        *,
        warm_after: dt.timedelta | None = None,
        cold_after: dt.timedelta | None = None,
        now: dt.datetime | None = None,
    ) -> TierMove: ...


@runtime_checkable
class MemoryStore(Protocol):
    """A user-scoped agent memory: every read and write of its parts takes a ``user_id``."""

    @property
    def embedder(self) -> Embedder: ...
    @property
    def preferences(self) -> PreferenceStore: ...
    @property
    def insights(self) -> InsightStore: ...
    @property
    def skills(self) -> SkillStore: ...
    @property
    def logs(self) -> LogStore: ...
    def close(self) -> None: ...
