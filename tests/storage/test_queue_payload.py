"""A handler that changes its job's payload does not change what fail or release send back."""

from __future__ import annotations

from mosaic_storage.queue import HandlerRegistry, Job, JobQueue, JobStatus, Worker


def test_fail_and_release_keep_the_original_payload(queue: JobQueue) -> None:
    queue.enqueue("k", {"n": 1, "items": [1, 2]})
    [job] = queue.reserve(["k"], lease=30)
    job.payload["n"] = 2
    job.payload["items"].append(object())  # not JSON at all
    assert queue.release(job)
    [job] = queue.reserve(["k"], lease=30)
    assert job.payload == {"n": 1, "items": [1, 2]}
    job.payload.clear()
    assert queue.fail(job, "boom", retry=False) is JobStatus.DEAD
    [dead] = queue.list_jobs(status=JobStatus.DEAD)
    assert dead.payload == {"n": 1, "items": [1, 2]}


def test_a_handler_leaving_a_non_json_payload_does_not_crash_the_worker(queue: JobQueue) -> None:
    registry = HandlerRegistry()
    seen: list[dict[str, object]] = []

    @registry.handler("k")
    def handle(job: Job) -> None:
        seen.append(dict(job.payload))
        job.payload["oops"] = {1, 2}
        raise ValueError("failed after changing the payload")

    queue.enqueue("k", {"n": 1}, max_attempts=2)
    report = Worker(queue, registry, poll=0.05).run(max_jobs=2, install_signals=False)
    assert report.failed == 2
    assert seen == [{"n": 1}, {"n": 1}]
    [dead] = queue.list_jobs(status=JobStatus.DEAD)
    assert dead.payload == {"n": 1}
