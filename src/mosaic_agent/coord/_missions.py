"""Missions as code: start a mission, pick the next task, and round-trip a mission through Markdown."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from mosaic_storage import MosaicError
from mosaic_storage.brain import Brain, ConflictError, Mission, NotFound, Task
from mosaic_storage.schema import TASK_PRIORITIES

from ._markdown import (
    MANIFEST_FILE,
    TASKS_FILE,
    ManifestFile,
    Problem,
    TaskRow,
    parse_manifest,
    parse_tasks,
    render_manifest,
    render_tasks,
)

#: The milestones `init_mission` gives a mission when none are named.
DEFAULT_MILESTONES = ("Plan", "Build", "Verify", "Ship")
_PRIORITY_RANK = {name: rank for rank, name in enumerate(TASK_PRIORITIES)}
_OPEN = ("not_started", "in_progress", "blocked")


class MissionFormatError(MosaicError, ValueError):
    """A mission file cannot be read as written; ``problems`` lists each with its file and line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        listed = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in the mission files; nothing was imported:\n{listed}",
            remediation="fix the lines named above and import again",
        )


@attrs.frozen
class Conflict:
    """A task or mission changed in the store since the files were exported, and differs from them."""

    file: str
    line: int
    record: str
    id: str
    exported_version: int
    current_version: int
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.record} {self.id} changed in the store since export "
            f"(version {self.exported_version} in the file, {self.current_version} now); "
            f"differs in: {', '.join(self.fields)}"
        )


class MissionConflictError(ConflictError):
    """Some records changed in the store since export; ``conflicts`` lists them. Nothing was imported."""

    def __init__(self, conflicts: Sequence[Conflict], *, detail: str | None = None) -> None:
        self.conflicts = tuple(conflicts)
        listed = "\n".join(f"  {c}" for c in self.conflicts) or f"  {detail}"
        count = len(self.conflicts) or 1
        super().__init__(
            f"{count} conflict(s) with changes made in the store; nothing was imported:\n{listed}",
            remediation="export again (`mosaic mission export`) and redo your edits on the new files",
        )


@attrs.frozen
class ImportReport:
    """What an import changed (or, with ``dry_run``, would change)."""

    mission_id: str
    dry_run: bool
    mission_updated: bool
    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    dependencies_added: int
    dependencies_removed: int
    not_in_file: tuple[str, ...]


def init_mission(
    brain: Brain,
    actor: str,
    goal: str,
    *,
    title: str | None = None,
    project_id: str | None = None,
    milestones: Sequence[str] | None = None,
) -> Mission:
    """Start an ``active`` mission toward ``goal``, with milestones (default: `DEFAULT_MILESTONES`).

    The title defaults to the goal's first line, cut to 80 characters.
    """
    goal = goal.strip()
    if not goal:
        raise MissionFormatError([Problem("goal", 1, "the goal is empty: say what the mission is for")])
    if title is None:
        first = goal.splitlines()[0]
        title = first if len(first) <= 80 else first[:79] + "…"
    names = DEFAULT_MILESTONES if milestones is None else tuple(milestones)
    return brain.missions.create(
        actor,
        title=title,
        project_id=project_id,
        goal=goal,
        status="active",
        milestones=[{"name": name, "done": False} for name in names],
    )


def _all_tasks(brain: Brain, actor: str, **filters: Any) -> Iterator[Task]:
    cursor: str | None = None
    while True:
        page = brain.tasks.list(actor, cursor=cursor, limit=500, **filters)
        yield from page
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _dependency_ids(brain: Brain, actor: str, tasks: Sequence[Task]) -> dict[str, tuple[str, ...]]:
    return {task.id: tuple(dep.id for dep in brain.tasks.dependencies(actor, task.id)) for task in tasks}


