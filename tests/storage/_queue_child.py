"""A worker process for the queue tests: runs jobs of one kind, logging each run to a file.

Every run appends ``start JOB PID T`` and ``end JOB PID T`` lines (O_APPEND: whole lines,
never interleaved) and records the job's effect idempotently (INSERT OR IGNORE by job id)
in a SQLite file, so tests can check overlap, redelivery and exactly-once effect.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import time

from mosaic_storage.queue import Job, Worker, open_queue


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("kind")
    parser.add_argument("log")
    parser.add_argument("effects")
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--until-idle", action="store_true")
    args = parser.parse_args()

    effects = sqlite3.connect(args.effects, timeout=30, isolation_level=None)
    effects.execute("CREATE TABLE IF NOT EXISTS effects (job_id TEXT PRIMARY KEY, pid INTEGER)")

    def note(line: str) -> None:
        fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{line} {os.getpid()} {time.time():.6f}\n".encode())
        finally:
            os.close(fd)

    def handle(job: Job) -> None:
        note(f"start {job.id}")
        time.sleep(args.sleep)
        effects.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (job.id, os.getpid()))
        note(f"end {job.id}")

    queue = open_queue(args.url)
    try:
        report = Worker(queue, {args.kind: handle}, lease=args.lease, poll=0.1).run(
            until_idle=args.until_idle
        )
        print(report.to_dict(), flush=True)
    finally:
        queue.close()


if __name__ == "__main__":
    main()
