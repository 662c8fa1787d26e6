"""``mosaic logs tail|query`` and ``mosaic summarize``: a user's agent logs and their summarization."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from mosaic_storage import redact

from ._memory import _usage_errors
from ._options import ConfigOption, JsonOption, UrlOption, open_named_store
from ._output import EXIT_USAGE, console, fail, handle_errors, print_json, print_json_line

logs_app = typer.Typer(help="Agent logs of a user: tail (and follow), query.", no_args_is_help=True)

UserOption = Annotated[str, typer.Option("--user", "-u", help="The user whose logs to read.")]
SessionOption = Annotated[str | None, typer.Option("--session", "-s", help="Only this session's logs.")]
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@contextlib.contextmanager
def _memory(config: Path | None, url: str | None) -> Iterator[Any]:
    from mosaic_memory import open_memory

    store = open_named_store(config, url)
    with store, open_memory(store) as memory:
        yield memory


def _when(value: str | None, option: str) -> dt.datetime | None:
    """``2h`` / ``30m`` / ``3d`` ago, or an ISO 8601 time (UTC when it names no zone)."""
    if value is None:
        return None
    match = _AGO.match(value.strip())
    if match:
        return dt.datetime.now(dt.UTC) - dt.timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"{option} takes an ISO time (2026-11-25T10:00) or an age (30m, 2h, 3d), got {value!r}",
            code=EXIT_USAGE,
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _line(entry: Any) -> str:
    category = f" {entry.category}:" if entry.category else ""
    stamp = entry.created_at.strftime("%Y-%m-%d %H:%M:%S")
    # Redacted like --json: a URL with a password an agent logged is not printed with it.
    return redact(f"{stamp} {entry.level.upper():<7} [{entry.session_id}]{category} {entry.content}")


def _dict(entry: Any) -> dict[str, Any]:
    from mosaic_memory import to_dict

    return to_dict(entry)


def _print_entries(entries: Any, as_json: bool) -> None:
    for entry in entries:
        if as_json:
            # One JSON object per line, so a follower can read them as they come.
            print_json_line(_dict(entry))
        else:
            console.print(_line(entry), highlight=False, markup=False, soft_wrap=True)


@logs_app.command("tail")
@handle_errors
@_usage_errors
def logs_tail(
    user: UserOption,
    session: SessionOption = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many of the last lines to show.")] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --follow.")] = 1.0,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a user's (or one session's) last log lines; --follow keeps printing new ones.

    With --json: one JSON object per line (JSON Lines).
    """
    with _memory(config, url) as memory:
        last = memory.logs.tail(user_id=user, session_id=session, limit=lines)
        _print_entries(last, as_json)
        if not follow:
            return
        cursor = last[-1].cursor if last else None
        try:
            while True:
                page = memory.logs.query(user_id=user, session_id=session, cursor=cursor, limit=1000)
                if cursor is None and not page.entries:
                    time.sleep(interval)
                    continue
                _print_entries(page.entries, as_json)
                if page.entries:
                    cursor = page.entries[-1].cursor
                if page.next_cursor is None:
                    time.sleep(interval)
        except KeyboardInterrupt:
            return


@logs_app.command("query")
@handle_errors
@_usage_errors
def logs_query(
    user: UserOption,
    session: SessionOption = None,
    since: Annotated[str | None, typer.Option(help="From this time on: ISO time or age (2h, 3d).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time: ISO time or age.")] = None,
    level: Annotated[list[str] | None, typer.Option("--level", help="Only this level (repeatable).")] = None,
    min_level: Annotated[str | None, typer.Option(help="This level or more severe.")] = None,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    tier: Annotated[str | None, typer.Option(help="hot, warm or cold.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many lines.")] = 100,
    cursor: Annotated[str | None, typer.Option(help="Read on from a previous page's next_cursor.")] = None,
    newest_first: Annotated[bool, typer.Option(help="Newest lines first.")] = False,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """One page of a user's logs, oldest first; --json prints {entries, next_cursor}."""
    with _memory(config, url) as memory:
        page = memory.logs.query(
            user_id=user,
            session_id=session,
            since=_when(since, "--since"),
            until=_when(until, "--until"),
            levels=level or None,
            min_level=min_level,
            category=category,
            tier=tier,
            limit=limit,
            cursor=cursor,
            newest_first=newest_first,
        )
    if as_json:
        print_json({"entries": [_dict(e) for e in page.entries], "next_cursor": page.next_cursor})
        return
    _print_entries(page.entries, False)
    if page.next_cursor:
        console.print(f"-- more: --cursor {page.next_cursor}", highlight=False, markup=False)


@handle_errors
@_usage_errors
def summarize(
    now: Annotated[
        bool, typer.Option("--now", help="Run the summarization now (else: show when it runs).")
    ] = False,
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule",
            help="Queue the next cron run for `mosaic worker --import mosaic_memory.jobs` (once).",
        ),
    ] = False,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user.")] = None,
    older_than_hours: Annotated[
        float | None, typer.Option(help="Logs older than this (default: memory.summarization).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Logs per summarizer call.")] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Summarize old agent logs into insights (offline extractive summarizer), or show the schedule."""
    from mosaic_memory import next_scheduled_run, summarize_logs

    if schedule:
        import mosaic_storage as ms
        from mosaic_memory.jobs import schedule_summarization

        queued = schedule_summarization(ms.load_config(config))
        if as_json:
            print_json(
                {"kind": queued.kind, "run_at": queued.run_at.isoformat(), "dedupe_key": queued.dedupe_key}
            )
        else:
            console.print(f"queued {queued.kind} for {queued.run_at.isoformat()}", highlight=False)
        return
    if not now:
        import mosaic_storage as ms

        settings = ms.load_config(config)
        run = next_scheduled_run(settings)
        cron = settings.memory.summarization.schedule
        if as_json:
            print_json({"schedule": cron, "next_run": run.run_at.isoformat(), "kind": run.kind})
            return
        console.print(f"schedule {cron!r} (UTC): next run {run.run_at.isoformat()}", highlight=False)
        console.print("run it now with `mosaic summarize --now`", highlight=False)
        return
    with _memory(config, url) as memory:
        report = summarize_logs(
            memory,
            user_id=user,
            older_than=dt.timedelta(hours=older_than_hours) if older_than_hours is not None else None,
            batch_size=batch_size,
        )
    if as_json:
        from mosaic_memory import to_dict

        print_json(
            {
                "logs_processed": report.logs_processed,
                "insights_created": report.insights_created,
                "users": [to_dict(u) for u in report.users],
            }
        )
    else:
        for item in report.users:
            extra = f": {item.error}" if item.error else ""
            console.print(
                f"{item.user_id}: {item.status}, {item.logs_processed} logs, "
                f"{item.insights_created} new insights{extra}",
                highlight=False,
                markup=False,
            )
        console.print(
            f"{len(report.users)} users, {report.logs_processed} logs, "
            f"{report.insights_created} new insights",
            highlight=False,
        )
    if report.failed:
        raise typer.Exit(1)
