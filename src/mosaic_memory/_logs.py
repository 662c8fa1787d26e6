"""Agent logs: what an agent did and said, per user and session, kept in hot, warm and cold tiers by age."""

from __future__ import annotations

import base64
import builtins
import contextlib
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal

import attrs
import sqlalchemy as sa

from mosaic_storage import LogsConfig, MosaicError, new_id, redact
from mosaic_storage._types import utcnow
from mosaic_storage.schema import LOG_LEVELS, LOG_TIERS, TABLES

LOGS = TABLES["agent_logs"]

Level = Literal["debug", "info", "warning", "error"]
Tier = Literal["hot", "warm", "cold"]
LEVELS: Final = LOG_LEVELS
TIERS: Final = LOG_TIERS
DEFAULT_LOG_BATCH: Final = 1000
MAX_PAGE: Final = 10_000


def _cursor_of(created_at: dt.datetime, log_id: str) -> str:
    raw = f"{created_at.astimezone(dt.UTC).isoformat()}|{log_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, log_id = raw.split("|", 1)
        created_at = dt.datetime.fromisoformat(stamp)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(
            f"{cursor[:40]!r} is not a log cursor; pass the next_cursor of a page this SDK returned"
        ) from None
    if created_at.tzinfo is None or not log_id:
        raise ValueError("not a log cursor; pass the next_cursor of a page this SDK returned")
    return created_at, log_id


@attrs.frozen
class LogEntry:
    """One agent log line of a user's session."""

    id: str
    session_id: str
    user_id: str
    level: Level
    category: str | None
    content: str
    metadata: dict[str, Any]
    tier: Tier
    summarized_at: dt.datetime | None
    created_at: dt.datetime
    summary_error: str | None = None
    """Why summarization parked this log (the summarizer failed on it alone); None otherwise."""

    @property
    def cursor(self) -> str:
        """The keyset position just after this entry: pass it as ``cursor`` to read on from here."""
        return _cursor_of(self.created_at, self.id)


@attrs.frozen
class NewLogEntry:
    """One log line to write with `AgentLogs.append_many`."""

    session_id: str
    content: str
    level: Level = "info"
    category: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: dt.datetime | None = None


@attrs.frozen
class LogPage:
    """One page of log entries; ``next_cursor`` reads the next page, None when this was the last."""

    entries: tuple[LogEntry, ...]
    next_cursor: str | None


@attrs.frozen
class TierMove:
    """How many logs `AgentLogs.move_tiers` moved from hot to warm and from warm to cold."""

    to_warm: int
    to_cold: int


def _entry(row: Any) -> LogEntry:
    return LogEntry(
        id=row.id,
        session_id=row.session_id,
        user_id=row.user_id,
        level=row.level,
        category=row.category,
        content=row.content,
        metadata=dict(row.metadata or {}),
        tier=row.tier,
        summarized_at=row.summarized_at,
        created_at=row.created_at,
        summary_error=row.summary_error,
    )


def db_error_message(err: BaseException) -> str:
    """A database error's first line, redacted, without the statement or its parameters.

    SQLAlchemy's text of a failed statement lists its parameters (log content, metadata,
    perhaps a secret); the driver's own message is kept to its first line (PostgreSQL's
    DETAIL and CONTEXT quote the data too).
    """
    if isinstance(err, sa.exc.StatementError):
        cause = err.orig if err.orig is not None else err
        first = (str(cause).strip().splitlines() or [""])[0]
        return redact(f"{type(cause).__name__}: {first}")[:500]
    return redact(f"{type(err).__name__}: {err}")


@contextlib.contextmanager
def _database(doing: str) -> Iterator[None]:
    """Turn a database error into a `MosaicError` that names no statement parameter."""
    try:
        yield
    except sa.exc.StatementError as err:
        raise MosaicError(
            f"the database refused to {doing}: {db_error_message(err)}",
            remediation="check that the store is reachable and migrated (`mosaic migrate`)",
        ) from None


def _check_text(value: object, what: str, *, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r:.60}")
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters long; at most {limit} are stored")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character (\\x00), which PostgreSQL cannot store; remove it")
    return value


def _check_user(user_id: object) -> str:
    value = _check_text(user_id, "user_id", limit=255)
    if value != value.strip():
        raise ValueError(
            f"user_id {value!r:.60} has leading or trailing whitespace; pass the id without it "
            "(logs of 'ada' and 'ada\\n' would be different users)"
        )
    return value


def _check_level(level: object) -> str:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r:.40}")
    return str(level)


