"""A delivery's receipt never matches a later delivery of the same job, even after a release
(which gives the attempt back) or a retry of a dead job (which starts the attempts over)."""

from __future__ import annotations

import attrs
import pytest

from mosaic_storage.queue import JobQueue, JobStatus, QueueError, open_queue


def test_a_released_delivery_cannot_ack_or_extend_the_next_one(queue: JobQueue, queue_url: str) -> None:
    queue.enqueue("k", {"x": 1})
    [stale] = queue.reserve(["k"], lease=30)
    assert queue.release(stale)
    with open_queue(queue_url) as other:  # type: ignore[attr-defined]
        [fresh] = other.reserve(["k"], lease=30)
        assert fresh.attempt == stale.attempt == 1  # the release did not count the attempt
        assert not queue.extend(stale, 30)
        assert not queue.ack(stale)
        assert queue.fail(stale, "stale") is None
        assert not queue.release(stale)
        assert queue.ack_and_reserve([stale], ["k"])[0] == 0
        assert queue.stats().running == 1
        assert other.extend(fresh, 30)
        assert other.ack(fresh)
    assert queue.stats().running == 0  # Redis keeps no count of done jobs


def test_a_delivery_before_a_retry_cannot_ack_the_retried_job(queue: JobQueue) -> None:
    queue.enqueue("k", {}, max_attempts=1)
    [first] = queue.reserve(["k"], lease=30)
    assert queue.fail(first, "boom") is JobStatus.DEAD
    assert queue.retry() == 1
    [again] = queue.reserve(["k"], lease=30)
    assert again.attempt == first.attempt == 1
    assert not queue.ack(first)
    assert queue.ack(again)


def test_a_receipt_from_elsewhere_is_refused(queue: JobQueue) -> None:
    if queue.backend == "redis":  # type: ignore[attr-defined]
        pytest.skip("a Redis receipt is a stream entry id; a foreign one matches nothing")
    queue.enqueue("k", {})
    [job] = queue.reserve(["k"], lease=30)
    with pytest.raises(QueueError, match="not reserved from"):
        queue.ack(attrs.evolve(job, receipt="3"))  # the old, attempts-only receipt
