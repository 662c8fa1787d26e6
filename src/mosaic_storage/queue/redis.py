"""The job queue on Redis/Valkey streams: one stream and consumer group per job kind.

Keys (all under one prefix, default ``mosaic:jobs``):

- ``PREFIX:stream:KIND``: jobs ready to run; consumer group ``workers`` hands them out
  (``XREADGROUP``), ``XACK`` + ``XDEL`` finish them. A job whose worker stays silent longer
  than the lease is taken back with ``XAUTOCLAIM`` and counts as a failed attempt.
- ``PREFIX:delayed``: a sorted set of delayed jobs and retries in backoff, scored by the
  server time (ms) they become due, moved to their stream when due.
- ``PREFIX:dead``: the dead-letter stream.
- ``PREFIX:dedupe:KEY``: the id of the live job holding a dedupe key (``SET NX``).
- ``PREFIX:kinds``: the kinds ever enqueued, so stats and lists can find the streams.

Every change that touches more than one key is a Lua script, so it is atomic.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from .._extras import require
from .._ids import new_id
from .._redact import redact, remember_secrets_in_url
from ._table import clean_error
from .protocol import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    Backoff,
    Job,
    JobInfo,
    JobStatus,
    NewJob,
    QueueError,
    QueueStats,
    check_kinds,
    check_lease,
    check_new_job,
    check_purge,
)

GROUP = "workers"
DEFAULT_PREFIX = "mosaic:jobs"
MAINTAIN_EVERY_S = 0.25
BLOCK_SLICE_S = 0.25


def block_ms(remaining: float) -> int | None:
    """The BLOCK of the next XREADGROUP for ``remaining`` seconds of wait: None (do not block)
    when none is left, else at least 1 ms: ``BLOCK 0`` means forever (a wait that rounded to
    0 ms hung a reserve until the socket timed out)."""
    if remaining <= 0:
        return None
    return max(1, round(min(remaining, BLOCK_SLICE_S) * 1000))


MAINTAIN_BATCH = 1000

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# An entry holds two fields (plus 'e', the last error, after a failure): 'p', the payload
# JSON, and 'm', "ATTEMPTS:MAX_ATTEMPTS:JOB_ID:DEDUPE_KEY". Few fields keep reads cheap:
# every field is one more element the client parses per job.
_HELPERS = """
local function free_key(prefix, dedupe, id)
  if dedupe ~= '' then
    local k = prefix .. ':dedupe:' .. dedupe
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
end
local function parse(meta)
  local a, m, id, d = string.match(meta, '^(%d+):(%d+):([^:]*):(.*)$')
  return tonumber(a), tonumber(m), id, d
end
local function fields(flat)
  local f = {}
  for k = 1, #flat, 2 do f[flat[k]] = flat[k + 1] end
  return f
end
"""

# ARGV: prefix, kind, id, payload, meta, dedupe, delay_ms
_ENQUEUE = (
    _NOW
    + """
local prefix, kind, id, payload, meta, dedupe = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local delay = tonumber(ARGV[7])
if dedupe ~= '' then
  if not redis.call('SET', prefix .. ':dedupe:' .. dedupe, id, 'NX') then
    return redis.call('GET', prefix .. ':dedupe:' .. dedupe)
  end
end
redis.call('SADD', prefix .. ':kinds', kind)
if delay > 0 then
  redis.call('ZADD', prefix .. ':delayed', now + delay, cjson.encode({kind, meta, payload, ''}))
else
  redis.call('XADD', prefix .. ':stream:' .. kind, '*', 'm', meta, 'p', payload)
end
return id
"""
)

# ARGV: prefix, group, consumer, lease_ms, batch, kinds...
# Moves due delayed jobs to their streams, and turns jobs silent for longer than the lease
# into failed attempts (queued again, or dead at max_attempts).
_MAINTAIN = (
    _NOW
    + _HELPERS
    + """
local prefix, group, consumer, lease, batch = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local moved, reclaimed = 0, 0
local due = redis.call('ZRANGEBYSCORE', prefix .. ':delayed', '-inf', now, 'LIMIT', 0, batch)
for _, member in ipairs(due) do
  local j = cjson.decode(member)
  local s = prefix .. ':stream:' .. j[1]
  if j[4] ~= '' then
    redis.call('XADD', s, '*', 'm', j[2], 'p', j[3], 'e', j[4])
  else
    redis.call('XADD', s, '*', 'm', j[2], 'p', j[3])
  end
  redis.call('ZREM', prefix .. ':delayed', member)
  moved = moved + 1
