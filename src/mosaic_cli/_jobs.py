"""``mosaic worker`` and ``mosaic jobs``: run background jobs, and look at or repair the queue."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

import mosaic_storage as ms
from mosaic_storage.queue import JobQueue, JobStatus, Worker, handlers, import_handlers, open_queue

from ._options import ConfigOption, JsonOption
from ._output import EXIT_USAGE, console, fail, handle_errors, print_json

jobs_app = typer.Typer(help="The job queue: enqueue, list, stats, retry, purge.", no_args_is_help=True)

QueueUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Queue to use instead of the config's: redis://... (streams) or a storage URL (its jobs table).",
    ),
]
KindOption = Annotated[str | None, typer.Option("--kind", "-k", help="Only jobs of this kind.")]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _queue(config: Path | None, url: str | None) -> JobQueue:
    return open_queue(url if url is not None else ms.load_config(config))


def _seconds(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    match = _DURATION.match(text)
    if not match:
        fail(f"{option} takes a duration such as 90, 30s, 15m, 12h or 7d, got {text!r}", code=EXIT_USAGE)
    return float(match[1]) * _UNIT_S[match[2]]


@handle_errors
def worker(
    imports: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            "-i",
            help="Module to import for the handlers it registers with @job_handler (repeatable).",
        ),
    ] = None,
    kinds: Annotated[
        list[str] | None,
        typer.Option("--kind", "-k", help="Run only these kinds (default: every registered)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once (threads).")] = 1,
    lease: Annotated[float, typer.Option(min=0.1, help="Seconds a silent job stays reserved.")] = 30.0,
    prefetch: Annotated[int, typer.Option(min=1, help="Jobs reserved per round trip.")] = 1,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Exit once no job is due.")] = False,
    max_jobs: Annotated[int | None, typer.Option(min=1, help="Exit after this many jobs.")] = None,
    config: ConfigOption = None,
    url: QueueUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run jobs with the handlers registered by name.

    SIGTERM or Ctrl-C finishes the running job and exits; a second one releases it.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import_handlers(imports or [])
    queue = _queue(config, url)
    try:
        runner = Worker(queue, handlers, kinds=kinds, lease=lease, prefetch=prefetch, concurrency=concurrency)
        if not as_json:
            console.print(f"worker on {queue!r}: kinds {', '.join(runner.kinds)}", highlight=False)
        report = runner.run(max_jobs=max_jobs, until_idle=until_idle)
    finally:
        queue.close()
    if as_json:
        print_json(report.to_dict())
        return
    console.print(
        f"done: {report.succeeded} succeeded, {report.failed} failed, {report.released} released,"
        f" {report.lost} lost their lease"
        + (f" (stopped by {report.stopped_by})" if report.stopped_by else ""),
        highlight=False,
    )


@jobs_app.command("enqueue")
@handle_errors
def enqueue(
    kind: Annotated[str, typer.Argument(help="The job kind, the name its handler is registered under.")],
    payload: Annotated[str, typer.Option(help="The payload, a JSON object.")] = "{}",
    delay: Annotated[str | None, typer.Option(help="Do not run before this long from now (30s, 5m).")] = None,
    dedupe_key: Annotated[
        str | None, typer.Option(help="Add nothing while a job with this key lives.")
    ] = None,
    max_attempts: Annotated[int, typer.Option(min=1, help="Attempts before the job is dead.")] = 5,
    config: ConfigOption = None,
    url: QueueUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a job."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as err:
        fail(f"--payload is not JSON: {err.msg} at character {err.pos}", code=EXIT_USAGE)
    if not isinstance(data, dict):
        fail('--payload must be a JSON object, e.g. \'{"user": "u1"}\'', code=EXIT_USAGE)
    seconds = _seconds(delay, "--delay")
    queue = _queue(config, url)
    try:
        job_id = queue.enqueue(kind, data, delay=seconds, dedupe_key=dedupe_key, max_attempts=max_attempts)
    finally:
        queue.close()
    if as_json:
        print_json({"id": job_id, "kind": kind})
    else:
        console.print(job_id, highlight=False)


@jobs_app.command("list")
@handle_errors
def list_jobs(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: KindOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    config: ConfigOption = None,
    url: QueueUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, oldest first (Redis keeps no finished jobs: 'done' lists nothing there)."""
    queue = _queue(config, url)
    try:
        jobs = queue.list_jobs(status=status, kind=kind, limit=limit)
    finally:
        queue.close()
    if as_json:
        print_json([job.to_dict() for job in jobs])
        return
    table = Table("id", "kind", "status", "attempts", "run at", "last error")
    for job in jobs:
        table.add_row(
            job.id,
            job.kind,
            job.status.value,
            f"{job.attempts}/{job.max_attempts}",
            job.run_at.isoformat(timespec="seconds") if job.run_at else "",
            (job.last_error or "")[:80],
        )
    console.print(table)


@jobs_app.command("stats")
@handle_errors
def stats(config: ConfigOption = None, url: QueueUrlOption = None, as_json: JsonOption = False) -> None:
    """Count jobs per state."""
    queue = _queue(config, url)
    try:
        counts: dict[str, Any] = queue.stats().to_dict()
    finally:
        queue.close()
    if as_json:
        print_json(counts)
        return
    console.print("  ".join(f"{k} {'-' if v is None else v}" for k, v in counts.items()), highlight=False)


@jobs_app.command("retry")
@handle_errors
def retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead jobs to queue again.")] = None,
    kind: KindOption = None,
    all_dead: Annotated[bool, typer.Option("--all", help="Every dead job (of --kind, if given).")] = False,
    config: ConfigOption = None,
    url: QueueUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue dead jobs again with fresh attempts."""
    if not ids and not all_dead and kind is None:
        fail("name the dead jobs to retry: job ids, --kind KIND or --all", code=EXIT_USAGE)
    queue = _queue(config, url)
    try:
        count = queue.retry(ids or None, kind=kind)
    finally:
        queue.close()
    if as_json:
        print_json({"retried": count})
    else:
        console.print(f"queued {count} dead job(s) again", highlight=False)


@jobs_app.command("purge")
@handle_errors
def purge(
    status: Annotated[JobStatus, typer.Option(help="Delete jobs in this state: done or dead.")],
    kind: KindOption = None,
    older_than: Annotated[
        str | None, typer.Option(help="Only jobs finished longer ago than this (90, 30m, 12h, 7d).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    config: ConfigOption = None,
    url: QueueUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete done or dead jobs."""
    if status not in (JobStatus.DONE, JobStatus.DEAD):
        fail(f"purge deletes done or dead jobs, not {status.value!r} ones", code=EXIT_USAGE)
    seconds = _seconds(older_than, "--older-than")
    if not yes and not typer.confirm(f"Delete {status.value} jobs{f' of kind {kind}' if kind else ''}?"):
        raise typer.Exit(1)
    queue = _queue(config, url)
    try:
        count = queue.purge(status, kind=kind, older_than=seconds)
    finally:
        queue.close()
    if as_json:
        print_json({"purged": count, "status": status.value})
    else:
        console.print(f"deleted {count} {status.value} job(s)", highlight=False)
