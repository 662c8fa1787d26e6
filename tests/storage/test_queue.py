"""The JobQueue contract, run on every backend: SQLite, PostgreSQL and Redis streams."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

import mosaic_storage as ms
from mosaic_storage.queue import (
    Backoff,
    JobQueue,
    JobStatus,
    NewJob,
    QueueError,
    Worker,
    open_queue,
)
from tests.storage._queues import FAST, wait_for

LEASE = 1.0


def test_every_backend_implements_the_protocol(queue: JobQueue) -> None:
    assert isinstance(queue, JobQueue)
    assert queue.backend in {"sqlite", "postgres", "redis"}


def test_enqueue_reserve_ack_round_trips_payload_and_counts(queue: JobQueue) -> None:
    job_id = queue.enqueue("email.send", {"to": "a@example.com", "n": [1, 2.5, None], "ok": True})
    assert queue.stats().queued == 1

    [job] = queue.reserve(["email.send"], lease=LEASE)
    assert (job.id, job.kind, job.attempt, job.max_attempts) == (job_id, "email.send", 1, 5)
    assert job.payload == {"to": "a@example.com", "n": [1, 2.5, None], "ok": True}
    stats = queue.stats()
    assert (stats.queued, stats.running) == (0, 1)

    assert queue.ack(job) is True
    assert queue.reserve(["email.send"], lease=LEASE) == []
    stats = queue.stats()
    assert (stats.queued, stats.running, stats.dead) == (0, 0, 0)
    assert stats.done in (1, None)  # Redis keeps no finished jobs
    assert queue.ack(job) is False  # a second ack of the same delivery does nothing


def test_reserve_takes_only_the_kinds_asked_and_at_most_count(queue: JobQueue) -> None:
    queue.enqueue_many([NewJob("a", {"i": i}) for i in range(5)] + [NewJob("b", {"i": 9})])
    jobs = queue.reserve(["a"], lease=LEASE, count=3)
    assert len(jobs) == 3
    assert {j.kind for j in jobs} == {"a"}
    both = queue.reserve(["a", "b"], lease=LEASE, count=2)
    assert len(both) == 2
    rest = queue.reserve(["a", "b"], lease=LEASE, count=10)
    assert len(jobs) + len(both) + len(rest) == 6
    assert len({j.id for j in jobs + both + rest}) == 6
    assert queue.ack_many(jobs + both + rest) == 6


def test_enqueue_many_returns_ids_in_order(queue: JobQueue) -> None:
    ids = queue.enqueue_many(NewJob("bulk", {"i": i}) for i in range(250))
    assert len(set(ids)) == 250
    seen: dict[str, int] = {}
    while batch := queue.reserve(["bulk"], lease=LEASE, count=100):
        seen.update({job.id: job.payload["i"] for job in batch})
        queue.ack_many(batch)
    assert [seen[i] for i in ids] == list(range(250))


def test_delayed_job_runs_no_earlier_than_due(queue: JobQueue) -> None:
    delay = 0.6
    enqueued = time.monotonic()
    queue.enqueue("later", {"x": 1}, delay=delay)
    queue.enqueue("later", {"x": 0})
    [now_job] = queue.reserve(["later"], lease=LEASE, count=5)
    assert now_job.payload == {"x": 0}
    assert queue.stats().delayed == 1
    [later] = queue.reserve(["later"], lease=LEASE, wait=10.0)
    assert time.monotonic() - enqueued >= delay - 0.02  # clocks: Redis TIME vs our monotonic
    assert later.payload == {"x": 1}


def test_dedupe_key_holds_while_the_job_lives_and_frees_when_done(queue: JobQueue) -> None:
    first = queue.enqueue("summarize", {"user": "u1"}, dedupe_key="summarize:u1")
    again = queue.enqueue("summarize", {"user": "u1", "v": 2}, dedupe_key="summarize:u1")
    other = queue.enqueue("summarize", {"user": "u2"}, dedupe_key="summarize:u2")
    assert again == first
    assert other != first
    jobs = queue.reserve(["summarize"], lease=LEASE, count=10)
    assert sorted(j.payload["user"] for j in jobs) == ["u1", "u2"]
    # Still held while running.
    assert queue.enqueue("summarize", {"user": "u1"}, dedupe_key="summarize:u1") == first
    assert queue.ack_many(jobs) == 2
    fresh = queue.enqueue("summarize", {"user": "u1"}, dedupe_key="summarize:u1")
    assert fresh != first
    [job] = queue.reserve(["summarize"], lease=LEASE)
    assert job.id == fresh


def test_dedupe_keys_in_one_batch(queue: JobQueue) -> None:
    ids = queue.enqueue_many(
        [NewJob("k", {"i": 0}, dedupe_key="x"), NewJob("k", {"i": 1}), NewJob("k", {"i": 2}, dedupe_key="x")]
    )
    assert ids[0] == ids[2] != ids[1]
    assert len(queue.reserve(["k"], lease=LEASE, count=10)) == 2


def test_poison_job_is_retried_with_backoff_then_dead_lettered(queue: JobQueue) -> None:
    job_id = queue.enqueue("poison", {"p": 1}, max_attempts=3)
    attempts = []
    for _ in range(3):
        [job] = queue.reserve(["poison"], lease=LEASE, wait=10.0)
        attempts.append(job.attempt)
        assert job.id == job_id
        status = queue.fail(job, f"boom {job.attempt}")
        # Backoff: not due again at once.
        if status is JobStatus.QUEUED:
            assert queue.reserve(["poison"], lease=LEASE) == []
    assert attempts == [1, 2, 3]
    assert status is JobStatus.DEAD
    assert queue.reserve(["poison"], lease=LEASE, wait=0.3) == []
    [dead] = queue.list_jobs(status=JobStatus.DEAD)
    assert (dead.id, dead.attempts, dead.last_error) == (job_id, 3, "boom 3")
    assert queue.stats().dead == 1


def test_dead_jobs_can_be_retried_and_purged(queue: JobQueue) -> None:
    ids = [queue.enqueue("fragile", {"i": i}, max_attempts=5) for i in range(3)]
    for job in queue.reserve(["fragile"], lease=LEASE, count=3):
        assert queue.fail(job, "permanent", retry=False) is JobStatus.DEAD
    assert {j.id for j in queue.list_jobs(status=JobStatus.DEAD)} == set(ids)

    assert queue.retry([ids[0]]) == 1
    [revived] = queue.reserve(["fragile"], lease=LEASE, wait=5.0)
    assert (revived.id, revived.attempt) == (ids[0], 1)
    assert queue.ack(revived)

    assert queue.purge(JobStatus.DEAD, older_than=3600) == 0
    assert queue.purge(JobStatus.DEAD, kind="other") == 0
    assert queue.purge(JobStatus.DEAD) == 2
    assert queue.list_jobs(status=JobStatus.DEAD) == []
    with pytest.raises(QueueError, match="done or dead"):
        queue.purge(JobStatus.QUEUED)


def test_lapsed_lease_redelivers_and_the_stale_delivery_cannot_ack(queue: JobQueue) -> None:
    queue.enqueue("slow", {"x": 1})
    [first] = queue.reserve(["slow"], lease=0.3)
    [second] = wait_for(lambda: queue.reserve(["slow"], lease=LEASE), what="redelivery")  # type: ignore[misc]
    assert second.id == first.id
    assert second.attempt == 2
    assert queue.ack(first) is False  # the first worker lost the job
    assert queue.fail(first, "late") is None
    assert queue.ack(second) is True


def test_extend_keeps_a_long_job_from_redelivery(queue: JobQueue) -> None:
    queue.enqueue("long", {})
    [job] = queue.reserve(["long"], lease=0.5)
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        assert queue.extend(job, 0.5)
        assert queue.reserve(["long"], lease=0.5) == []
        time.sleep(0.1)
    assert queue.ack(job)


def test_release_gives_a_job_back_without_counting_the_attempt(queue: JobQueue) -> None:
    queue.enqueue("r", {"x": 1})
    [job] = queue.reserve(["r"], lease=LEASE)
    assert queue.release(job)
    assert queue.release(job) is False
    [again] = queue.reserve(["r"], lease=LEASE)
    assert (again.id, again.attempt) == (job.id, 1)


def test_list_jobs_shows_states_and_filters_by_kind(queue: JobQueue) -> None:
    queue.enqueue("x", {"i": 1})
    queue.enqueue("x", {"i": 2}, delay=60)
    queue.enqueue("y", {"i": 3})
    [running] = queue.reserve(["y"], lease=LEASE)
    by_status = Counter(j.status for j in queue.list_jobs())
    assert by_status == Counter({JobStatus.QUEUED: 2, JobStatus.RUNNING: 1})
    assert [j.id for j in queue.list_jobs(status=JobStatus.RUNNING)] == [running.id]
    assert {j.payload["i"] for j in queue.list_jobs(kind="x")} == {1, 2}
    assert len(queue.list_jobs(limit=1)) == 1
    assert queue.list_jobs(kind="x")[0].to_dict()["kind"] == "x"


BAD_CALLS = [
    (lambda q: q.enqueue("", {}), "job kind"),
    (lambda q: q.enqueue("k", {"when": object()}), "not JSON"),
    (lambda q: q.enqueue("k", ["not", "a", "dict"]), "must be a dict"),
    (lambda q: q.enqueue("k", {}, delay=-1), "delay"),
    (lambda q: q.enqueue("k", {}, max_attempts=0), "max_attempts"),
    (lambda q: q.enqueue("k", {}, dedupe_key=""), "dedupe_key"),
    (lambda q: q.reserve([], lease=1), "at least one job kind"),
    (lambda q: q.reserve(["k"], lease=0), "lease"),
    # One bad job in a batch: none of the batch is written.
    (lambda q: q.enqueue_many([NewJob("k"), NewJob("k", {"x": float("nan")})]), "not JSON"),
]


def test_bad_input_fails_clearly_and_writes_nothing(queue: JobQueue) -> None:
    for call, message in BAD_CALLS:
        with pytest.raises(QueueError, match=message):
            call(queue)
    assert queue.stats().queued == 0
    assert queue.reserve(["k"], lease=LEASE) == []


def test_threads_reserving_at_once_never_get_the_same_job(queue: JobQueue) -> None:
    n = 200
    queue.enqueue_many(NewJob("race", {"i": i}) for i in range(n))
    taken: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        while batch := queue.reserve(["race"], lease=30, count=7):
            with lock:
                taken.extend(job.id for job in batch)
            queue.ack_many(batch)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == n
    assert len(set(taken)) == n


def test_worker_in_process_acks_successes_and_dead_letters_failures(queue: JobQueue) -> None:
    queue.enqueue_many([NewJob("ok", {"i": i}) for i in range(5)] + [NewJob("bad", {}, max_attempts=2)])
    seen: list[int] = []

    def bad(job: object) -> None:
        raise RuntimeError("always fails")

    worker = Worker(
        queue, {"ok": lambda job: seen.append(job.payload["i"]), "bad": bad}, lease=LEASE, poll=0.05
    )
    report = worker.run(until_idle=True, install_signals=False)
    # The failed job is in backoff: run again until it is dead.
    wait_for(
        lambda: worker.run(until_idle=True, install_signals=False) and queue.stats().dead == 1,
        what="the failing job to be dead-lettered",
    )
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert report.succeeded == 5
    [dead] = queue.list_jobs(status=JobStatus.DEAD)
    assert dead.last_error == "RuntimeError: always fails"


def test_open_queue_follows_config_queue_type(tmp_path: object, redis_url: str) -> None:
    url = f"sqlite:///{tmp_path}/cfg.db"
    with ms.open_store(url) as store:
        with pytest.raises(QueueError, match="no jobs table"):
            open_queue(store)
        ms.upgrade(store)
        with open_queue(store) as table_queue:  # type: ignore[attr-defined]
            assert table_queue.backend == "sqlite"
    config = ms.MosaicConfig(
        storage=ms.StorageConfig(url=url),
        queue=ms.QueueConfig(type=ms.QueueType.REDIS, url=redis_url),
    )
    with open_queue(config) as redis_queue:  # type: ignore[attr-defined]
        assert redis_queue.backend == "redis"
    with open_queue(ms.MosaicConfig(storage=ms.StorageConfig(url=url))) as q:  # type: ignore[attr-defined]
        assert q.backend == "sqlite"


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    backoff = Backoff(base=1.0, cap=10.0, jitter=0.5)
    for failures, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (30, 10.0)]:
        delays = [backoff.delay(failures) for _ in range(50)]
        assert all(full * 0.5 <= d <= full for d in delays)
        assert len(set(delays)) > 1
    assert FAST.delay(1) <= 0.05
