"""``mosaic migrate-tier``: move a store up a tier; the work is `mosaic_storage.migrate.migrate_tier`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from mosaic_storage import redact

from ._output import EXIT_FAILURE, console, err_console, fail, handle_errors, print_json

if TYPE_CHECKING:
    from mosaic_storage.migrate import MigrationReport


def _rate(progress: Progress, task: TaskID) -> str:
    speed = progress.tasks[task].speed
    return f"{speed:,.0f} rows/s" if speed else ""


@handle_errors
def migrate_tier(
    from_url: Annotated[
        str, typer.Option("--from", help="Source store: sqlite:///FILE, embedded://DIR or postgresql://...")
    ],
    to_url: Annotated[
        str, typer.Option("--to", help="Target PostgreSQL: postgresql://... or embedded://DIR")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (tables, rows, batches); write nothing.")
    ] = False,
    init_target: Annotated[
        bool, typer.Option("--init-target", help="Create or upgrade the target schema (under the lock).")
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Rows per write transaction.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Copy every durable table into a bigger tier: locked, resumable, verified.

    Skips sessions, verifications and jobs (and search indexes).
    Run it again after any failure: rows already there are kept,
    never written twice. Exit code 1 when the target ends with
    fewer rows than the source, or rows conflict.
    """
    from mosaic_storage.migrate import DEFAULT_BATCH_SIZE, PostgresTarget, SqlAlchemySource
    from mosaic_storage.migrate import migrate_tier as run

    size = batch_size or DEFAULT_BATCH_SIZE
    with SqlAlchemySource(from_url) as source, PostgresTarget(to_url, create=not dry_run) as target:
        plan = run(source, target, dry_run=True, batch_size=size, init_target=init_target)
        if dry_run:
            _show(plan, as_json)
            return
        if not yes and not typer.confirm(
            f"Copy {plan.source_rows:,} rows from {source.description} into {target.description}?",
            err=True,
        ):
            raise typer.Exit(EXIT_FAILURE)
        with Progress(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>16}"),
            TimeRemainingColumn(),
            console=err_console,
            disable=as_json,
            transient=False,
        ) as progress:
            tasks: dict[str, TaskID] = {}

            def advance(table: str, done: int, total: int) -> None:
                if table not in tasks:
                    tasks[table] = progress.add_task(table, total=total or 1, rate="")
                task = tasks[table]
                progress.update(task, completed=done if total else 1)
                progress.update(task, rate=_rate(progress, task))

            report = run(source, target, batch_size=size, init_target=init_target, progress=advance)
    _show(report, as_json)
    if not report.ok:
        problems = []
        if report.short_tables:
            problems.append(f"the target has fewer rows than the source in {', '.join(report.short_tables)}")
        if report.conflicts:
            problems.append(f"{report.conflicts} rows exist on the target with other content (left alone)")
        fail(
            "; ".join(problems),
            remediation="see the report; run the same command again after fixing the cause",
        )


def _show(report: MigrationReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
        return
    title = "plan (dry run: nothing written)" if report.dry_run else "migrated"
    # Names and keys come from the source's data: printed as text, never as rich markup.
    console.print(
        redact(f"{report.source} -> {report.target}: {title}"), highlight=False, markup=False, soft_wrap=True
    )
    table = Table()
    for column in ("table", "source", "target before", "target after", "batches", "mode", "written"):
        table.add_column(column, justify="left" if column in ("table", "mode") else "right")
    table.add_column("existing / conflicts", justify="right")
    for item in report.tables:
        table.add_row(
            item.table,
            f"{item.source_rows:,}",
            "-" if item.target_rows_before is None else f"{item.target_rows_before:,}",
            "-" if item.target_rows is None or report.dry_run else f"{item.target_rows:,}",
            f"{item.batches:,}",
            item.mode or "",
            "-" if report.dry_run else f"{item.written:,}",
            "-" if report.dry_run else f"{item.existing:,} / {item.conflicts:,}",
        )
    console.print(table)
    console.print(f"schema: {report.schema}", highlight=False, markup=False)
    for skipped in report.skipped:
        rows = "" if skipped.rows is None else f" ({skipped.rows:,} rows)"
        line = redact(f"skipped {skipped.table}{rows}: {skipped.reason}")
        console.print(line, highlight=False, markup=False)
    for item in report.tables:
        if item.conflict_keys:
            keys = ", ".join(item.conflict_keys)
            console.print(redact(f"conflicts in {item.table}: {keys}"), highlight=False, markup=False)
    if not report.dry_run:
        console.print(f"{report.rows_written:,} rows written in {report.seconds:.1f}s")