def _check_time(value: object, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError(f"{what} must be an aware datetime (e.g. datetime.now(UTC)), got {value!r:.60}")
    return value


def _metadata_problem(value: object) -> str | None:
    """What JSON would store differently (a non-string key) or PostgreSQL cannot store (NUL)."""
    if isinstance(value, str):
        return "contains a NUL character (\\x00), which PostgreSQL cannot store" if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"has the key {key!r:.40}: keys must be strings (JSON would store it as text)"
            problem = _metadata_problem(key) or _metadata_problem(item)
            if problem:
                return problem
    if isinstance(value, list | tuple):
        for item in value:
            problem = _metadata_problem(item)
            if problem:
                return problem
    return None


def _row(user_id: str, entry: NewLogEntry, now: dt.datetime) -> dict[str, Any]:
    _check_text(entry.session_id, "session_id", limit=255)
    if not isinstance(entry.content, str) or not entry.content:
        raise ValueError("a log entry's content must be a non-empty string")
    if "\x00" in entry.content:
        raise ValueError(
            "a log entry's content contains a NUL character (\\x00), which PostgreSQL cannot store; "
            "remove it (or escape it)"
        )
    if entry.category is not None:
        _check_text(entry.category, "category", limit=100)
    if entry.metadata is not None and not isinstance(entry.metadata, Mapping):
        raise ValueError(f"a log entry's metadata must be a mapping, got {type(entry.metadata).__name__}")
    metadata = dict(entry.metadata or {})
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"a log entry's metadata must be JSON-serializable, without NaN or infinity: {err}"
        ) from None
    problem = _metadata_problem(metadata)
    if problem:
        raise ValueError(f"a log entry's metadata {problem}; fix or remove it")
    metadata = json.loads(encoded)  # as it is stored and read back (tuples become lists)
    created_at = now if entry.created_at is None else _check_time(entry.created_at, "created_at")
    created_at = created_at.astimezone(dt.UTC)
    return {
        "id": new_id(),
        "session_id": entry.session_id,
        "user_id": user_id,
        "level": _check_level(entry.level),
        "category": entry.category,
        "content": entry.content,
        "metadata": metadata,
        "tier": "hot",
        "summarized_at": None,
        "summary_error": None,
        "created_at": created_at,
    }


