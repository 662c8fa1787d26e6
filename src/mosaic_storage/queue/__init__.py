"""Background jobs: a durable queue (a table on SQLite/PostgreSQL, or Redis streams) and a worker.

```python
from mosaic_storage.queue import open_queue, Worker

queue = open_queue(store)               # the backend config.queue.type names
queue.enqueue("email.send", {"to": "a@example.com"}, dedupe_key="welcome:a")
Worker(queue, {"email.send": send}).run(until_idle=True)
```
"""

from __future__ import annotations

from ._open import QUEUE_SCHEMA, open_queue
from .protocol import (
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    Backoff,
    Job,
    JobInfo,
    JobQueue,
    JobStatus,
    NewJob,
    QueueError,
    QueueStats,
)
from .worker import Handler, HandlerRegistry, Worker, WorkerReport, handlers, import_handlers, job_handler

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_ATTEMPTS",
    "QUEUE_SCHEMA",
    "Backoff",
    "Handler",
    "HandlerRegistry",
    "Job",
    "JobInfo",
    "JobQueue",
    "JobStatus",
    "NewJob",
    "QueueError",
    "QueueStats",
    "Worker",
    "WorkerReport",
    "handlers",
    "import_handlers",
    "job_handler",
    "open_queue",
]
