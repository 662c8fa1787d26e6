"""``mosaic project|mission|task``: list, show, add and update, acting as one user (``--user``)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from mosaic_storage import redact
from mosaic_storage.brain import UNSET, Brain, InvalidValue, Page, to_dict

from ._options import ConfigOption, JsonOption, UrlOption, open_named_store
from ._output import EXIT_USAGE, console, fail, handle_errors, print_json

P = ParamSpec("P")
R = TypeVar("R")

project_app = typer.Typer(help="Projects: owned by you or by a team.", no_args_is_help=True)
mission_app = typer.Typer(help="Missions: goals with milestones inside a project.", no_args_is_help=True)
task_app = typer.Typer(help="Tasks: status, priority, assignee, due date, tags.", no_args_is_help=True)

UserOption = Annotated[
    str,
    typer.Option("--user", "-u", envvar="MOSAIC_USER", help="Act as this user id (or set MOSAIC_USER)."),
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only records updated at or after this ISO 8601 time.")
]
LimitOption = Annotated[int, typer.Option("--limit", help="Page size (1-500).")]
CursorOption = Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page.")]
VersionOption = Annotated[
    int | None,
    typer.Option("--version", help="Update only if still at this version (default: the current one)."),
]


def _usage_errors(func: Callable[P, R]) -> Callable[P, R]:
    """A bad value (status, priority, time) is a usage error: exit 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except InvalidValue as err:
            fail(err.message, code=EXIT_USAGE, remediation=err.remediation)

    return wrapper


@contextmanager
def _brain(config: Path | None, url: str | None) -> Iterator[Brain]:
    store = open_named_store(config, url)
    with store:
        yield Brain(store)


