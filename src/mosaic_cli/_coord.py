"""``mosaic mission init|export|import`` and ``mosaic task next|done``: missions as code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import attrs
import typer

from mosaic_agent.coord import (
    MissionConflictError,
    MissionFormatError,
    complete_task,
    export_mission,
    import_mission,
    init_mission,
    next_task,
)

from ._brain import UserOption, _brain, _cell, _show, _usage_errors, mission_app, task_app
from ._options import ConfigOption, JsonOption, UrlOption
from ._output import EXIT_FAILURE, console, handle_errors, print_json

DirOption = Annotated[
    Path, typer.Option("--dir", help="Where MISSION-MANIFEST.md and TASKS.md are (default: here).")
]


@mission_app.command("init")
@handle_errors
@_usage_errors
def mission_init(
    goal: str,
    user: UserOption,
    title: Annotated[str | None, typer.Option(help="Title (default: the goal's first line).")] = None,
    project: Annotated[str | None, typer.Option(help="The project it belongs to.")] = None,
    milestone: Annotated[
        list[str] | None, typer.Option(help="A milestone (repeatable; default: Plan, Build, Verify, Ship).")
    ] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start an active mission toward GOAL, with milestones."""
    with _brain(config, url) as brain:
        mission = init_mission(brain, user, goal, title=title, project_id=project, milestones=milestone)
    _show(mission, as_json)


@mission_app.command("export")
@handle_errors
def mission_export(
    mission_id: str,
    user: UserOption,
    directory: DirOption = Path("."),
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the mission to MISSION-MANIFEST.md and TASKS.md, to edit by hand or keep in git."""
    with _brain(config, url) as brain:
        paths = export_mission(brain, user, mission_id, directory)
    if as_json:
        print_json({"mission_id": mission_id, "files": [str(p) for p in paths]})
    else:
        console.print(f"wrote {_cell(paths[0])} and {_cell(paths[1])}", highlight=False)


@mission_app.command("import")
@handle_errors
def mission_import(
    user: UserOption,
    directory: DirOption = Path("."),
    dry_run: Annotated[bool, typer.Option(help="Check and report; write nothing.")] = False,
    rewrite: Annotated[
        bool, typer.Option(help="Export the files again after importing (new ids and versions).")
    ] = True,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply your edits of MISSION-MANIFEST.md and TASKS.md to the store: all of them, or none."""
    try:
        with _brain(config, url) as brain:
            report = import_mission(brain, user, directory, dry_run=dry_run, rewrite=rewrite)
    except (MissionConflictError, MissionFormatError) as err:
        if not as_json:
            raise
        problems = err.conflicts if isinstance(err, MissionConflictError) else err.problems
        print_json(
            {
                "error": "conflict" if isinstance(err, MissionConflictError) else "format",
                "message": err.message,
                "problems": [attrs.asdict(p) for p in problems],
            }
        )
        raise typer.Exit(EXIT_FAILURE) from None
    if as_json:
        print_json(attrs.asdict(report))
        return
    verb = "would change" if dry_run else "changed"
    console.print(
        f"{verb}: mission {'yes' if report.mission_updated else 'no'}, "
        f"{len(report.created)} task(s) created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged; dependencies +{report.dependencies_added} "
        f"-{report.dependencies_removed}",
        highlight=False,
    )
    if report.not_in_file:
        console.print(f"left alone (not in the file): {len(report.not_in_file)} task(s)", highlight=False)


@task_app.command("next")
@handle_errors
def task_next(
    user: UserOption,
    mission: Annotated[str | None, typer.Option(help="Only tasks of this mission.")] = None,
    project: Annotated[str | None, typer.Option(help="Only tasks of this project.")] = None,
    assignee: Annotated[
        str | None, typer.Option(help="Only tasks assigned to this user id or to nobody.")
    ] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The task to start next: not started, dependencies done, highest priority, earliest due."""
    with _brain(config, url) as brain:
        task = next_task(brain, user, mission_id=mission, project_id=project, assignee_id=assignee)
    if task is None:
        if as_json:
            print_json(None)
        else:
            console.print("nothing is ready: every open task waits on another, or none is left")
        return
    _show(task, as_json)


@task_app.command("done")
@handle_errors
def task_done(
    task_id: str,
    user: UserOption,
    version: Annotated[
        int | None, typer.Option("--version", help="Only if still at this version (default: current).")
    ] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark a task done."""
    with _brain(config, url) as brain:
        task = complete_task(brain, user, task_id, version=version)
    _show(task, as_json)
