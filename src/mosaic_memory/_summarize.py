"""Summarization: a user's old agent logs become durable insights, exactly once, by a pluggable `Summarizer`.

A run takes, per user, the unsummarized logs older than ``older_than``, in batches. Each batch
is first *claimed* (``agent_logs.summary_batch``, committed), then summarized, its insights
written through ``memory.insights.add_many`` (deduplicated, one transaction, each tagged with
the batch in ``metadata["summary_batch"]``), then *finished*: ``summarized_at`` set, moved
from hot to warm. A run that dies between those steps leaves the batch claimed; the next run
of that user finishes the same batch first, and skips the summarizer when insights tagged
with the batch already exist, so no insight is written twice and no log is lost.
One run at a time per user: a ``running`` row in ``summarization_jobs`` (unique per user),
taken over only when its ``heartbeat_at`` is stale (a thread keeps it fresh during summarizer
calls); every step checks the row is still this run's. A batch failing `MAX_ATTEMPTS` times is
split into one-log batches and a log that fails alone is parked (``summary_error``), so one
poison log never stops a user.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import attrs
import sqlalchemy as sa

from mosaic_storage import new_id
from mosaic_storage._types import utcnow
from mosaic_storage.schema import TABLES

from ._errors import SummarizationError
from ._logs import _COLUMNS as LOG_COLUMNS
from ._logs import LOGS, LogEntry, _entry, db_error_message
from ._memory import check_user
from ._records import NewInsight

if TYPE_CHECKING:
    from mosaic_storage import MosaicConfig

    from ._memory import Memory

JOBS = TABLES["summarization_jobs"]
log = logging.getLogger("mosaic.summarize")

JOB_KIND: Final = "memory.summarize"
"""The job kind the worker runs `summarize_job` for."""
BATCH_KEY: Final = "summary_batch"
"""The insight metadata key that names the log batch an insight was summarized from."""
DEFAULT_STALE_AFTER: Final = dt.timedelta(hours=1)
MAX_ATTEMPTS: Final = 3
"""Failed summarizer calls of a batch before it is split into one-log batches, each tried once more."""
MAX_ERROR: Final = 2000
MIN_BEAT_S: Final = 0.1
"""The shortest interval between heartbeats during a summarizer call (a tiny ``stale_after``)."""
MAX_BEAT_S: Final = 3600.0
"""The longest interval between heartbeats during a summarizer call (a huge ``stale_after``)."""
BEAT_CALL_FOR: Final = 6
"""A summarizer call keeps the run's heartbeat fresh for at most this many ``stale_after``: a
call that hangs (an HTTP request with no timeout) must not hold its user forever."""


@runtime_checkable
class Summarizer(Protocol):
    """Turns a batch of one user's logs into durable insights (texts or `NewInsight` items).

    It is called again with the same batch when a run died before the batch was finished
    and none of its insights were written; it should not depend on other state.
    """

    def summarize(self, user_id: str, logs: Sequence[LogEntry]) -> Sequence[str | NewInsight]: ...


# --- the offline default ---------------------------------------------------------------------

_PREFERENCE = re.compile(
    r"\b(?:i|we)\s+(?:really\s+|usually\s+|generally\s+)?(?:prefer|like|love|enjoy|hate|dislike|"
    r"want|avoid|always|never|don't like|do not like|don't want|do not want)\b|"
    r"\bmy\s+(?:favou?rite|preferred)\b|\bprefer(?:s|red|ence)?\b|\b(?:please\s+)?always\b|"
    r"\b(?:please\s+)?never\b",
    re.IGNORECASE,
)
_FACT = re.compile(
    r"\bmy\s+(?:name|timezone|time zone|email|language|role|job|team|company|birthday|city|"
    r"country|partner|wife|husband|kids?|children|dog|cat)\b|"
    r"\b(?:i am|i'm)\s+(?:a|an|the|from|based|working|allergic|vegetarian|vegan|learning|responsible)\b|"
    r"\b(?:i|we)\s+(?:live|work|study)\s+(?:in|at|on|for)\b|\b(?:i|we)\s+use\b|"
    r"\b(?:remember|note)\s+(?:that|:)|\b(?:the\s+)?user\s+(?:prefers|likes|wants|is|works|lives|uses)\b",
    re.IGNORECASE,
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")


def _norm(sentence: str) -> str:
    return re.sub(r"\s+", " ", sentence).strip().rstrip(".!;:").lower()


@attrs.frozen
class ExtractiveSummarizer:
    """The offline default: keeps the logs' sentences that state a preference or a fact.

    A sentence is salient when it says "I prefer ...", "my name is ...", "we use ...",
    "remember that ..." and the like; questions, debug lines and very short or long sentences
    are left out. Duplicates (case and spacing aside) count once; the ``max_insights`` most
    salient are kept, in the order they were said. Deterministic and without a model.
    """

    max_insights: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    min_chars: int = 12
    max_chars: int = 300

    def summarize(self, user_id: str, logs: Sequence[LogEntry]) -> builtins.list[NewInsight]:
        """The salient sentences of ``logs`` as insights (category ``preference`` or ``fact``)."""
        found: dict[str, tuple[int, int, str, str]] = {}
        position = 0
        for log in logs:
            if log.level == "debug":
                continue
            for raw in _SENTENCES.split(log.content):
                sentence = re.sub(r"\s+", " ", raw).strip()
                position += 1
                if not self.min_chars <= len(sentence) <= self.max_chars or sentence.endswith("?"):
                    continue
                preference = len(_PREFERENCE.findall(sentence))
                fact = len(_FACT.findall(sentence))
                if not preference + fact:
                    continue
                key = _norm(sentence)
                if key not in found:
                    category = "preference" if preference >= fact else "fact"
                    found[key] = (preference + fact, position, sentence, category)
        best = sorted(found.values(), key=lambda item: (-item[0], item[1]))[: self.max_insights]
        return [
            NewInsight(text, category) for _score, _pos, text, category in sorted(best, key=lambda i: i[1])
        ]


# --- records ---------------------------------------------------------------------------------


@attrs.frozen
class UserSummary:
    """What one run did for one user; ``status`` is done, failed, or skipped (another run had the user)."""

    user_id: str
    job_id: str | None
    status: str
    logs_processed: int
    insights_created: int
    error: str | None = None
    logs_parked: int = 0
    """Logs set aside because the summarizer failed on each of them alone (see ``summary_error``)."""


@attrs.frozen
class SummarizationReport:
    """What a run did, per user."""

    users: tuple[UserSummary, ...]

    @property
    def logs_processed(self) -> int:
        """Logs summarized by this run, all users."""
        return sum(user.logs_processed for user in self.users)

    @property
    def insights_created(self) -> int:
        """New insights this run wrote (merges into existing ones not counted)."""
        return sum(user.insights_created for user in self.users)

    @property
    def failed(self) -> tuple[UserSummary, ...]:
        """The users whose summarization failed."""
        return tuple(user for user in self.users if user.status == "failed")


@attrs.frozen
class SummarizationJob:
    """A row of ``summarization_jobs``: one run for one user."""

    id: str
    user_id: str
    status: str
    logs_processed: int
    insights_created: int
    error: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    created_at: dt.datetime


@attrs.frozen
class ScheduledRun:
    """What to enqueue for the next cron run: the job ``kind``, when, and a dedupe key.

    Several workers computing the next run enqueue it under the same ``dedupe_key``, so it
    runs once.
    """

    kind: str
    run_at: dt.datetime
    dedupe_key: str
    payload: dict[str, Any]


# --- the pipeline ----------------------------------------------------------------------------


def summarize_logs(
    memory: Memory,
    summarizer: Summarizer | None = None,
    *,
    user_id: str | None = None,
    older_than: dt.timedelta | None = None,
    batch_size: int | None = None,
    stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
    now: dt.datetime | None = None,
) -> SummarizationReport:
    """Summarize the unsummarized logs older than ``older_than`` into insights, per user.

    ``user_id`` limits the run to one user; otherwise every user with such logs (or with a
    batch a dead run left claimed) is summarized, one after another. ``older_than`` and
    ``batch_size`` default to the config's ``memory.summarization``; ``summarizer`` to
    `ExtractiveSummarizer`. A user whose run fails is recorded as failed (the error redacted)
    and the run goes on with the next user; a user another run is working on is skipped.
    A run still marked running after ``stale_after`` is taken to have died and is taken over.
    """
    settings = memory.store.config.memory.summarization
    older_than = older_than if older_than is not None else dt.timedelta(hours=settings.older_than_hours)
    batch_size = batch_size if batch_size is not None else settings.batch_size
    if older_than < dt.timedelta(0):
        raise ValueError("older_than must not be negative")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if now is not None and (not isinstance(now, dt.datetime) or now.tzinfo is None):
        raise ValueError("now must be an aware datetime")
    summarizer = summarizer if summarizer is not None else ExtractiveSummarizer()
    if not isinstance(summarizer, Summarizer):
        raise TypeError(f"{type(summarizer).__name__} is not a Summarizer: it needs summarize(user_id, logs)")
    now = now or utcnow()
    cutoff = now - older_than
    users = [check_user(user_id)] if user_id is not None else _pending_users(memory.store.engine, cutoff)
    run = _Run(memory, summarizer, cutoff, batch_size, stale_after)
    return SummarizationReport(tuple(run.user(user) for user in users))


def _pending_users(engine: sa.Engine, cutoff: dt.datetime) -> builtins.list[str]:
    """Admin: every user with unsummarized logs older than ``cutoff`` or a claimed, unfinished batch."""
    statement = (
        sa.select(LOGS.c.user_id)
        .where(
            LOGS.c.summarized_at.is_(None),
            sa.or_(LOGS.c.created_at < cutoff, LOGS.c.summary_batch.is_not(None)),
        )
        .distinct()
        .order_by(LOGS.c.user_id)
    )
    with engine.connect() as conn:
        return [str(user) for user in conn.execute(statement).scalars()]


class _Superseded(Exception):
    """This run's job row is no longer its ``running`` row: another run took the user over."""


