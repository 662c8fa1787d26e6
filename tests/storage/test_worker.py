"""The worker: handlers by name, crash recovery, no concurrent double runs, graceful shutdown."""

from __future__ import annotations

import itertools
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from mosaic_storage.queue import (
    HandlerRegistry,
    Job,
    JobQueue,
    JobStatus,
    NewJob,
    QueueError,
    Worker,
    handlers,
    import_handlers,
    job_handler,
    open_queue,
)
from tests.storage._queues import spawn_child, wait_for

KIND = "test.work"


class Runs:
    """What the child workers logged: start/end lines and the idempotent effects table."""

    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "runs.log"
        self.effects = tmp_path / "effects.db"

    def args(self) -> list[str]:
        return [str(self.log), str(self.effects)]

    def lines(self) -> list[tuple[str, str, int, float]]:
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            what, job_id, pid, at = line.split()
            out.append((what, job_id, int(pid), float(at)))
        return out

    def starts(self) -> list[tuple[str, str, int, float]]:
        return [line for line in self.lines() if line[0] == "start"]

    def effect_rows(self) -> list[tuple[str, int]]:
        if not self.effects.exists():
            return []
        with sqlite3.connect(self.effects, timeout=30) as conn:
            try:
                return list(conn.execute("SELECT job_id, pid FROM effects"))
            except sqlite3.OperationalError:
                return []


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20.0) -> str:
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode in (0, -signal.SIGKILL), err.decode()
    return out.decode()


# --- registry ---------------------------------------------------------------------------------


def test_handlers_register_by_name_and_a_kind_has_one_handler() -> None:
    registry = HandlerRegistry()

    @registry.handler("a.b")
    def first(job: Job) -> None: ...

    assert registry.get("a.b") is first
    assert registry.kinds() == ["a.b"]
    with pytest.raises(QueueError, match="already has a handler"):
        registry.register("a.b", lambda job: None)
    registry.register("a.b", print, replace=True)
    assert registry.get("a.b") is print
    with pytest.raises(QueueError, match="job kind"):
        registry.register(" spaced ", print)