def _when(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue(
            f"{value!r} is not an ISO 8601 time",
            remediation="write e.g. 2026-01-31 or 2026-01-31T09:00+01:00",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _given(value: Any) -> Any:
    return UNSET if value is None else value


def _cell(value: Any) -> str:
    """A value as shown to a person: redacted, and never read as rich markup."""
    return "" if value is None else escape(redact(str(value)))


def _show(record: Any, as_json: bool) -> None:
    data = to_dict(record)
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        console.print(f"[bold]{key:>12}[/]  {_cell(value)}", highlight=False)


def _list(page: Page[Any], columns: tuple[str, ...], as_json: bool) -> None:
    if as_json:
        print_json({"items": [to_dict(item) for item in page], "next_cursor": page.next_cursor})
        return
    table = Table(*columns)
    for item in page:
        data = to_dict(item)
        table.add_row(*(_cell(data[c]) for c in columns))
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


# --- projects --------------------------------------------------------------------------------


@project_app.command("list")
@handle_errors
@_usage_errors
def project_list(
    user: UserOption,
    team: Annotated[str | None, typer.Option(help="Only this team's projects.")] = None,
    status: Annotated[str | None, typer.Option(help="Only projects with this status.")] = None,
    since: SinceOption = None,
    limit: LimitOption = 50,
    cursor: CursorOption = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the projects you can see."""
    with _brain(config, url) as brain:
        page = brain.projects.list(
            user, team_id=team, status=status, updated_since=_when(since), cursor=cursor, limit=limit
        )
    _list(page, ("id", "name", "status", "team_id", "version"), as_json)


@project_app.command("show")
@handle_errors
@_usage_errors
def project_show(
    project_id: str,
    user: UserOption,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one project."""
    with _brain(config, url) as brain:
        _show(brain.projects.get(user, project_id), as_json)


@project_app.command("add")
@handle_errors
@_usage_errors
def project_add(
    name: str,
    user: UserOption,
    team: Annotated[str | None, typer.Option(help="Owned by this team (you must be owner or admin).")] = None,
    description: Annotated[str | None, typer.Option(help="What it is about.")] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project owned by you or by a team."""
    with _brain(config, url) as brain:
        _show(brain.projects.create(user, name=name, team_id=team, description=description), as_json)


@project_app.command("update")
@handle_errors
@_usage_errors
def project_update(
    project_id: str,
    user: UserOption,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    status: Annotated[str | None, typer.Option(help="New status.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    version: VersionOption = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a project; fails if someone changed it since --version."""
    with _brain(config, url) as brain:
        if version is None:
            version = brain.projects.get(user, project_id).version
        project = brain.projects.update(
            user,
            project_id,
            version=version,
            name=_given(name),
            status=_given(status),
            description=_given(description),
        )
    _show(project, as_json)


# --- missions --------------------------------------------------------------------------------


@mission_app.command("list")
@handle_errors
@_usage_errors
def mission_list(
    user: UserOption,
    project: Annotated[str | None, typer.Option(help="Only this project's missions.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses (repeatable).")] = None,
    since: SinceOption = None,
    limit: LimitOption = 50,
    cursor: CursorOption = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the missions you can see."""
    with _brain(config, url) as brain:
        page = brain.missions.list(
            user, project_id=project, status=status, updated_since=_when(since), cursor=cursor, limit=limit
        )
    _list(page, ("id", "title", "status", "project_id", "version"), as_json)


@mission_app.command("show")
@handle_errors
@_usage_errors
def mission_show(
    mission_id: str,
    user: UserOption,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one mission."""
    with _brain(config, url) as brain:
        _show(brain.missions.get(user, mission_id), as_json)


@mission_app.command("add")
@handle_errors
@_usage_errors
def mission_add(
    title: str,
    user: UserOption,
    project: Annotated[str | None, typer.Option(help="The project it belongs to.")] = None,
    goal: Annotated[str | None, typer.Option(help="What done looks like.")] = None,
    status: Annotated[
        str, typer.Option(help="planning, active, paused, completed or cancelled.")
    ] = "planning",
    milestone: Annotated[list[str] | None, typer.Option(help="A milestone name (repeatable).")] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a mission."""
    milestones = [{"name": name, "done": False} for name in milestone or []]
    with _brain(config, url) as brain:
        mission = brain.missions.create(
            user, title=title, project_id=project, goal=goal, status=status, milestones=milestones
        )
    _show(mission, as_json)


@mission_app.command("update")
@handle_errors
@_usage_errors
def mission_update(
    mission_id: str,
    user: UserOption,
    title: Annotated[str | None, typer.Option(help="New title.")] = None,
    goal: Annotated[str | None, typer.Option(help="New goal.")] = None,
    status: Annotated[str | None, typer.Option(help="New status.")] = None,
    version: VersionOption = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a mission; fails if someone changed it since --version."""
    with _brain(config, url) as brain:
        if version is None:
            version = brain.missions.get(user, mission_id).version
        mission = brain.missions.update(
            user, mission_id, version=version, title=_given(title), goal=_given(goal), status=_given(status)
        )
    _show(mission, as_json)


# --- tasks -----------------------------------------------------------------------------------


@task_app.command("list")
@handle_errors
@_usage_errors
def task_list(
    user: UserOption,
    project: Annotated[str | None, typer.Option(help="Only this project's tasks.")] = None,
    mission: Annotated[str | None, typer.Option(help="Only this mission's tasks.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses (repeatable).")] = None,
    assignee: Annotated[str | None, typer.Option(help="Only tasks assigned to this user.")] = None,
    since: SinceOption = None,
    limit: LimitOption = 50,
    cursor: CursorOption = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the tasks you can see, oldest first, one page at a time."""
    with _brain(config, url) as brain:
        page = brain.tasks.list(
            user,
            project_id=project,
            mission_id=mission,
            status=status,
            assignee_id=assignee,
            updated_since=_when(since),
            cursor=cursor,
            limit=limit,
        )
    _list(page, ("id", "title", "status", "priority", "assignee_id", "version"), as_json)


@task_app.command("show")
@handle_errors
@_usage_errors
def task_show(
    task_id: str,
    user: UserOption,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one task."""
    with _brain(config, url) as brain:
        _show(brain.tasks.get(user, task_id), as_json)


@task_app.command("add")
@handle_errors
@_usage_errors
def task_add(
    title: str,
    user: UserOption,
    project: Annotated[str | None, typer.Option(help="The project it belongs to.")] = None,
    mission: Annotated[str | None, typer.Option(help="The mission it belongs to.")] = None,
    description: Annotated[str | None, typer.Option(help="Details.")] = None,
    status: Annotated[
        str, typer.Option(help="not_started, in_progress, blocked, done, cancelled.")
    ] = "not_started",
    priority: Annotated[str, typer.Option(help="low, medium, high or critical.")] = "medium",
    assignee: Annotated[str | None, typer.Option(help="User id to assign.")] = None,
    due: Annotated[str | None, typer.Option(help="Due time, ISO 8601.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a task."""
    with _brain(config, url) as brain:
        task = brain.tasks.create(
            user,
            title=title,
            project_id=project,
            mission_id=mission,
            description=description,
            status=status,
            priority=priority,
            assignee_id=assignee,
            due_at=_when(due),
            tags=tag or [],
        )
    _show(task, as_json)


@task_app.command("update")
@handle_errors
@_usage_errors
def task_update(
    task_id: str,
    user: UserOption,
    title: Annotated[str | None, typer.Option(help="New title.")] = None,
    status: Annotated[str | None, typer.Option(help="New status.")] = None,
    priority: Annotated[str | None, typer.Option(help="New priority.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Assign to this user id.")] = None,
    unassign: Annotated[bool, typer.Option(help="Remove the assignee.")] = False,
    due: Annotated[str | None, typer.Option(help="New due time, ISO 8601.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Replace the tags (repeatable).")] = None,
    version: VersionOption = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a task; fails if someone changed it since --version."""
    if unassign and assignee:
        fail("--assignee and --unassign contradict each other", code=EXIT_USAGE)
    with _brain(config, url) as brain:
        if version is None:
            version = brain.tasks.get(user, task_id).version
        task = brain.tasks.update(
            user,
            task_id,
            version=version,
            title=_given(title),
            status=_given(status),
            priority=_given(priority),
            assignee_id=None if unassign else _given(assignee),
            due_at=_given(_when(due)),
            tags=_given(tag),
        )
    _show(task, as_json)