class _Run:
    def __init__(
        self,
        memory: Memory,
        summarizer: Summarizer,
        cutoff: dt.datetime,
        batch_size: int,
        stale_after: dt.timedelta,
    ) -> None:
        self.memory = memory
        self.engine = memory.store.engine
        self.summarizer = summarizer
        self.cutoff = cutoff
        self.batch_size = batch_size
        self.stale_after = stale_after

    def user(self, user_id: str) -> UserSummary:
        job_id = self._start(user_id)
        if job_id is None:
            return UserSummary(
                user_id, None, "skipped", 0, 0, "another summarization of this user is running"
            )
        processed = created = parked = 0
        try:
            for batch in self._batches(user_id, job_id):
                logs, made, skipped = self._batch(user_id, job_id, batch)
                processed += logs
                created += made
                parked += skipped
        except _Superseded:
            message = (
                f"taken over by another run: this run's heartbeat was older than {self.stale_after}; "
                "the other run finishes its batches"
            )
            return UserSummary(user_id, job_id, "failed", processed, created, message, parked)
        except BaseException as err:
            message = db_error_message(err)[:MAX_ERROR]
            self._end(job_id, "failed", message)
            if not isinstance(err, Exception):
                raise
            return UserSummary(user_id, job_id, "failed", processed, created, message, parked)
        note = _parked_note(parked) if parked else None
        self._end(job_id, "done", note)
        return UserSummary(user_id, job_id, "done", processed, created, note, parked)

    def _start(self, user_id: str) -> str | None:
        """Insert this run's ``running`` row for the user; None when another live run has one.

        A ``running`` row whose heartbeat (its start when it has none) is older than
        ``stale_after`` belongs to a dead run: it is marked failed and taken over.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(JOBS)
                .where(
                    JOBS.c.user_id == user_id,
                    JOBS.c.status == "running",
                    sa.func.coalesce(JOBS.c.heartbeat_at, JOBS.c.started_at) < now - self.stale_after,
                )
                .values(
                    status="failed",
                    finished_at=now,
                    error=f"interrupted: no heartbeat for {self.stale_after}; taken over",
                )
            )
        job_id = new_id()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(JOBS).values(
                        id=job_id,
                        user_id=user_id,
                        status="running",
                        started_at=now,
                        heartbeat_at=now,
                        created_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            return None
        return job_id

    def _beat(self, conn: sa.Connection, job_id: str) -> None:
        """Refresh the heartbeat; `_Superseded` (the caller's transaction undone) when the row is not ours."""
        updated = conn.execute(
            sa.update(JOBS)
            .where(JOBS.c.id == job_id, JOBS.c.status == "running")
            .values(heartbeat_at=utcnow())
        ).rowcount
        if updated != 1:
            raise _Superseded(job_id)

    @contextlib.contextmanager
    def _beating(self, job_id: str) -> Iterator[None]:
        """Keep the heartbeat fresh while a summarizer call runs: an LLM call may outlast
        ``stale_after``, and another run would then take this live one over and summarize the
        same batch again. A thread beats every third of ``stale_after``, for at most
        `BEAT_CALL_FOR` times ``stale_after`` (then another run may take a hung call over); it
        stops at the first beat that finds the row no longer this run's (the step after the
        call finds out too)."""
        stop = threading.Event()
        stale_s = self.stale_after.total_seconds()
        interval = min(max(stale_s / 3, MIN_BEAT_S), MAX_BEAT_S)
        until = time.monotonic() + BEAT_CALL_FOR * max(stale_s, 0.0)

        def beat() -> None:
            while not stop.wait(interval):
                if time.monotonic() > until:
                    log.warning(
                        "summarization run %s: its summarizer call has run for over %d x stale_after"
                        " (%s); the heartbeat stops, and another run may take the user over",
                        job_id,
                        BEAT_CALL_FOR,
                        self.stale_after,
                    )
                    return
                try:
                    with self.engine.begin() as conn:
                        self._beat(conn, job_id)
                except _Superseded:
                    return
                except Exception as err:  # a missed beat only risks a takeover
                    log.warning("could not refresh summarization run %s: %s", job_id, db_error_message(err))

        thread = threading.Thread(target=beat, name="mosaic-summarize-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _end(self, job_id: str, status: str, error: str | None) -> None:
        with self.engine.begin() as conn:
            # Only our own running row: a row another run took over keeps what that run wrote.
            conn.execute(
                sa.update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.status == "running")
                .values(status=status, error=error, finished_at=utcnow())
            )

    def _batches(self, user_id: str, job_id: str) -> Iterator[str]:
        """The user's batch keys: first those a dead run left claimed, then new claims until none is left."""
        with self.engine.connect() as conn:
            left = sorted(
                str(key)
                for key in conn.execute(
                    sa.select(LOGS.c.summary_batch)
                    .where(
                        LOGS.c.user_id == user_id,
                        LOGS.c.summarized_at.is_(None),
                        LOGS.c.summary_batch.is_not(None),
                    )
                    .distinct()
                ).scalars()
            )
        # Yielded with the connection back in the pool: each batch takes its own transactions.
        yield from left
        while True:
            key = self._claim(user_id, job_id)
            if key is None:
                return
            yield key

    def _claim(self, user_id: str, job_id: str) -> str | None:
        key = new_id()
        with self.engine.begin() as conn:
            self._beat(conn, job_id)
            ids = (
                conn.execute(
                    sa.select(LOGS.c.id)
                    .where(
                        LOGS.c.user_id == user_id,
                        LOGS.c.summarized_at.is_(None),
                        LOGS.c.summary_batch.is_(None),
                        LOGS.c.created_at < self.cutoff,
                    )
                    .order_by(LOGS.c.created_at, LOGS.c.id)
                    .limit(self.batch_size)
                )
                .scalars()
                .all()
            )
            if not ids:
                return None
            conn.execute(
                sa.update(LOGS)
                .where(LOGS.c.id.in_(ids), LOGS.c.summarized_at.is_(None), LOGS.c.summary_batch.is_(None))
                .values(summary_batch=key, summary_attempts=0)
            )
        return key

    def _batch(self, user_id: str, job_id: str, batch: str) -> tuple[int, int, int]:
        """Summarize and finish one claimed batch: (logs summarized, new insights, logs parked).

        A summarizer (or insight write) error counts an attempt of the batch and fails the
        user's run; the next run retries the batch. After `MAX_ATTEMPTS` the batch is split
        into one-log batches, each tried once more; a log that fails alone is parked.
        """
        try:
            logs, made = self._summarize(user_id, job_id, batch)
        except _Superseded:
            raise
        except Exception as err:
            attempts, ids = self._failed(user_id, batch)
            if attempts < MAX_ATTEMPTS or not ids:
                raise
            if len(ids) == 1:
                self._park(user_id, job_id, batch, db_error_message(err)[:MAX_ERROR])
                return 0, 0, 1
            totals = [0, 0, 0]
            for key in self._split(job_id, ids):
                for i, value in enumerate(self._batch(user_id, job_id, key)):
                    totals[i] += value
            return totals[0], totals[1], totals[2]
        self._finish(user_id, job_id, batch, logs, made)
        return logs, made, 0

    def _failed(self, user_id: str, batch: str) -> tuple[int, builtins.list[str]]:
        """Count a failed attempt of the batch: (its attempts now, its log ids)."""
        where = (LOGS.c.user_id == user_id, LOGS.c.summary_batch == batch, LOGS.c.summarized_at.is_(None))
        with self.engine.begin() as conn:
            conn.execute(sa.update(LOGS).where(*where).values(summary_attempts=LOGS.c.summary_attempts + 1))
            rows = conn.execute(
                sa.select(LOGS.c.id, LOGS.c.summary_attempts)
                .where(*where)
                .order_by(LOGS.c.created_at, LOGS.c.id)
            ).all()
        return max((int(row.summary_attempts) for row in rows), default=0), [str(row.id) for row in rows]

    def _split(self, job_id: str, ids: Sequence[str]) -> builtins.list[str]:
        """Give each log its own batch, one failure from parking: the new batch keys, in log order."""
        keys = [new_id() for _ in ids]
        with self.engine.begin() as conn:
            self._beat(conn, job_id)
            for log_id, key in zip(ids, keys, strict=True):
                conn.execute(
                    sa.update(LOGS)
                    .where(LOGS.c.id == log_id, LOGS.c.summarized_at.is_(None))
                    .values(summary_batch=key, summary_attempts=MAX_ATTEMPTS - 1)
                )
        return keys

    def _park(self, user_id: str, job_id: str, batch: str, error: str) -> None:
        """Set the one-log batch aside: marked summarized with ``summary_error``, never retried."""
        with self.engine.begin() as conn:
            self._beat(conn, job_id)
            conn.execute(
                sa.update(LOGS)
                .where(
                    LOGS.c.user_id == user_id, LOGS.c.summary_batch == batch, LOGS.c.summarized_at.is_(None)
                )
                .values(summarized_at=utcnow(), summary_batch=None, summary_error=error)
            )

    def _written(self, user_id: str, batch: str) -> bool:
        """Whether insights from the batch exist (tagged with it, merged into another or not)."""
        insights = self.memory.insights
        return bool(
            insights.list(user_id=user_id, limit=1, filters={_batch_tag(batch): True})
            or insights.list(user_id=user_id, limit=1, filters={BATCH_KEY: batch})
        )

    def _summarize(self, user_id: str, job_id: str, batch: str) -> tuple[int, int]:
        """Summarize one claimed batch unless its insights were written already: (logs, new insights)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*LOG_COLUMNS)
                .where(
                    LOGS.c.user_id == user_id, LOGS.c.summary_batch == batch, LOGS.c.summarized_at.is_(None)
                )
                .order_by(LOGS.c.created_at, LOGS.c.id)
            ).all()
        logs = [_entry(row) for row in rows]
        if not logs or self._written(user_id, batch):
            return len(logs), 0
        with self._beating(job_id):
            # list(): a summarizer that yields does its work while it is read.
            answer = list(self.summarizer.summarize(user_id, logs))
        items = [_tagged(item, batch, len(logs)) for item in answer]
        if not items:
            return len(logs), 0
        # The summarizer may have taken long: still our run (heartbeat refreshed), and no
        # other run wrote this batch's insights meanwhile? Only then write them.
        with self.engine.begin() as conn:
            self._beat(conn, job_id)
        if self._written(user_id, batch):
            return len(logs), 0
        insights = self.memory.insights
        before = insights.count(user_id=user_id)
        # One transaction for the whole batch: its insights are written all or not at all.
        insights.add_many(items, user_id=user_id, source="agent", dedupe=True, batch_size=len(items))
        return len(logs), max(0, insights.count(user_id=user_id) - before)

    def _finish(self, user_id: str, job_id: str, batch: str, logs: int, made: int) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            # First: still our running row (else another run owns the batch; nothing is written).
            self._beat(conn, job_id)
            conn.execute(
                sa.update(LOGS)
                .where(
                    LOGS.c.user_id == user_id, LOGS.c.summary_batch == batch, LOGS.c.summarized_at.is_(None)
                )
                .values(
                    summarized_at=now,
                    summary_batch=None,
                    tier=sa.case((LOGS.c.tier == "hot", "warm"), else_=LOGS.c.tier),
                )
            )
            conn.execute(
                sa.update(JOBS)
                .where(JOBS.c.id == job_id)
                .values(
                    logs_processed=JOBS.c.logs_processed + logs,
                    insights_created=JOBS.c.insights_created + made,
                )
            )


def _parked_note(parked: int) -> str:
    return (
        f"{parked} log(s) parked: the summarizer failed {MAX_ATTEMPTS} times on their batch and "
        "once more on each of them alone; "
        "see their summary_error (AgentLogs.query(..., parked=True))"
    )


def _batch_tag(batch: str) -> str:
    """The metadata key marking an insight as (partly) from ``batch``; merges keep every batch's key."""
    return f"{BATCH_KEY}:{batch}"


def _tagged(item: object, batch: str, count: int) -> NewInsight:
    if isinstance(item, str):
        item = NewInsight(item)
    if not isinstance(item, NewInsight):
        raise TypeError(f"a summarizer returns texts or NewInsight items, got {type(item).__name__}")
    metadata = {**(item.metadata or {}), BATCH_KEY: batch, _batch_tag(batch): True, "summarized_logs": count}
    return attrs.evolve(item, metadata=metadata)


def summarization_jobs(memory: Memory, *, user_id: str, limit: int = 20) -> builtins.list[SummarizationJob]:
    """The user's summarization runs, newest first."""
    check_user(user_id)
    if limit < 1:
        raise ValueError("limit must be at least 1")
    statement = (
        sa.select(JOBS)
        .where(JOBS.c.user_id == user_id)
        .order_by(JOBS.c.created_at.desc(), JOBS.c.id.desc())
        .limit(limit)
    )
    with memory.store.engine.connect() as conn:
        return [
            SummarizationJob(
                id=row.id,
                user_id=row.user_id,
                status=row.status,
                logs_processed=row.logs_processed,
                insights_created=row.insights_created,
                error=row.error,
                started_at=row.started_at,
                finished_at=row.finished_at,
                created_at=row.created_at,
            )
            for row in conn.execute(statement)
        ]


# --- scheduling and the worker's entry -------------------------------------------------------


def next_run(schedule: str, after: dt.datetime | None = None) -> dt.datetime:
    """When the cron ``schedule`` (UTC) fires next, strictly after ``after`` (default: now)."""
    from croniter import croniter

    from mosaic_storage._config import is_cron

    if not is_cron(schedule):
        raise ValueError(
            f"{schedule!r:.80} is not a cron expression; write five fields: minute hour "
            "day-of-month month day-of-week, e.g. '0 * * * *'"
        )
    start = after if after is not None else utcnow()
    if start.tzinfo is None:
        raise ValueError("after must be an aware datetime")
    fired: dt.datetime = croniter(schedule, start.astimezone(dt.UTC)).get_next(dt.datetime)
    return fired.astimezone(dt.UTC)


def next_scheduled_run(config: MosaicConfig, after: dt.datetime | None = None) -> ScheduledRun:
    """The next cron run of ``memory.summarization.schedule`` as a job to enqueue (kind, time, dedupe key)."""
    at = next_run(config.memory.summarization.schedule, after)
    return ScheduledRun(JOB_KIND, at, f"{JOB_KIND}@{at.isoformat()}", {})


_PAYLOAD_KEYS = ("user_id", "older_than_hours", "batch_size")


def summarize_handler(
    memory: Memory, summarizer: Summarizer | None = None
) -> Callable[[Mapping[str, Any]], None]:
    """A job handler for kind `JOB_KIND` bound to ``memory`` (and ``summarizer``)."""

    def handle(payload: Mapping[str, Any]) -> None:
        summarize_job(payload, memory=memory, summarizer=summarizer)

    return handle


def summarize_job(
    payload: Mapping[str, Any],
    *,
    memory: Memory | None = None,
    summarizer: Summarizer | None = None,
) -> None:
    """The worker's entry for job kind ``"memory.summarize"``: run `summarize_logs` once.

    ``payload`` may hold ``user_id``, ``older_than_hours`` and ``batch_size`` (anything else
    is refused); the rest comes from the config. Without ``memory`` it opens the configured
    store's memory and closes it after. Safe to retry: a rerun finishes what a failed or
    killed run left and writes no insight twice.

    Raises:
        SummarizationError: some users failed (the queue retries the job later).
        ValueError: the payload is malformed.
    """
    unknown = sorted(set(payload) - set(_PAYLOAD_KEYS))
    if unknown:
        raise ValueError(f"unknown {JOB_KIND} payload keys {unknown}; allowed: {', '.join(_PAYLOAD_KEYS)}")
    user_id = payload.get("user_id")
    hours = payload.get("older_than_hours")
    batch_size = payload.get("batch_size")
    if user_id is not None and not isinstance(user_id, str):
        raise ValueError("payload user_id must be a string")
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, int | float) or hours < 0):
        raise ValueError("payload older_than_hours must be a non-negative number")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)):
        raise ValueError("payload batch_size must be an integer")
    if memory is None:
        from ._open import open_memory

        with open_memory() as opened:
            return summarize_job(payload, memory=opened, summarizer=summarizer)
    report = summarize_logs(
        memory,
        summarizer,
        user_id=user_id,
        older_than=dt.timedelta(hours=hours) if hours is not None else None,
        batch_size=batch_size,
    )
    if report.failed:
        users = ", ".join(f"{user.user_id!r} ({user.error})" for user in report.failed[:5])
        raise SummarizationError(
            f"summarization failed for {len(report.failed)} user(s): {users}",
            remediation="their logs stay unsummarized and are taken by the next run; see summarization_jobs",
        )
    return None
