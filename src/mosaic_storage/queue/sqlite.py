"""The job queue in a SQLite store's ``jobs`` table, safe for several processes (``BEGIN IMMEDIATE``)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .._ids import new_id
from ._table import INFO_COLUMNS, TableQueue, fence, to_info
from .protocol import (
    DEFAULT_LEASE,
    Job,
    JobInfo,
    JobStatus,
    NewJob,
    QueueStats,
    check_kinds,
    check_lease,
    check_purge,
)

T = TypeVar("T")
POLL_S = 0.05
# The condition of the partial index on jobs (0009): SQLite uses that index only for queries
# that repeat it word for word.
NOT_DONE = "status <> 'done'"

_EXPIRED = """
UPDATE jobs SET
  status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
  dedupe_key = CASE WHEN attempts >= max_attempts THEN NULL ELSE dedupe_key END,
  last_error = 'lease expired on attempt ' || attempts,
  lease_until = NULL, run_at = :now, updated_at = :now
WHERE status = 'running' AND status <> 'done' AND lease_until < :now
"""

# A job without a dedupe key leaves that column (and its unique index) alone.
_ACK = (
    "UPDATE jobs SET status = 'done', lease_until = NULL, updated_at = ?"
    " WHERE id = ? AND status = 'running' AND attempts = ? AND run_at = ?"
)
_ACK_DEDUPED = (
    "UPDATE jobs SET status = 'done', lease_until = NULL, dedupe_key = NULL, updated_at = ?"
    " WHERE id = ? AND status = 'running' AND attempts = ? AND run_at = ?"
)


def _acks(cur: Any, now_ts: str, jobs: Sequence[Job]) -> int:
    if len(jobs) == 1:
        [job] = jobs
        sql = _ACK if job.dedupe_key is None else _ACK_DEDUPED
        return int(cur.execute(sql, (now_ts, job.id, *fence(job))).rowcount)
    n = 0
    for sql, deduped in ((_ACK, False), (_ACK_DEDUPED, True)):
        rows = [(now_ts, job.id, *fence(job)) for job in jobs if (job.dedupe_key is not None) is deduped]
        if len(rows) == 1:
            n += cur.execute(sql, rows[0]).rowcount
        elif rows:
            cur.executemany(sql, rows)
            n += cur.rowcount
    return n


def _marks(n: int) -> str:
    return ", ".join("?" * n)


@functools.cache
def _pick(kinds: int) -> str:
    # SELECT then UPDATE by id: measured 3x faster on SQLite than one UPDATE .. WHERE id IN
    # (SELECT ..) RETURNING, and as safe inside BEGIN IMMEDIATE (no other writer in between).
    marks = _marks(kinds)
    return (
        "SELECT id, kind, payload, attempts + 1, max_attempts, dedupe_key FROM jobs"
        f" WHERE status = 'queued' AND status <> 'done' AND run_at <= ? AND kind IN ({marks})"
        " ORDER BY run_at LIMIT ?"
    )


@functools.cache
def _reserve_many(rows: int) -> str:
    # SQLite reads "id IN (?)" with one value as "id = ?".
    marks = _marks(rows)
    return (
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = ?,"
        f" run_at = ?2, updated_at = ?2 WHERE id IN ({marks})"
    )


def _job(row: Sequence[Any], reserved_at: str) -> Job:
    job_id, kind, payload, attempts, max_attempts, dedupe_key = row
    return Job(
        id=job_id,
        kind=kind,
        payload=json.loads(payload),
        attempt=attempts,
        max_attempts=max_attempts,
        dedupe_key=dedupe_key,
        receipt=f"{attempts}@{reserved_at}",
    )


def _ts(when: dt.datetime) -> str:
    # The text SQLAlchemy's DateTime writes on SQLite ('YYYY-MM-DD HH:MM:SS.ffffff'): sorts as text.
    if when.tzinfo is not dt.UTC:
        when = when.astimezone(dt.UTC)
    return when.replace(tzinfo=None).isoformat(" ", "microseconds")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _parse(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


class SQLiteQueue(TableQueue):
    """Jobs in the ``jobs`` table of a SQLite store (the ``local`` tier's queue)."""

    backend = "sqlite"

    def _setup(self, conn: Any) -> None:
        # Autocommit: every transaction below is an explicit BEGIN IMMEDIATE, which takes the
        # write lock before reading, so two processes never reserve the same row.
        conn.isolation_level = None
        self._local.cursor = conn.cursor()

    def _write(self, work: Callable[[Any], T]) -> T:
        conn = self._conn()
        cur = conn.cursor()
        try:
            # BEGIN inside the try: an exception arriving anywhere (a worker's second signal
            # while BEGIN waits for the lock, say) must not leave the transaction open.
            cur.execute("BEGIN IMMEDIATE")
            result = work(cur)
            cur.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                cur.execute("ROLLBACK")
            raise
        return result

    def _insert(self, jobs: list[tuple[NewJob, str]]) -> list[str]:
        now = _now()
        now_ts = _ts(now)

        def work(cur: Any) -> list[str]:
            ids: list[str] = []
            plain: list[tuple[Any, ...]] = []
            for job, payload in jobs:
                job_id = new_id()
                run_at = _ts(now + dt.timedelta(seconds=job.delay)) if job.delay else now_ts
                row = (job_id, job.kind, payload, job.max_attempts, job.dedupe_key, run_at, now_ts)
                if job.dedupe_key is None:
                    plain.append(row)
                    ids.append(job_id)
                    continue
                cur.execute(
                    "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, dedupe_key,"
                    " run_at, created_at, updated_at) VALUES (?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?7)"
                    " ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
                    row,
                )
                if cur.rowcount == 0:
                    found = cur.execute("SELECT id FROM jobs WHERE dedupe_key = ?", (job.dedupe_key,))
                    job_id = found.fetchone()[0]
                ids.append(job_id)
            if plain:
                cur.executemany(
                    "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, dedupe_key,"
                    " run_at, created_at, updated_at) VALUES (?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?7)",
                    plain,
                )
            return ids

        return self._write(work)

    def reserve(
        self, kinds: Sequence[str], *, lease: float = DEFAULT_LEASE, count: int = 1, wait: float = 0.0
    ) -> list[Job]:
        return self.ack_and_reserve((), kinds, lease=lease, count=count, wait=wait)[1]

    def ack_and_reserve(
        self,
        done: Sequence[Job],
        kinds: Sequence[str],
        *,
        lease: float = DEFAULT_LEASE,
        count: int = 1,
        wait: float = 0.0,
    ) -> tuple[int, list[Job]]:
        kinds, pick, lease_delta = self._reserve_plan(kinds, lease, count, wait)
        acks = done
        deadline = time.monotonic() + wait if wait else 0.0
        acked = 0
        while True:
            now = _now()
            now_ts = _ts(now)
            reclaim = self._reclaim_due()
            conn = self._conn()
            cur = self._local.cursor
            # A worker's loop comes here once a job: one transaction, written out inline
            # (no closure, no helper per statement) because the per-job Python is what a
            # one-at-a-time worker pays on top of SQLite's own work.
            try:
                cur.execute("BEGIN IMMEDIATE")
                if acks:
                    acked += _acks(cur, now_ts, acks)
                if reclaim:
                    cur.execute(_EXPIRED, {"now": now_ts})
                rows = cur.execute(pick, (now_ts, *kinds, count)).fetchall()
                if rows:
                    # run_at becomes the reservation time: half of the delivery's fence.
                    lease_ts = _ts(now + lease_delta)
                    cur.execute(_reserve_many(len(rows)), (lease_ts, now_ts, *(row[0] for row in rows)))
                cur.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            acks = ()
            if rows or not wait or time.monotonic() >= deadline:
                return acked, [_job(row, now_ts) for row in rows]
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def _reserve_plan(
        self, kinds: Sequence[str], lease: float, count: int, wait: float
    ) -> tuple[Sequence[str], str, dt.timedelta]:
        """The checked kinds, the SELECT and the lease of a reservation. A worker asks with the
        same arguments every time: they are checked once per thread."""
        # Types in the key: count=1.0 must still be refused after a call with count=1. A
        # generator is read once, here, and checked as the tuple it gave.
        if not isinstance(kinds, str):
            kinds = tuple(kinds)
        given = (
            kinds,
            (type(lease), lease),
            (type(count), count),
            (type(wait), wait),
        )
        last = self._local.__dict__.get("plan")
        if last is not None and last[0] == given:
            return last[1]  # type: ignore[no-any-return]
        checked = check_kinds(kinds)
        check_lease(lease, count, wait)
        plan = (checked, _pick(len(checked)), dt.timedelta(seconds=lease))
        self._local.plan = (given, plan)
        return plan

    def ack(self, job: Job) -> bool:
        return self.ack_many([job]) == 1

    def ack_many(self, jobs: Sequence[Job]) -> int:
        if not jobs:
            return 0
        now_ts = _ts(_now())
        if len(jobs) == 1:
            return _acks(self._conn().cursor(), now_ts, jobs)
        return self._write(lambda cur: _acks(cur, now_ts, jobs))

    def _fail(self, job: Job, error: str, status: JobStatus, delay: float) -> bool:
        now = _now()
        dead = status is JobStatus.DEAD
        cur = self._conn().execute(
            "UPDATE jobs SET status = ?, run_at = ?, last_error = ?, lease_until = NULL, updated_at = ?,"
            " dedupe_key = CASE WHEN ? THEN NULL ELSE dedupe_key END"
            " WHERE id = ? AND status = 'running' AND attempts = ? AND run_at = ?",
            (
                status.value,
                _ts(now + dt.timedelta(seconds=delay)),
                error,
                _ts(now),
                dead,
                job.id,
                *fence(job),
            ),
        )
        return bool(cur.rowcount)

    def release(self, job: Job) -> bool:
        now_ts = _ts(_now())
        cur = self._conn().execute(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_until = NULL,"
            " run_at = ?, updated_at = ? WHERE id = ? AND status = 'running' AND attempts = ? AND run_at = ?",
            (now_ts, now_ts, job.id, *fence(job)),
        )
        return bool(cur.rowcount)

    def extend(self, job: Job, lease: float) -> bool:
        check_lease(lease, 1, 0.0)
        now = _now()
        cur = self._conn().execute(
            "UPDATE jobs SET lease_until = ?, updated_at = ?"
            " WHERE id = ? AND status = 'running' AND attempts = ? AND run_at = ? AND lease_until >= ?",
            (_ts(now + dt.timedelta(seconds=lease)), _ts(now), job.id, *fence(job), _ts(now)),
        )
        return bool(cur.rowcount)

    def stats(self) -> QueueStats:
        now_ts = _ts(_now())
        counts = dict.fromkeys(JobStatus, 0)
        delayed = 0
        rows = self._conn().execute(
            "SELECT status, status = 'queued' AND run_at > ?, count(*) FROM jobs GROUP BY 1, 2", (now_ts,)
        )
        for status, later, n in rows:
            if status in counts:
                if later:
                    delayed += n
                else:
                    counts[status] += n
        return QueueStats(
            queued=counts[JobStatus.QUEUED],
            delayed=delayed,
            running=counts[JobStatus.RUNNING],
            dead=counts[JobStatus.DEAD],
            done=counts[JobStatus.DONE],
        )

    def list_jobs(
        self, *, status: JobStatus | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobInfo]:
        where, params = _filters(status, kind)
        rows = self._conn().execute(
            f"SELECT {INFO_COLUMNS} FROM jobs{where} ORDER BY created_at, id LIMIT ?", (*params, limit)
        )
        return [to_info(row, _parse(row[6])) for row in rows]

    def retry(self, ids: Sequence[str] | None = None, *, kind: str | None = None) -> int:
        where, params = _filters(JobStatus.DEAD, kind)
        if ids is not None:
            if not ids:
                return 0
            where += f" AND id IN ({', '.join('?' for _ in ids)})"
            params.extend(ids)
        now_ts = _ts(_now())

        def work(cur: Any) -> int:
            cur.execute(
                "UPDATE jobs SET status = 'queued', attempts = 0, lease_until = NULL, run_at = ?,"
                f" updated_at = ?{where}",
                (now_ts, now_ts, *params),
            )
            return int(cur.rowcount)

        return self._write(work)

    def purge(self, status: JobStatus, *, kind: str | None = None, older_than: float | None = None) -> int:
        status = check_purge(status, older_than)
        where, params = _filters(status, kind)
        if older_than is not None:
            where += " AND updated_at < ?"
            params.append(_ts(_now() - dt.timedelta(seconds=older_than)))

        def work(cur: Any) -> int:
            cur.execute(f"DELETE FROM jobs{where}", params)
            return int(cur.rowcount)

        return self._write(work)


def _filters(status: JobStatus | None, kind: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        status = JobStatus(status)
        clauses.append("status = ?")
        params.append(status.value)
        if status is not JobStatus.DONE:
            clauses.append(NOT_DONE)  # the condition of the jobs index: SQLite uses it then
    if kind is not None:
        clauses.append("kind = ?")
        params.append(kind)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