def test_job_handler_fills_the_default_registry_that_import_handlers_loads(tmp_path: Path) -> None:
    kind = "test.imported"
    (tmp_path / "mosaic_test_handlers.py").write_text(
        "from mosaic_storage.queue import job_handler\n"
        f"@job_handler({kind!r})\n"
        "def handle(job):\n"
        "    return job.payload\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        import_handlers(["mosaic_test_handlers"])
        assert kind in handlers
        with pytest.raises(QueueError, match="cannot import handler module 'no_such_mod'"):
            import_handlers(["no_such_mod"])
    finally:
        sys.path.remove(str(tmp_path))
        handlers.unregister(kind)
        sys.modules.pop("mosaic_test_handlers", None)

    @job_handler("test.decorated")
    def decorated(job: Job) -> None: ...

    try:
        assert handlers.get("test.decorated") is decorated
    finally:
        handlers.unregister("test.decorated")


def test_a_worker_refuses_kinds_without_handlers(queue: JobQueue) -> None:
    with pytest.raises(QueueError, match="no handler for job kind"):
        Worker(queue, {"a": print}, kinds=["a", "b"])
    with pytest.raises(QueueError, match="no job handlers"):
        Worker(queue, {})


# --- delivery ---------------------------------------------------------------------------------


def test_at_least_once_delivery_has_exactly_once_effect_with_idempotent_handler(queue: JobQueue) -> None:
    """A handler that crashes after its effect (before the ack) runs again; the effect stays single."""
    queue.enqueue_many(NewJob("charge", {"order": i}) for i in range(10))
    effects: dict[int, str] = {}
    runs: list[int] = []

    def charge(job: Job) -> None:
        runs.append(job.payload["order"])
        effects.setdefault(job.payload["order"], job.id)  # idempotent: keyed by the job
        if job.attempt == 1 and job.payload["order"] % 3 == 0:
            raise ConnectionError("crashed after charging, before the ack")

    worker = Worker(queue, {"charge": charge}, lease=1.0, poll=0.05)
    wait_for(
        lambda: (
            worker.run(until_idle=True, install_signals=False)
            and queue.stats().queued + queue.stats().delayed == 0
        ),
        what="every job to finish",
    )
    assert sorted(effects) == list(range(10))
    assert sorted(runs) == sorted([*range(10), 0, 3, 6, 9])  # the crashed ones ran twice
    assert queue.stats().dead == 0


def test_killed_worker_job_is_redelivered_after_its_lease_and_completes_once(
    queue_url: str, tmp_path: Path
) -> None:
    runs = Runs(tmp_path)
    lease = 1.0
    with open_queue(queue_url) as queue:  # type: ignore[attr-defined]
        job_id = queue.enqueue(KIND, {"n": 1})
        doomed = spawn_child(queue_url, KIND, *runs.args(), "--lease", str(lease), "--sleep", "60")
        try:
            wait_for(runs.starts, what="the first worker to start the job")
            doomed.kill()
            doomed.wait(timeout=10)
            killed_at = time.time()
            assert runs.effect_rows() == []

            rescuer = spawn_child(queue_url, KIND, *runs.args(), "--lease", str(lease))
            try:
                rows = wait_for(runs.effect_rows, timeout=30, what="the job to be redelivered and run")
            finally:
                _stop(rescuer)
        finally:
            if doomed.poll() is None:
                doomed.kill()
        assert rows == [(job_id, rescuer.pid)]
        starts = runs.starts()
        assert [s[2] for s in starts] == [doomed.pid, rescuer.pid]
        # Not before the lease of the dead worker had run out (its heartbeat died with it).
        assert starts[1][3] >= starts[0][3] + lease - 0.05
        assert starts[1][3] >= killed_at - 0.05
        ends = [line for line in runs.lines() if line[0] == "end"]
        assert len(ends) == 1
        stats = queue.stats()
        assert (stats.queued, stats.running, stats.delayed, stats.dead) == (0, 0, 0, 0)


def test_concurrent_worker_processes_never_run_one_job_at_the_same_time(
    queue_url: str, tmp_path: Path
) -> None:
    runs = Runs(tmp_path)
    n = 60
    with open_queue(queue_url) as queue:  # type: ignore[attr-defined]
        queue.enqueue_many(NewJob(KIND, {"i": i}) for i in range(n))
        workers = [
            spawn_child(queue_url, KIND, *runs.args(), "--lease", "5", "--sleep", "0.01") for _ in range(3)
        ]
        try:
            wait_for(lambda: len(runs.effect_rows()) == n, timeout=60, what="all jobs to run")
        finally:
            for proc in workers:
                _stop(proc)
    intervals: dict[str, list[tuple[float, float, int]]] = {}
    open_runs: dict[tuple[str, int], float] = {}
    for what, job_id, pid, at in runs.lines():
        if what == "start":
            open_runs[(job_id, pid)] = at
        else:
            intervals.setdefault(job_id, []).append((open_runs.pop((job_id, pid)), at, pid))
    assert not open_runs
    assert len(intervals) == n
    for job_id, spans in intervals.items():
        spans.sort()
        for (_, end, _), (start, _, _) in itertools.pairwise(spans):
            assert start >= end, f"job {job_id} ran in two workers at once: {spans}"
    # Without crashes or lapsed leases every job ran exactly once, spread over the workers.
    assert all(len(spans) == 1 for spans in intervals.values())
    assert len({pid for spans in intervals.values() for _, _, pid in spans}) >= 2


# --- shutdown ---------------------------------------------------------------------------------


def test_sigterm_finishes_the_running_job_then_exits(queue_url: str, tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    with open_queue(queue_url) as queue:  # type: ignore[attr-defined]
        job_id = queue.enqueue(KIND, {})
        queue.enqueue(KIND, {"second": True})
        proc = spawn_child(queue_url, KIND, *runs.args(), "--lease", "1", "--sleep", "1.5")
        try:
            wait_for(runs.starts, what="the worker to start a job")
            out = _stop(proc, signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0
        assert "'succeeded': 1" in out
        assert "'stopped_by': 'SIGTERM'" in out
        assert [row[0] for row in runs.effect_rows()] == [job_id]
        stats = queue.stats()
        assert (stats.queued, stats.running) == (1, 0)  # the second job was never taken


def test_a_second_signal_releases_the_running_job(queue_url: str, tmp_path: Path) -> None:
    runs = Runs(tmp_path)
    with open_queue(queue_url) as queue:  # type: ignore[attr-defined]
        job_id = queue.enqueue(KIND, {})
        proc = spawn_child(queue_url, KIND, *runs.args(), "--lease", "30", "--sleep", "60")
        try:
            wait_for(runs.starts, what="the worker to start the job")
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            out = _stop(proc, signal.SIGINT)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "'released': 1" in out
        assert runs.effect_rows() == []
        # Due again at once (no 30 s lease to wait out), and the attempt was not counted.
        [job] = queue.reserve([KIND], lease=1.0, wait=5.0)
        assert (job.id, job.attempt) == (job_id, 1)
        assert queue.list_jobs(status=JobStatus.DEAD) == []
