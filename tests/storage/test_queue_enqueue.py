"""enqueue_many writes all or nothing, and refuses what one backend could not store."""

from __future__ import annotations

import pytest

from mosaic_storage.queue import JobQueue, NewJob, QueueError


@pytest.mark.parametrize(
    "payload",
    [{"s": "a\x00b"}, {"k\x00": 1}, {"deep": [{"x": ["ok", "\x00"]}]}],
)
def test_a_nul_character_in_a_payload_is_refused_on_every_backend(queue: JobQueue, payload: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(QueueError, match="NUL"):
        queue.enqueue_many([NewJob("k", {"i": 0}), NewJob("k", payload)])
    assert queue.stats().queued == 0


def test_the_text_of_an_escaped_nul_is_fine(queue: JobQueue) -> None:
    queue.enqueue("k", {"s": "\\u0000"})
    [job] = queue.reserve(["k"])
    assert job.payload == {"s": "\\u0000"}


def test_a_failing_postgres_enqueue_many_writes_nothing(queue: JobQueue) -> None:
    if queue.backend != "postgres":  # type: ignore[attr-defined]
        pytest.skip("the chunked insert is PostgreSQL's")
    jobs = [NewJob("k", {"i": i}) for i in range(5001)]  # more than one chunk
    jobs.append(NewJob("k", {}, max_attempts=2**40))  # the database refuses it (int4)
    with pytest.raises(QueueError, match="nothing was enqueued") as caught:
        queue.enqueue_many(jobs)
    assert caught.value.__cause__ is None
    assert queue.stats().queued == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("delay", "5"), ("delay", True), ("max_attempts", True), ("max_attempts", 2.0)],
)
def test_wrongly_typed_delay_or_max_attempts_is_a_queue_error(
    queue: JobQueue, field: str, value: object
) -> None:
    with pytest.raises(QueueError, match=field):
        queue.enqueue("k", {}, **{field: value})  # type: ignore[arg-type]
    assert queue.stats().queued + queue.stats().delayed == 0


def test_a_redis_stream_key_of_the_wrong_type_is_a_queue_error(queue: JobQueue) -> None:
    if queue.backend != "redis":  # type: ignore[attr-defined]
        pytest.skip("Redis streams only")
    queue._client.set(f"{queue.prefix}:stream:k", "not a stream")  # type: ignore[attr-defined]
    with pytest.raises(QueueError, match="WRONGTYPE"):
        queue.reserve(["k"])


def test_producers_with_overlapping_dedupe_keys_in_opposite_order_do_not_deadlock(queue: JobQueue) -> None:
    import threading

    keys = [f"key-{i}" for i in range(150)]
    errors: list[BaseException] = []

    def produce(ordered: list[str], round_: int, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(timeout=30)
            queue.enqueue_many(
                [NewJob(f"k{round_}", {"key": k}, dedupe_key=f"{round_}-{k}") for k in ordered]
            )
        except BaseException as err:
            errors.append(err)

    for round_ in range(3):
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=produce, args=(o, round_, barrier)) for o in (keys, keys[::-1])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert errors == []
    assert queue.stats().queued == 3 * len(keys)  # each key once per round
    # Ids come back in the order the jobs were given, whatever order the rows went in.
    ids = queue.enqueue_many([NewJob("order", {"i": i}, dedupe_key=f"z{9 - i}") for i in range(10)])
    by_id = {job.id: job.payload["i"] for job in queue.list_jobs(kind="order")}
    assert [by_id[i] for i in ids] == list(range(10))