end
for i = 6, #ARGV do
  local kind = ARGV[i]
  local s = prefix .. ':stream:' .. kind
  local claimed = redis.call('XAUTOCLAIM', s, group, consumer, lease, '0-0', 'COUNT', batch)
  for _, entry in ipairs(claimed[2]) do
    local eid, flat = entry[1], entry[2]
    redis.call('XACK', s, group, eid)
    if flat then
      local f = fields(flat)
      local a, m, id, d = parse(f['m'])
      a = a + 1
      local meta = a .. ':' .. m .. ':' .. id .. ':' .. d
      local err = 'lease expired on attempt ' .. a
      if a >= m then
        redis.call('XADD', prefix .. ':dead', '*', 'k', kind, 'm', meta, 'p', f['p'], 'e', err)
        free_key(prefix, d, id)
      else
        redis.call('XADD', s, '*', 'm', meta, 'p', f['p'], 'e', err)
      end
      redis.call('XDEL', s, eid)
      reclaimed = reclaimed + 1
    end
  end
end
return {moved, reclaimed}
"""
)

# ARGV: prefix, group, then (kind, entry id, job id, dedupe) per job
_ACK_DEDUPED = (
    _HELPERS
    + """
local prefix, group, n = ARGV[1], ARGV[2], 0
for i = 3, #ARGV, 4 do
  local s = prefix .. ':stream:' .. ARGV[i]
  if redis.call('XACK', s, group, ARGV[i + 1]) == 1 then
    redis.call('XDEL', s, ARGV[i + 1])
    free_key(prefix, ARGV[i + 3], ARGV[i + 2])
    n = n + 1
  end
end
return n
"""
)

# ARGV: prefix, group, kind, entry id, job id, meta, dedupe, error, delay_ms, dead
# The payload goes back as the entry holds it, not as the handler may have changed it.
_FAIL = (
    _NOW
    + _HELPERS
    + """
local prefix, group, kind, eid, id, meta, dedupe, err = unpack(ARGV, 1, 8)
local s = prefix .. ':stream:' .. kind
local found = redis.call('XRANGE', s, eid, eid)
if #found == 0 or redis.call('XACK', s, group, eid) == 0 then return 0 end
local payload = fields(found[1][2])['p']
redis.call('XDEL', s, eid)
if ARGV[10] == '1' then
  redis.call('XADD', prefix .. ':dead', '*', 'k', kind, 'm', meta, 'p', payload, 'e', err)
  free_key(prefix, dedupe, id)
  return 2
end
redis.call('ZADD', prefix .. ':delayed', now + tonumber(ARGV[9]), cjson.encode({kind, meta, payload, err}))
return 1
"""
)

# ARGV: prefix, group, kind, entry id, meta
_RELEASE = (
    _HELPERS
    + """
local prefix, group, kind, eid, meta = unpack(ARGV, 1, 5)
local s = prefix .. ':stream:' .. kind
local found = redis.call('XRANGE', s, eid, eid)
if #found == 0 or redis.call('XACK', s, group, eid) == 0 then return 0 end
local payload = fields(found[1][2])['p']
redis.call('XDEL', s, eid)
redis.call('XADD', s, '*', 'm', meta, 'p', payload)
return 1
"""
)

# ARGV: prefix, dead entry id
_REVIVE = (
    _HELPERS
    + """
