"""The worker keeps the lease of every job it holds until it acks, fails or releases it; a second
signal stops handler threads before their jobs are released; thread errors reach `run`."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from mosaic_storage.queue import HandlerRegistry, Job, JobQueue, NewJob, QueueError, Worker, open_queue

LEASE = 1.5  # heartbeats every 0.5 s: loose enough for a loaded CI machine


def _in_thread(worker: Worker, **kwargs: object) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(worker.run(install_signals=False, **kwargs)))  # type: ignore[arg-type]
    thread.start()
    return thread, out


def test_stop_keeps_the_heartbeat_of_the_running_job(queue: JobQueue, queue_url: str) -> None:
    registry = HandlerRegistry()
    started = threading.Event()

    @registry.handler("slow")
    def slow(job: Job) -> None:
        started.set()
        time.sleep(LEASE * 2.5)

    queue.enqueue("slow", {})
    worker = Worker(queue, registry, lease=LEASE, poll=0.05)
    thread, out = _in_thread(worker, max_jobs=1)
    with open_queue(queue_url) as other:  # type: ignore[attr-defined]
        assert started.wait(10)
        worker.stop()  # what the first SIGTERM does
        time.sleep(LEASE * 1.6)
        assert other.reserve(["slow"], lease=10) == []  # still leased to the stopping worker
        thread.join(10)
    [report] = out
    assert (report.succeeded, report.lost) == (1, 0)  # type: ignore[attr-defined]


def test_prefetched_and_done_jobs_keep_their_lease(queue: JobQueue, queue_url: str) -> None:
    registry = HandlerRegistry()
    ran: list[int] = []
    started = threading.Event()

    @registry.handler("k")
    def handle(job: Job) -> None:
        ran.append(job.payload["n"])
        started.set()
        time.sleep(LEASE * 1.6)

    queue.enqueue_many([NewJob("k", {"n": n}) for n in range(2)])
    worker = Worker(queue, registry, lease=LEASE, poll=0.05, prefetch=2)
    thread, out = _in_thread(worker, max_jobs=2)
    # Both jobs are reserved in one call before the first handler starts. (Polling before
    # that let the other queue take a job the worker had not reserved yet.)
    assert started.wait(10)
    with open_queue(queue_url) as other:  # type: ignore[attr-defined]
        # The second job waits past its lease behind the first, then the first waits (done,
        # not yet acked) behind the second: neither may go to another worker meanwhile.
        deadline = time.monotonic() + LEASE * 3
        while time.monotonic() < deadline:
            assert other.reserve(["k"], lease=10) == []
            time.sleep(0.05)
        thread.join(10)
    [report] = out
    assert sorted(ran) == [0, 1]
    assert (report.succeeded, report.lost) == (2, 0)  # type: ignore[attr-defined]


def test_second_signal_stops_handler_threads_before_releasing_their_jobs(
    queue: JobQueue, queue_url: str
) -> None:
    registry = HandlerRegistry()
    log: list[str] = []
    started = threading.Event()

    @registry.handler("k")
    def handle(job: Job) -> None:
        log.append("start")
        started.set()
        for _ in range(100):
            time.sleep(0.05)
        log.append("end")

    job_id = queue.enqueue("k", {})

    def signal_twice() -> None:
        if started.wait(10):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=signal_twice).start()
    report = Worker(queue, registry, lease=30, poll=0.05, concurrency=2).run()
    # The idle thread's reservation may already be waiting when the job is released: it gets
    # the job back, sees the stop and releases it again, without running it (CI saw 2 once).
    assert report.released in (1, 2) and report.stopped_by == "SIGTERM"
    assert report.succeeded == report.failed == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("mosaic-worker")]
    with open_queue(queue_url) as other:  # type: ignore[attr-defined]
        [job] = other.reserve(["k"], lease=10)
        assert (job.id, job.attempt) == (job_id, 1)
        time.sleep(0.2)
        assert log == ["start"]  # the handler was stopped, not left running next to this delivery
        assert other.ack(job)


def test_an_error_in_a_worker_thread_is_raised_from_run(queue: JobQueue) -> None:
    queue.enqueue("k", {})
    worker = Worker(queue, {"k": lambda job: None}, lease=-1, poll=0.05, concurrency=2)
    with pytest.raises(QueueError):
        worker.run(install_signals=False)