class AgentLogs:
    """A user's agent logs: append (one or many), query by session, time and level, tail.

    Every read takes a ``user_id``. `move_tiers` is the one admin call: it ages every
    user's logs (hot -> warm -> cold) by the ages in ``memory.logs`` of the config.
    """

    def __init__(self, engine: sa.Engine, config: LogsConfig | None = None) -> None:
        self._engine = engine
        self._config = config or LogsConfig()

    # Writing ---------------------------------------------------------------------------------

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
    ) -> LogEntry:
        """Write one log line (hot tier) and return it as stored."""
        item = NewLogEntry(session_id, content, level, category, dict(metadata or {}), created_at)
        return self.append_many([item], user_id=user_id)[0]

    def append_many(
        self,
        entries: Iterable[NewLogEntry],
        *,
        user_id: str,
        batch_size: int = DEFAULT_LOG_BATCH,
    ) -> builtins.list[LogEntry]:
        """Write many log lines of one user: one transaction, one statement per ``batch_size`` lines.

        Every entry is checked before the first is written: a bad entry (or a database error)
        writes nothing at all.
        """
        _check_user(user_id)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        now = utcnow()
        rows: builtins.list[dict[str, Any]] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, NewLogEntry):
                raise TypeError(f"append_many takes NewLogEntry items, got {type(entry).__name__}")
            try:
                rows.append(_row(user_id, entry, now))
            except ValueError as err:
                raise ValueError(f"entry {index}: {err}; nothing was written") from None
        if rows:
            with _database("write the logs"), self._engine.begin() as conn:
                for start in range(0, len(rows), batch_size):
                    conn.execute(sa.insert(LOGS), rows[start : start + batch_size])
        return [_entry(_Row(values)) for values in rows]

    # Reading ---------------------------------------------------------------------------------

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
        parked: bool | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> LogPage:
        """One page of the user's logs, oldest first (``newest_first`` reverses it).

        ``since`` is inclusive, ``until`` exclusive. ``levels`` keeps only those levels,
        ``min_level`` those at least as severe (debug < info < warning < error). ``parked``
        keeps the logs summarization set aside (``summary_error`` set) or the others. Pages are
        keyset pages on (created_at, id): pass the page's ``next_cursor`` as ``cursor``.
        """
        _check_user(user_id)
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be from 1 to {MAX_PAGE}, got {limit}")
        where: builtins.list[sa.ColumnElement[bool]] = [LOGS.c.user_id == user_id]
        if session_id is not None:
            where.append(LOGS.c.session_id == session_id)
        if since is not None:
            where.append(LOGS.c.created_at >= _check_time(since, "since"))
        if until is not None:
            where.append(LOGS.c.created_at < _check_time(until, "until"))
        if levels is not None:
            where.append(LOGS.c.level.in_([_check_level(level) for level in levels]))
        if min_level is not None:
            where.append(LOGS.c.level.in_(LEVELS[LEVELS.index(_check_level(min_level)) :]))
        if category is not None:
            where.append(LOGS.c.category == category)
        if tier is not None:
            if tier not in TIERS:
                raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r:.40}")
            where.append(LOGS.c.tier == tier)
        if summarized is not None:
            column = LOGS.c.summarized_at
            where.append(column.is_not(None) if summarized else column.is_(None))
        if parked is not None:
            error = LOGS.c.summary_error
            where.append(error.is_not(None) if parked else error.is_(None))
        if cursor is not None:
            at, after_id = _parse_cursor(cursor)
            # A row-value comparison: both SQLite and PostgreSQL turn it into an index range.
            position = sa.tuple_(LOGS.c.created_at, LOGS.c.id)
            where.append(position < (at, after_id) if newest_first else position > (at, after_id))
        order = (
            (LOGS.c.created_at.desc(), LOGS.c.id.desc()) if newest_first else (LOGS.c.created_at, LOGS.c.id)
        )
        statement = sa.select(*_COLUMNS).where(*where).order_by(*order).limit(limit + 1)
        with _database("read the logs"), self._engine.connect() as conn:
            rows = conn.execute(statement).all()
        entries = tuple(_entry(row) for row in rows[:limit])
        return LogPage(entries, entries[-1].cursor if len(rows) > limit else None)

    def tail(
        self, *, user_id: str, session_id: str | None = None, limit: int = 20
    ) -> builtins.list[LogEntry]:
        """The user's (or one session's) last ``limit`` log lines, oldest first.

        To follow, pass the last entry's ``cursor`` to `query` and repeat.
        """
        page = self.query(user_id=user_id, session_id=session_id, limit=limit, newest_first=True)
        return builtins.list(reversed(page.entries))

    def get(self, log_id: str, *, user_id: str) -> LogEntry | None:
        """The log line, or None when the user has no log line with that id."""
        _check_user(user_id)
        with _database("read the log"), self._engine.connect() as conn:
            row = conn.execute(
                sa.select(*_COLUMNS).where(LOGS.c.id == log_id, LOGS.c.user_id == user_id)
            ).one_or_none()
        return None if row is None else _entry(row)

    def count(self, *, user_id: str, tier: Tier | None = None, summarized: bool | None = None) -> int:
        """How many log lines the user has (in ``tier``; summarized or not)."""
        _check_user(user_id)
        statement = sa.select(sa.func.count()).select_from(LOGS).where(LOGS.c.user_id == user_id)
        if tier is not None:
            statement = statement.where(LOGS.c.tier == tier)
        if summarized is not None:
            column = LOGS.c.summarized_at
            statement = statement.where(column.is_not(None) if summarized else column.is_(None))
        with _database("count the logs"), self._engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())

    # Admin -----------------------------------------------------------------------------------

    def move_tiers(
        self,
        *,
        warm_after: dt.timedelta | None = None,
        cold_after: dt.timedelta | None = None,
        now: dt.datetime | None = None,
    ) -> TierMove:
        """Admin, every user: age logs, hot -> warm after ``warm_after``, -> cold after ``cold_after``.

        Ages default to the config's ``memory.logs`` (7 and 30 days). Summarization moves
        the logs it summarized to warm itself; a log aged to warm unsummarized is still
        summarized later. Idempotent: a second call moves nothing more.
        """
        warm_after = warm_after if warm_after is not None else dt.timedelta(days=self._config.warm_after_days)
        cold_after = cold_after if cold_after is not None else dt.timedelta(days=self._config.cold_after_days)
        if warm_after < dt.timedelta(0) or cold_after < warm_after:
            raise ValueError("ages must satisfy 0 <= warm_after <= cold_after")
        now = _check_time(now, "now") if now is not None else utcnow()
        with _database("age the logs"), self._engine.begin() as conn:
            to_cold = conn.execute(
                sa.update(LOGS)
                .where(LOGS.c.tier.in_(("hot", "warm")), LOGS.c.created_at < now - cold_after)
                .values(tier="cold")
            ).rowcount
            to_warm = conn.execute(
                sa.update(LOGS)
                .where(LOGS.c.tier == "hot", LOGS.c.created_at < now - warm_after)
                .values(tier="warm")
            ).rowcount
        return TierMove(to_warm=int(to_warm), to_cold=int(to_cold))


_COLUMNS = (
    LOGS.c.id,
    LOGS.c.session_id,
    LOGS.c.user_id,
    LOGS.c.level,
    LOGS.c.category,
    LOGS.c.content,
    LOGS.c.metadata,
    LOGS.c.tier,
    LOGS.c.summarized_at,
    LOGS.c.created_at,
    LOGS.c.summary_error,
)


class _Row:
    """A written row's values, read like a result row."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)