local prefix, eid = ARGV[1], ARGV[2]
local found = redis.call('XRANGE', prefix .. ':dead', eid, eid)
if #found == 0 then return 0 end
local f = fields(found[1][2])
local a, m, id, d = parse(f['m'])
redis.call('XDEL', prefix .. ':dead', eid)
redis.call('SADD', prefix .. ':kinds', f['k'])
redis.call('XADD', prefix .. ':stream:' .. f['k'], '*', 'm', '0:' .. m .. ':' .. id .. ':', 'p', f['p'], 'e', f['e'])
return 1
"""
)


def _meta(attempts: int, max_attempts: int, job_id: str, dedupe_key: str | None) -> str:
    return f"{attempts}:{max_attempts}:{job_id}:{dedupe_key or ''}"


def _parse_meta(meta: str) -> tuple[int, int, str, str | None]:
    attempts, max_attempts, job_id, dedupe_key = meta.split(":", 3)
    return int(attempts), int(max_attempts), job_id, dedupe_key or None


def _redis_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return {"valkey": "redis", "valkeys": "rediss"}.get(scheme, scheme) + sep + rest


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(raw: Sequence[Any] | dict[Any, Any]) -> dict[str, str]:
    if isinstance(raw, dict):
        return {_text(k): _text(v) for k, v in raw.items()}
    return {_text(raw[i]): _text(raw[i + 1]) for i in range(0, len(raw), 2)}


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _ms_time(ms: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000.0, dt.UTC)


class RedisQueue:
    """Jobs on Redis/Valkey streams (the ``standalone`` and ``federated`` tiers' queue)."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        backoff: Backoff | None = None,
        consumer: str | None = None,
    ) -> None:
        redis = require("redis", extra="redis", purpose="the Redis job queue")
        remember_secrets_in_url(url)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self._response_error = redis.ResponseError
        try:
            self._client = redis.Redis.from_url(
                _redis_url(url), socket_timeout=BLOCK_SLICE_S + 10.0, socket_connect_timeout=10.0
            )
        except ValueError as err:
            raise QueueError(
                f"not a Redis URL: {redact(url)} ({redact(err)})",
                remediation="use redis://HOST:6379/0, rediss://... or unix:///path/redis.sock",
            ) from None
        self._url = redact(url)
        self.prefix = prefix
        self.backoff = backoff or Backoff()
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._scripts = {
            name: self._client.register_script(body)
            for name, body in (
                ("enqueue", _ENQUEUE),
                ("maintain", _MAINTAIN),
                ("ack", _ACK_DEDUPED),
                ("fail", _FAIL),
                ("release", _RELEASE),
                ("revive", _REVIVE),
            )
        }
        self._known_kinds: set[str] = set()
        self._grouped: set[str] = set()
        self._lock = threading.Lock()
        self._next_maintain = 0.0

    def __repr__(self) -> str:
        return f"<RedisQueue url={self._url!r} prefix={self.prefix!r}>"

    def __enter__(self) -> RedisQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stream(self, kind: str) -> str:
        return f"{self.prefix}:stream:{kind}"

    def _wrap(self, err: BaseException) -> QueueError:
        return QueueError(
            f"Redis at {self._url} failed: {redact(err)}",
            remediation="check that the server is up (mosaic doctor) and try again",
        )

    # --- enqueue ----------------------------------------------------------------------------

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
        try:
            return self._enqueue(checked)
        except self._errors as err:
            raise self._wrap(err) from None

    def _enqueue(self, jobs: list[tuple[NewJob, str]]) -> list[str]:
        pipe = self._client.pipeline(transaction=False)
        new_kinds = {job.kind for job, _ in jobs} - self._known_kinds
        if new_kinds:
            pipe.sadd(f"{self.prefix}:kinds", *new_kinds)
        ids: list[str] = []
        # (index in ids, index in the pipeline) of each scripted enqueue: a script answers
        # with the id holding the dedupe key, ours or the live job's.
        scripted: list[tuple[int, int]] = []
        enqueue = self._scripts["enqueue"]
        for job, payload in jobs:
            job_id = new_id()
            ids.append(job_id)
            if job.dedupe_key is None and not job.delay:
                pipe.xadd(self._stream(job.kind), {"m": f"0:{job.max_attempts}:{job_id}:", "p": payload})
            else:
                scripted.append((len(ids) - 1, len(pipe)))
                delay_ms = max(1, round(job.delay * 1000)) if job.delay else 0
                meta = _meta(0, job.max_attempts, job_id, job.dedupe_key)
                args = [self.prefix, job.kind, job_id, payload, meta, job.dedupe_key or "", delay_ms]
                enqueue(args=args, client=pipe)
            if len(pipe) >= 1000:
                self._collect(pipe.execute(), ids, scripted)
                scripted = []
        if len(pipe):
            self._collect(pipe.execute(), ids, scripted)
        self._known_kinds |= new_kinds
        return ids

    @staticmethod
    def _collect(results: list[Any], ids: list[str], scripted: list[tuple[int, int]]) -> None:
        for id_index, pipe_index in scripted:
            ids[id_index] = _text(results[pipe_index])

    # --- reserve ----------------------------------------------------------------------------

    def _ensure_groups(self, kinds: list[str]) -> None:
        missing = [k for k in kinds if k not in self._grouped]
        if not missing:
            return
        pipe = self._client.pipeline(transaction=False)
        pipe.sadd(f"{self.prefix}:kinds", *missing)
        for kind in missing:
            pipe.xgroup_create(self._stream(kind), GROUP, id="0", mkstream=True)
        try:
            results = pipe.execute(raise_on_error=False)
        except self._errors as err:
            raise self._wrap(err) from None
        for result in results:
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise self._wrap(result)
        with self._lock:
            self._grouped.update(missing)

    def maintain(self, kinds: Sequence[str], *, lease: float = DEFAULT_LEASE) -> tuple[int, int]:
        """Move due delayed jobs to their streams and take back lapsed ones: (moved, reclaimed).

        `reserve` calls it a few times a second; call it yourself to act at once.
        """
        kinds = check_kinds(kinds)
        try:
            self._ensure_groups(kinds)
            moved, reclaimed = self._scripts["maintain"](
                args=[self.prefix, GROUP, self.consumer, max(1, round(lease * 1000)), MAINTAIN_BATCH, *kinds]
            )
        except self._errors as err:
            raise self._wrap(err) from None
        return int(moved), int(reclaimed)

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
        kinds = check_kinds(kinds)
        check_lease(lease, count, wait)
        deadline = time.monotonic() + wait
        streams = {self._stream(k): ">" for k in kinds}
        acked = 0
        while True:
            now = time.monotonic()
            if now >= self._next_maintain:
                self._next_maintain = now + MAINTAIN_EVERY_S
                self.maintain(kinds, lease=lease)
            remaining = deadline - time.monotonic()
            block = block_ms(remaining)
            # The acks of the jobs just done and the next read share one round trip.
            pipe = self._client.pipeline(transaction=False)
            acks = self._queue_acks(pipe, done)
            done = ()
            pipe.xreadgroup(GROUP, self.consumer, streams, count=count, block=block)
            try:
                results = pipe.execute(raise_on_error=False)
            except self._errors as err:
                raise self._wrap(err) from None
            for index in acks:
                if isinstance(results[index], Exception):
                    raise self._wrap(results[index])
                acked += int(results[index])
            answer = results[-1]
            if isinstance(answer, Exception):
                if "NOGROUP" not in str(answer):
                    raise self._wrap(answer)
                self._grouped.clear()
                self._ensure_groups(kinds)
                continue
            jobs = self._jobs(answer)
            if len(jobs) > count:
                for extra in jobs[count:]:
                    self.release(extra)
                jobs = jobs[:count]
            if jobs or time.monotonic() >= deadline:
                return acked, jobs

    def _jobs(self, answer: Any) -> list[Job]:
        jobs: list[Job] = []
        if not answer:
            return jobs
        items = answer.items() if isinstance(answer, dict) else answer
        cut = len(self.prefix) + len(":stream:")
        for stream, entries in items:
            kind = _text(stream)[cut:]
            for entry_id, raw in entries:
                if not raw:
                    continue
                f = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))
                attempts, max_attempts, job_id, dedupe_key = _parse_meta(f[b"m"].decode())
                jobs.append(
                    Job(
                        id=job_id,
                        kind=kind,
                        payload=json.loads(f[b"p"]),
                        attempt=attempts + 1,
                        max_attempts=max_attempts,
                        dedupe_key=dedupe_key,
                        receipt=entry_id.decode(),
                    )
                )
        return jobs

    # --- finish -----------------------------------------------------------------------------

    def ack(self, job: Job) -> bool:
        return self.ack_many([job]) == 1

    def ack_many(self, jobs: Sequence[Job]) -> int:
        if not jobs:
            return 0
        try:
            return self._ack(jobs)
        except self._errors as err:
            raise self._wrap(err) from None

    def _ack(self, jobs: Sequence[Job]) -> int:
        pipe = self._client.pipeline(transaction=False)
        acks = self._queue_acks(pipe, jobs)
        results = pipe.execute()
        return sum(int(results[i]) for i in acks)

    def _queue_acks(self, pipe: Any, jobs: Sequence[Job]) -> list[int]:
        """Put the acks of jobs on a pipeline; returns where their counts will be in the results."""
        plain: dict[str, list[str]] = {}
        deduped: list[str] = []
        for job in jobs:
            if job.dedupe_key is None:
                plain.setdefault(job.kind, []).append(job.receipt)
            else:
                deduped += [job.kind, job.receipt, job.id, job.dedupe_key]
        acks = []
        for kind, receipts in plain.items():
            stream = self._stream(kind)
            acks.append(len(pipe))
            pipe.xack(stream, GROUP, *receipts)
            pipe.xdel(stream, *receipts)
        if deduped:
            acks.append(len(pipe))
            self._scripts["ack"](args=[self.prefix, GROUP, *deduped], client=pipe)
        return acks

    def fail(self, job: Job, error: str, *, retry: bool = True) -> JobStatus | None:
        dead = not retry or job.attempt >= job.max_attempts
        delay_ms = 0 if dead else max(1, round(self.backoff.delay(job.attempt) * 1000))
        try:
            answer = self._scripts["fail"](
                args=[
                    self.prefix,
                    GROUP,
                    job.kind,
                    job.receipt,
                    job.id,
                    _meta(job.attempt, job.max_attempts, job.id, job.dedupe_key),
                    job.dedupe_key or "",
                    clean_error(error),
                    delay_ms,
                    "1" if dead else "0",
                ]
            )
        except self._errors as err:
            raise self._wrap(err) from None
        return {0: None, 1: JobStatus.QUEUED, 2: JobStatus.DEAD}[int(answer)]

    def release(self, job: Job) -> bool:
        try:
            answer = self._scripts["release"](
                args=[
                    self.prefix,
                    GROUP,
                    job.kind,
                    job.receipt,
                    _meta(job.attempt - 1, job.max_attempts, job.id, job.dedupe_key),
                ]
            )
        except self._errors as err:
            raise self._wrap(err) from None
        return bool(answer)

    def extend(self, job: Job, lease: float) -> bool:
        # Redis measures a lease as idle time: XCLAIM to ourselves sets it back to zero.
        check_lease(lease, 1, 0.0)
        try:
            claimed = self._client.xclaim(
                self._stream(job.kind), GROUP, self.consumer, 0, [job.receipt], justid=True
            )
        except self._errors as err:
            raise self._wrap(err) from None
        return bool(claimed)

    # --- inspect and manage -----------------------------------------------------------------

    def _kinds(self, kind: str | None = None) -> list[str]:
        if kind is not None:
            return [kind]
        return sorted(_text(k) for k in self._client.smembers(f"{self.prefix}:kinds"))

    def _pending_count(self, stream: str) -> int:
        try:
            summary = self._client.xpending(stream, GROUP)
        except self._response_error:
            return 0
        return int(summary["pending"])

    def stats(self) -> QueueStats:
        try:
            queued = running = 0
            for kind in self._kinds():
                stream = self._stream(kind)
                pending = self._pending_count(stream)
                running += pending
                queued += int(self._client.xlen(stream)) - pending
            return QueueStats(
                queued=queued,
                delayed=int(self._client.zcard(f"{self.prefix}:delayed")),
                running=running,
                dead=int(self._client.xlen(f"{self.prefix}:dead")),
                done=None,
            )
        except self._errors as err:
            raise self._wrap(err) from None

    def list_jobs(
        self, *, status: JobStatus | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobInfo]:
        status = JobStatus(status) if status is not None else None
        try:
            found: list[JobInfo] = []
            if status in (None, JobStatus.RUNNING, JobStatus.QUEUED):
                for k in self._kinds(kind):
                    found += self._stream_jobs(k, status, limit)
            if status in (None, JobStatus.QUEUED):
                for member, score in self._client.zrange(f"{self.prefix}:delayed", 0, -1, withscores=True):
                    j = json.loads(_text(member))
                    attempts, max_attempts, job_id, dedupe_key = _parse_meta(j[1])
                    if kind is None or j[0] == kind:
                        found.append(
                            JobInfo(
                                id=job_id,
                                kind=j[0],
                                status=JobStatus.QUEUED,
                                attempts=attempts,
                                max_attempts=max_attempts,
                                payload=json.loads(j[2]),
                                run_at=_ms_time(score),
                                last_error=j[3] or None,
                                dedupe_key=dedupe_key,
                            )
                        )
            if status in (None, JobStatus.DEAD):
                for entry_id, raw in self._client.xrange(f"{self.prefix}:dead"):
                    f = _fields(raw)
                    if kind is None or f["k"] == kind:
                        found.append(self._info(f["k"], f, JobStatus.DEAD, _text(entry_id)))
        except self._errors as err:
            raise self._wrap(err) from None
        return found[:limit]

    def _info(self, kind: str, f: dict[str, str], status: JobStatus, entry_id: str) -> JobInfo:
        attempts, max_attempts, job_id, dedupe_key = _parse_meta(f["m"])
        return JobInfo(
            id=job_id,
            kind=kind,
            status=status,
            attempts=attempts + (1 if status is JobStatus.RUNNING else 0),
            max_attempts=max_attempts,
            payload=json.loads(f["p"]),
            run_at=_ms_time(_entry_ms(entry_id)),
            last_error=f.get("e") or None,
            dedupe_key=dedupe_key,
        )

    def _stream_jobs(self, kind: str, status: JobStatus | None, limit: int) -> list[JobInfo]:
        stream = self._stream(kind)
        last = "0-0"
        try:
            for group in self._client.xinfo_groups(stream):
                if _text(group["name"]) == GROUP:
                    last = _text(group["last-delivered-id"])
        except self._response_error:
            return []
        found: list[JobInfo] = []
        if status in (None, JobStatus.RUNNING) and last != "0-0":
            # Acked entries are deleted, so what is left up to the last delivered id is running.
            for entry_id, raw in self._client.xrange(stream, "-", last, count=limit):
                found.append(self._info(kind, _fields(raw), JobStatus.RUNNING, _text(entry_id)))
        if status in (None, JobStatus.QUEUED):
            for entry_id, raw in self._client.xrange(stream, f"({last}", "+", count=limit):
                found.append(self._info(kind, _fields(raw), JobStatus.QUEUED, _text(entry_id)))
        return found

    def _dead_entries(self, kind: str | None, ids: Sequence[str] | None, before_ms: int | None) -> list[str]:
        wanted = set(ids) if ids is not None else None
        matched: list[str] = []
        for entry_id, raw in self._client.xrange(f"{self.prefix}:dead"):
            eid = _text(entry_id)
            f = _fields(raw)
            if kind is not None and f["k"] != kind:
                continue
            if wanted is not None and _parse_meta(f["m"])[2] not in wanted:
                continue
            if before_ms is not None and _entry_ms(eid) >= before_ms:
                continue
            matched.append(eid)
        return matched

    def retry(self, ids: Sequence[str] | None = None, *, kind: str | None = None) -> int:
        try:
            revived = 0
            for eid in self._dead_entries(kind, ids, None):
                revived += int(self._scripts["revive"](args=[self.prefix, eid]))
            return revived
        except self._errors as err:
            raise self._wrap(err) from None

    def purge(self, status: JobStatus, *, kind: str | None = None, older_than: float | None = None) -> int:
        status = check_purge(status, older_than)
        if status is JobStatus.DONE:
            return 0  # Redis keeps no finished jobs
        try:
            before = None
            if older_than is not None:
                seconds, micros = self._client.time()
                before = int(seconds) * 1000 + int(micros) // 1000 - round(older_than * 1000)
            entries = self._dead_entries(kind, None, before)
            deleted = 0
            for start in range(0, len(entries), 1000):
                deleted += int(self._client.xdel(f"{self.prefix}:dead", *entries[start : start + 1000]))
            return deleted
        except self._errors as err:
            raise self._wrap(err) from None

    def close(self) -> None:
        """Drop this consumer from the groups where it holds nothing, and close the connections."""
        try:
            for kind in self._grouped:
                stream = self._stream(kind)
                pending = self._client.xpending_range(stream, GROUP, "-", "+", 1, consumername=self.consumer)
                if not pending:
                    self._client.xgroup_delconsumer(stream, GROUP, self.consumer)
        except self._errors:
            pass
        finally:
            self._client.close()
