"""The summarization as a worker job: scheduled by cron, run by `mosaic worker`, rescheduled."""

from __future__ import annotations

import datetime as dt
import json
import time

import mosaic_storage as ms
from mosaic_memory import NewLogEntry, open_memory
from mosaic_memory.jobs import schedule_summarization
from mosaic_storage.queue import Worker, open_queue

OLD = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)


def test_a_scheduled_run_summarizes_then_queues_the_next_run_once(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/jobs.db"
    (tmp_path / "mosaic.config.json").write_text(
        json.dumps({"storage": {"url": url}, "memory": {"summarization": {"schedule": "0 3 * * *"}}})
    )
    monkeypatch.chdir(tmp_path)
    config = ms.load_config()
    with ms.open_store(config) as store:
        ms.upgrade(store)
        with open_memory(store) as memory:
            entries = [NewLogEntry("s1", "I prefer tea over coffee.", "info", None, None, OLD)]
            memory.logs.append_many(entries, user_id="u1")
    queue = open_queue(config)
    try:
        # Two workers (or two deploys) seeding the schedule enqueue it once.
        # "now" a moment before a 03:00 run: the job is due at once.
        at = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)
        first = schedule_summarization(config, queue=queue, now=at - dt.timedelta(milliseconds=10))
        again = schedule_summarization(config, queue=queue, now=at - dt.timedelta(milliseconds=10))
        assert first == again and first.run_at == at
        stats = queue.stats()
        assert stats.queued + stats.delayed == 1
        time.sleep(0.1)

        from mosaic_memory import jobs  # registers the handler

        worker = Worker(queue, kinds=[jobs.JOB_KIND], poll=0.05)
        report = worker.run(until_idle=True, install_signals=False)
        assert report.succeeded == 1 and report.failed == 0
        with open_memory(ms.open_store(config)) as memory:
            assert [i.text for i in memory.insights.list(user_id="u1")] == ["I prefer tea over coffee."]
        # The run queued the next cron run (delayed: not due yet).
        listed = queue.list_jobs(kind=jobs.JOB_KIND)
        pending = [j for j in listed if j.status.value == "queued"]
        assert len(pending) == 1 and pending[0].dedupe_key != first.dedupe_key
        assert pending[0].run_at is not None and pending[0].run_at > dt.datetime.now(dt.UTC)
    finally:
        queue.close()
