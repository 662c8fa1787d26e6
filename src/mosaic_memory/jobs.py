"""Job handlers of agent memory, for ``mosaic worker --import mosaic_memory.jobs``.

``memory.summarize`` runs `summarize_job` (the offline extractive summarizer over the
configured store). A scheduled run (an empty payload) enqueues the next cron run of
``memory.summarization.schedule`` when it finishes, so the schedule keeps itself going once
seeded with `schedule_summarization` (``mosaic summarize --schedule``). Every worker computes
the same next run and enqueues it under the same dedupe key, so it runs once.
"""

from __future__ import annotations

import datetime as dt

from mosaic_storage import MosaicConfig, load_config
from mosaic_storage.queue import Job, JobQueue, job_handler, open_queue

from ._summarize import JOB_KIND, ScheduledRun, next_scheduled_run, summarize_job

__all__ = ["schedule_summarization", "summarize"]


def schedule_summarization(
    config: MosaicConfig | None = None, *, queue: JobQueue | None = None, now: dt.datetime | None = None
) -> ScheduledRun:
    """Enqueue the next cron run of the summarization (once, whoever asks); returns it."""
    config = config or load_config()
    now = now or dt.datetime.now(dt.UTC)
    run = next_scheduled_run(config, after=now)
    delay = max(0.0, (run.run_at - now).total_seconds())
    if queue is not None:
        queue.enqueue(run.kind, run.payload, delay=delay, dedupe_key=run.dedupe_key)
        return run
    opened = open_queue(config)
    try:
        opened.enqueue(run.kind, run.payload, delay=delay, dedupe_key=run.dedupe_key)
    finally:
        opened.close()
    return run


@job_handler(JOB_KIND)
def summarize(job: Job) -> None:
    """Summarize hot logs older than the configured age; a scheduled run then queues the next one."""
    summarize_job(job.payload)
    if not job.payload:
        schedule_summarization()
