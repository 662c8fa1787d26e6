"""What the table-backed queues (SQLite, PostgreSQL) share: connections per thread, row decoding."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .._redact import redact
from .protocol import (
    DEFAULT_MAX_ATTEMPTS,
    Backoff,
    Job,
    JobInfo,
    JobStatus,
    NewJob,
    QueueError,
    check_new_job,
)

if TYPE_CHECKING:
    from .._store import Store

# How often a reserve also returns jobs whose lease lapsed (a worker died) to the queue.
RECLAIM_EVERY_S = 0.25
MAX_ERROR_LENGTH = 4000


class TableQueue:
    """Base of the queues kept in the store's ``jobs`` table."""

    backend = "table"

    def __init__(self, store: Store, *, backoff: Backoff | None = None) -> None:
        self._store = store
        self._engine = store.engine
        self.backoff = backoff or Backoff()
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._next_reclaim = 0.0
        self._closed = False
        self._owned_store: Store | None = None

    def owns(self, store: Store) -> None:
        """Close ``store`` when this queue is closed (it was opened for the queue alone)."""
        self._owned_store = store

    # --- connections ----------------------------------------------------------------------

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise QueueError("this job queue is closed", remediation="open a new one with open_queue")
            # A connection of our own (detached from the pool): no pre-ping per call, and
            # transaction settings that cannot leak into the store's other users.
            raw = self._engine.raw_connection()
            conn = raw.driver_connection
            raw.detach()
            try:
                self._setup(conn)
            except BaseException:
                raw.close()  # detached: nothing else would close it
                raise
            self._local.conn = conn
            with self._lock:
                self._connections.append(raw)
        return conn

    def _setup(self, conn: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close every connection this queue opened (in any thread)."""
        self._closed = True
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except Exception:  # noqa: S112 -- closing a broken connection: nothing to do
                continue
        if self._owned_store is not None:
            self._owned_store.close()

    def __enter__(self) -> TableQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} url={self._store.url!r}>"

    # --- shared logic ---------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any] | None = None,
        *,
        delay: float | None = None,
        dedupe_key: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> str:
        job = NewJob(kind, {} if payload is None else payload, delay, dedupe_key, max_attempts)
        return self.enqueue_many([job])[0]

    def enqueue_many(self, jobs: Iterable[NewJob]) -> list[str]:
        checked = [(job, check_new_job(job)) for job in jobs]
        if not checked:
            return []
        return self._insert(checked)

    def _insert(self, jobs: list[tuple[NewJob, str]]) -> list[str]:
        raise NotImplementedError

    def _reclaim_due(self) -> bool:
        now = time.monotonic()
        if now < self._next_reclaim:
            return False
        self._next_reclaim = now + RECLAIM_EVERY_S
        return True

    def fail(self, job: Job, error: str, *, retry: bool = True) -> JobStatus | None:
        dead = not retry or job.attempt >= job.max_attempts
        delay = 0.0 if dead else self.backoff.delay(job.attempt)
        status = JobStatus.DEAD if dead else JobStatus.QUEUED
        if self._fail(job, clean_error(error), status, delay):
            return status
        return None

    def _fail(self, job: Job, error: str, status: JobStatus, delay: float) -> bool:
        raise NotImplementedError


def clean_error(error: object) -> str:
    """An error text safe to store and show: redacted and bounded."""
    text = redact(str(error))
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "\u2026"


def fence(job: Job) -> tuple[int, str]:
    """The attempt number and the reservation time a table-backed delivery carries.

    A reservation sets the row's ``run_at`` to its own time (a running job is not waiting for
    a due time), so a delivery after a release (which gives the attempt back) still differs
    from the released one: the stale holder can no longer ack, fail or extend it.
    """
    attempts, sep, reserved_at = job.receipt.partition("@")
    try:
        if not sep or not reserved_at:
            raise ValueError(job.receipt)
        return int(attempts), reserved_at
    except ValueError:
        raise QueueError(
            f"job {job.id} was not reserved from a table-backed queue",
            remediation="ack or fail a job on the queue it was reserved from",
        ) from None


def decode_payload(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        decoded: dict[str, Any] = json.loads(value)
        return decoded
    if type(value) is dict:
        return value  # psycopg hands jsonb over decoded, a fresh dict per row
    return dict(value)


def to_jobs(rows: Iterable[Sequence[Any]]) -> list[Job]:
    """Jobs from reserved rows (id, kind, payload, attempts, max_attempts, dedupe_key, run_at).

    One reservation stamps all its rows with the same time: it is formatted once.
    """
    stamps: dict[Any, str] = {}
    jobs: list[Job] = []
    for job_id, kind, payload, attempts, max_attempts, dedupe_key, reserved_at in rows:
        stamp = stamps.get(reserved_at)
        if stamp is None:
            stamp = reserved_at if isinstance(reserved_at, str) else reserved_at.isoformat()
            stamps[reserved_at] = stamp
        jobs.append(
            Job(
                id=job_id,
                kind=kind,
                payload=decode_payload(payload),
                attempt=attempts,
                max_attempts=max_attempts,
                dedupe_key=dedupe_key,
                receipt=f"{attempts}@{stamp}",
            )
        )
    return jobs


INFO_COLUMNS = "id, kind, status, attempts, max_attempts, payload, run_at, last_error, dedupe_key"


def to_info(row: Sequence[Any], run_at: Any) -> JobInfo:
    return JobInfo(
        id=row[0],
        kind=row[1],
        status=JobStatus(row[2]),
        attempts=row[3],
        max_attempts=row[4],
        payload=decode_payload(row[5]),
        run_at=run_at,
        last_error=row[7],
        dedupe_key=row[8],
    )
