"""The `JobQueue` protocol and the records it hands out."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from .._errors import MosaicError

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_LEASE = 30.0
MAX_KIND_LENGTH = 200
MAX_DEDUPE_KEY_LENGTH = 255


class QueueError(MosaicError):
    """A job queue call was given something it cannot act on, or its backend failed."""


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    """Waiting to run; with a future ``run_at`` it is delayed (a new job or a retry)."""
    RUNNING = "running"
    """Reserved by a worker whose lease has not run out."""
    DONE = "done"
    """Acknowledged. Kept by the table-backed queue until purged; Redis drops it at once."""
    DEAD = "dead"
    """Failed ``max_attempts`` times, or failed permanently: kept until retried or purged."""

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class Job:
    """A reserved job: hand it back to `JobQueue.ack`, `JobQueue.fail` or `JobQueue.release`."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    """1 on the first delivery; each failure or lapsed lease adds one."""
    max_attempts: int
    dedupe_key: str | None = None
    receipt: str = attrs.field(default="", repr=False)
    """Backend bookkeeping of this delivery: an ack or fail for an older delivery of the
    same job (whose lease ran out and which was handed to another worker) does nothing."""


@attrs.frozen
class JobInfo:
    """A job as `JobQueue.list_jobs` shows it."""

    id: str
    kind: str
    status: JobStatus
    attempts: int
    max_attempts: int
    payload: dict[str, Any]
    run_at: dt.datetime | None
    last_error: str | None
    dedupe_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of this record."""
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status.value,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "payload": self.payload,
            "run_at": self.run_at.isoformat() if self.run_at else None,
            "last_error": self.last_error,
            "dedupe_key": self.dedupe_key,
        }


@attrs.frozen
class QueueStats:
    """How many jobs are in each state."""

    queued: int
    """Ready to run now."""
    delayed: int
    """Queued with a ``run_at`` in the future (new delayed jobs and retries in backoff)."""
    running: int
    dead: int
    done: int | None
    """Finished jobs kept (table-backed queue); ``None`` on Redis, which keeps none."""

    def to_dict(self) -> dict[str, int | None]:
        """The JSON shape of this record."""
        return attrs.asdict(self)


@attrs.frozen
class Backoff:
    """Delay before retry ``n`` (1-based): ``min(cap, base * 2**(n-1))``, scaled by a random factor
    in ``[1 - jitter, 1]`` so that jobs failing together do not come back together."""

    base: float = 1.0
    cap: float = 300.0
    jitter: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])

    def delay(self, failures: int) -> float:
        """Seconds to wait after the given number of failures."""
        raw = min(self.cap, self.base * math.pow(2.0, max(0, failures - 1)))
        return raw * (1.0 - self.jitter * random.random())


@attrs.frozen
class NewJob:
    """One job for `JobQueue.enqueue_many`."""

    kind: str
    payload: dict[str, Any] = attrs.field(factory=dict)
    delay: float | None = None
    dedupe_key: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