def next_task(
    brain: Brain,
    actor: str,
    *,
    mission_id: str | None = None,
    project_id: str | None = None,
    assignee_id: str | None = None,
) -> Task | None:
    """The task to start next: ``not_started``, every dependency ``done``; highest priority first,
    then the earliest due date, then the oldest. With ``assignee_id``, only tasks assigned to
    that user or to nobody. ``None`` when nothing is ready.
    """
    tasks = list(_all_tasks(brain, actor, mission_id=mission_id, project_id=project_id, status="not_started"))
    if assignee_id is not None:
        tasks = [t for t in tasks if t.assignee_id in (None, assignee_id)]
    ready = [t for t in tasks if all(dep.status == "done" for dep in brain.tasks.dependencies(actor, t.id))]
    if not ready:
        return None
    far = "9999"
    return min(
        ready,
        key=lambda t: (-_PRIORITY_RANK[t.priority], t.due_at.isoformat() if t.due_at else far, t.id),
    )


def complete_task(brain: Brain, actor: str, task_id: str, *, version: int | None = None) -> Task:
    """Mark a task ``done`` (at ``version`` if given, else at its current version)."""
    task = brain.tasks.get(actor, task_id)
    return brain.tasks.update(actor, task_id, version=version or task.version, status="done")


def _write_atomically(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def export_mission(brain: Brain, actor: str, mission_id: str, directory: str | Path) -> tuple[Path, Path]:
    """Write ``MISSION-MANIFEST.md`` and ``TASKS.md`` for a mission into ``directory``.

    Returns the two paths. Each file is replaced atomically.
    """
    mission = brain.missions.get(actor, mission_id)
    tasks = list(_all_tasks(brain, actor, mission_id=mission_id))
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    manifest, table = folder / MANIFEST_FILE, folder / TASKS_FILE
    _write_atomically(manifest, render_manifest(mission))
    _write_atomically(table, render_tasks(mission, tasks, _dependency_ids(brain, actor, tasks)))
    return manifest, table


def _read(path: Path) -> str:
    try:
        # newline="": a "\r" inside a value is kept (only "\r\n" line ends are normalised).
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        raise MissionFormatError(
            [Problem(path.name, 0, f"{path} does not exist; export the mission first")]
        ) from None
    except UnicodeDecodeError:
        raise MissionFormatError([Problem(path.name, 0, "the file is not UTF-8 text")]) from None


def _can_see(brain: Brain, actor: str, task_id: str) -> bool:
    try:
        brain.tasks.get(actor, task_id)
    except NotFound:
        return False
    return True


def _mission_changes(current: Mission, manifest: ManifestFile) -> dict[str, Any]:
    wanted = {
        "title": manifest.title,
        "status": manifest.status,
        "goal": manifest.goal,
        "milestones": manifest.milestones,
    }
    have = {
        "title": current.title,
        "status": current.status,
        "goal": current.goal,
        "milestones": current.milestones,
    }
    return {k: v for k, v in wanted.items() if have[k] != v}


def _task_changes(current: Task, row: TaskRow) -> dict[str, Any]:
    wanted = {
        "title": row.title,
        "status": row.status,
        "priority": row.priority,
        "assignee_id": row.assignee_id,
        "description": row.notes,
    }
    return {k: v for k, v in wanted.items() if getattr(current, k) != v}


def import_mission(
    brain: Brain, actor: str, directory: str | Path, *, dry_run: bool = False, rewrite: bool = True
) -> ImportReport:
    """Apply hand edits of ``MISSION-MANIFEST.md`` and ``TASKS.md`` to the store, all or nothing.

    Rows with an id update that task; rows without one create a task in the mission. Tasks of
    the mission missing from the file are left as they are (listed in ``not_in_file``).
    Dependencies are set to what the ``depends on`` column lists (any task ``actor`` can see,
    in this mission or another); all removals are applied before any addition. The mission's
    project cannot be changed here (a different ``project`` is reported as a problem).

    Raises:
        MissionFormatError: a file cannot be read as written (every problem, with file and line).
        MissionConflictError: a record changed in the store since export and differs from the
            file (every conflict). Nothing is written in either case.
    """
    folder = Path(directory)
    manifest, problems = parse_manifest(_read(folder / MANIFEST_FILE))
    rows, task_problems = parse_tasks(_read(folder / TASKS_FILE))
    problems += task_problems
    if manifest is None or problems:
        raise MissionFormatError(problems)
    mission = brain.missions.get(actor, manifest.id)
    current = {t.id: t for t in _all_tasks(brain, actor, mission_id=mission.id)}
    current_deps = _dependency_ids(brain, actor, list(current.values()))

    conflicts: list[Conflict] = []
    mission_changes = _mission_changes(mission, manifest)
    if mission_changes and mission.version != manifest.version:
        conflicts.append(
            Conflict(
                MANIFEST_FILE,
                1,
                "mission",
                mission.id,
                manifest.version,
                mission.version,
                tuple(mission_changes),
            )
        )
    if manifest.project_id != mission.project_id:
        problems.append(
            Problem(
                MANIFEST_FILE,
                manifest.project_line,
                f"project {manifest.project_id or '-'} is not the mission's project "
                f"({mission.project_id or '-'}): moving a mission between projects is not supported",
            )
        )
    visible: dict[str, bool] = {}
    for row in rows:
        for dep in row.depends_on:
            if dep not in current and not visible.setdefault(dep, _can_see(brain, actor, dep)):
                problems.append(
                    Problem(TASKS_FILE, row.line, f"depends on {dep}, which is not a task you can see")
                )
        if row.id is None:
            continue
        task = current.get(row.id)
        if task is None:
            problems.append(Problem(TASKS_FILE, row.line, f"task {row.id} is not a task of this mission"))
            continue
        changed = _task_changes(task, row)
        if set(row.depends_on) != set(current_deps[task.id]):
            changed["depends on"] = row.depends_on
        if changed and row.version != task.version:
            conflicts.append(
                Conflict(
                    TASKS_FILE, row.line, "task", task.id, row.version or 0, task.version, tuple(changed)
                )
            )
    if problems:
        raise MissionFormatError(problems)
    if conflicts:
        raise MissionConflictError(conflicts)

    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    added = removed = 0
    where = Problem(MANIFEST_FILE, 1, "")
    try:
        with brain.atomic():
            if mission_changes and not dry_run:
                mission = brain.missions.update(
                    actor, mission.id, version=manifest.version, **mission_changes
                )
            # Tasks first, then every removed dependency, then every added one: a file that
            # reverses a dependency is valid whatever the order of its rows.
            edges: list[tuple[TaskRow, str, set[str], set[str]]] = []
            for row in rows:
                where = Problem(TASKS_FILE, row.line, "")
                task = current.get(row.id) if row.id else None
                before = set(current_deps.get(row.id, ())) if row.id else set()
                after = set(row.depends_on)
                added += len(after - before)
                removed += len(before - after)
                if task is None:
                    if dry_run:
                        created.append(f"(new task, line {row.line})")
                        continue
                    task = brain.tasks.create(
                        actor,
                        title=row.title,
                        mission_id=mission.id,
                        status=row.status,
                        priority=row.priority,
                        assignee_id=row.assignee_id,
                        description=row.notes,
                    )
                    created.append(task.id)
                else:
                    changes = _task_changes(task, row)
                    if changes and not dry_run:
                        brain.tasks.update(actor, task.id, version=task.version, **changes)
                    (updated if changes or before != after else unchanged).append(task.id)
                edges.append((row, task.id, before, after))
            if not dry_run:
                for row, task_id, before, after in edges:
                    where = Problem(TASKS_FILE, row.line, "")
                    for dep in sorted(before - after):
                        brain.tasks.remove_dependency(actor, task_id, dep)
                for row, task_id, before, after in edges:
                    where = Problem(TASKS_FILE, row.line, "")
                    for dep in sorted(after - before):
                        brain.tasks.add_dependency(actor, task_id, dep)
    except MosaicError as err:
        # Nothing of the block was kept; say which line it was about.
        problem = Problem(where.file, where.line, err.message)
        if isinstance(err, ConflictError):
            raise MissionConflictError([], detail=str(problem)) from None
        raise MissionFormatError([problem]) from None
    listed = {row.id for row in rows}
    report = ImportReport(
        mission_id=mission.id,
        dry_run=dry_run,
        mission_updated=bool(mission_changes),
        created=tuple(created),
        updated=tuple(updated),
        unchanged=tuple(unchanged),
        dependencies_added=added,
        dependencies_removed=removed,
        not_in_file=tuple(task_id for task_id in current if task_id not in listed),
    )
    if rewrite and not dry_run:
        export_mission(brain, actor, mission.id, folder)
    return report