@runtime_checkable
class JobQueue(Protocol):
    """A durable job queue with at-least-once delivery.

    A reserved job belongs to its worker for ``lease`` seconds; if it is neither acked,
    failed, released nor extended by then, another worker gets it. Handlers must therefore
    be idempotent: a job can run more than once, never by two workers at the same time
    while the first one's lease holds.
    """

    backend: str

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        delay: float | None = None,
        dedupe_key: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> str:
        """Add a job and return its id.

        ``delay`` (seconds) keeps it from running before then. While a job with the same
        ``dedupe_key`` is queued, delayed or running, nothing is added and that job's id is
        returned; once it is done or dead the key is free again.
        """
        ...

    def enqueue_many(self, jobs: Iterable[NewJob]) -> list[str]:
        """Add many jobs in few round trips; ids in the order given."""
        ...

    def reserve(
        self, kinds: Sequence[str], *, lease: float = DEFAULT_LEASE, count: int = 1, wait: float = 0.0
    ) -> list[Job]:
        """Take up to ``count`` due jobs of the given kinds, waiting up to ``wait`` seconds for one."""
        ...

    def ack_and_reserve(
        self,
        done: Sequence[Job],
        kinds: Sequence[str],
        *,
        lease: float = DEFAULT_LEASE,
        count: int = 1,
        wait: float = 0.0,
    ) -> tuple[int, list[Job]]:
        """Ack ``done`` and reserve the next jobs in one round trip (and one commit): what a worker
        does between jobs. Returns (how many of ``done`` were still held, the jobs reserved)."""
        ...

    def ack(self, job: Job) -> bool:
        """Mark a job done. False if this delivery had lost its lease (the job runs again elsewhere)."""
        ...

    def ack_many(self, jobs: Sequence[Job]) -> int:
        """Mark many jobs done in one round trip; returns how many were still held."""
        ...

    def fail(self, job: Job, error: str, *, retry: bool = True) -> JobStatus | None:
        """Record a failure: queued again after a backoff, or dead after ``max_attempts`` (or at once
        with ``retry=False``). Returns the new status, None if this delivery had lost its lease."""
        ...

    def release(self, job: Job) -> bool:
        """Give a job back unrun (a worker shutting down): due now, the attempt not counted."""
        ...

    def extend(self, job: Job, lease: float) -> bool:
        """Hold a job ``lease`` more seconds from now. False if its lease had already lapsed."""
        ...

    def stats(self) -> QueueStats:
        """Counts of jobs per state."""
        ...

    def list_jobs(
        self, *, status: JobStatus | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobInfo]:
        """Jobs, optionally of one status and kind, oldest first."""
        ...

    def retry(self, ids: Sequence[str] | None = None, *, kind: str | None = None) -> int:
        """Queue dead jobs again with fresh attempts (all dead jobs, or those named or of ``kind``)."""
        ...

    def purge(self, status: JobStatus, *, kind: str | None = None, older_than: float | None = None) -> int:
        """Delete done or dead jobs (of ``kind``, finished more than ``older_than`` seconds ago)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# --- argument checks shared by the backends -------------------------------------------------


def check_kind(kind: object) -> str:
    if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND_LENGTH or kind.strip() != kind:
        raise QueueError(
            f"a job kind must be a non-empty string of at most {MAX_KIND_LENGTH} characters without"
            f" surrounding spaces, got {kind!r}",
            remediation="name the kind after what the handler does, e.g. 'memory.summarize'",
        )
    return kind


def check_kinds(kinds: Sequence[str]) -> list[str]:
    if isinstance(kinds, str):
        kinds = [kinds]
    checked = list(dict.fromkeys(check_kind(k) for k in kinds))
    if not checked:
        raise QueueError("reserve needs at least one job kind", remediation="pass the kinds this worker runs")
    return checked


def check_new_job(job: NewJob) -> str:
    """Validate one job and return its payload as JSON text."""
    check_kind(job.kind)
    if not isinstance(job.payload, dict):
        raise QueueError(f"a job payload must be a dict, got {type(job.payload).__name__}")
    try:
        text = json.dumps(job.payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise QueueError(
            f"the payload of a {job.kind!r} job is not JSON: {err}",
            remediation="pass only dicts, lists, strings, numbers, booleans and None",
        ) from None
    if "\\u0000" in text and _has_nul(job.payload):
        raise QueueError(
            f"the payload of a {job.kind!r} job has a NUL character (\\u0000) in a string",
            remediation="remove it, or encode binary data (base64) before enqueueing;"
            " PostgreSQL cannot store it, so no backend accepts it",
        )
    if job.delay is not None and (
        isinstance(job.delay, bool)
        or not isinstance(job.delay, int | float)
        or not math.isfinite(job.delay)
        or job.delay < 0
    ):
        raise QueueError(f"delay must be a number of seconds >= 0, got {job.delay!r}")
    if job.dedupe_key is not None and (
        not isinstance(job.dedupe_key, str)
        or not job.dedupe_key
        or len(job.dedupe_key) > MAX_DEDUPE_KEY_LENGTH
    ):
        raise QueueError(
            f"dedupe_key must be a non-empty string of at most {MAX_DEDUPE_KEY_LENGTH} characters,"
            f" got {job.dedupe_key!r}"
        )
    if isinstance(job.max_attempts, bool) or not isinstance(job.max_attempts, int) or job.max_attempts < 1:
        raise QueueError(f"max_attempts must be an integer >= 1, got {job.max_attempts!r}")
    return text


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def check_lease(lease: float, count: int, wait: float) -> None:
    if not (isinstance(lease, int | float) and math.isfinite(lease) and lease > 0):
        raise QueueError(f"lease must be a positive number of seconds, got {lease!r}")
    if not isinstance(count, int) or count < 1:
        raise QueueError(f"count must be an integer >= 1, got {count!r}")
    if not (isinstance(wait, int | float) and math.isfinite(wait) and wait >= 0):
        raise QueueError(f"wait must be a number of seconds >= 0, got {wait!r}")


def check_purge(status: JobStatus, older_than: float | None) -> JobStatus:
    status = JobStatus(status)
    if status not in (JobStatus.DONE, JobStatus.DEAD):
        raise QueueError(
            f"purge deletes done or dead jobs, not {status.value!r} ones",
            remediation="pass status 'done' or 'dead'",
        )
    if older_than is not None and not (math.isfinite(older_than) and older_than >= 0):
        raise QueueError(f"older_than must be a number of seconds >= 0, got {older_than!r}")
    return status
