"""The two files of a mission as code: ``MISSION-MANIFEST.md`` and ``TASKS.md``.

Rendering and parsing only; nothing here touches the store. Parsing collects every problem
with its file and line before anything is applied, so a bad edit is reported in full.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from mosaic_storage.brain import Mission, Task
from mosaic_storage.schema import MISSION_STATUSES, TASK_PRIORITIES, TASK_STATUSES

MANIFEST_FILE = "MISSION-MANIFEST.md"
TASKS_FILE = "TASKS.md"

#: The columns of the tasks table, in file order. ``version`` is the task's version when it
#: was exported: the import uses it to notice a task that changed in the store meanwhile.
TASK_COLUMNS = ("id", "title", "status", "priority", "assignee", "depends on", "notes", "version")
_REQUIRED_COLUMNS = ("id", "title")
MANIFEST_FIELDS = ("id", "version", "title", "status", "project")
_EMPTY = ("", "-")


@attrs.frozen
class Problem:
    """One thing wrong with a mission file, at a line a person can go to."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@attrs.frozen
class ManifestFile:
    """What ``MISSION-MANIFEST.md`` says."""

    id: str
    version: int
    title: str
    status: str
    project_id: str | None
    goal: str | None
    milestones: tuple[Any, ...]
    #: The line of the ``project`` row (1 when the file has none), for problems about it.
    project_line: int = 1


@attrs.frozen
class TaskRow:
    """One row of ``TASKS.md``; ``id`` is ``None`` for a new task, ``version`` then too."""

    line: int
    id: str | None
    title: str
    status: str
    priority: str
    assignee_id: str | None
    depends_on: tuple[str, ...]
    notes: str | None
    version: int | None


# --- rendering ------------------------------------------------------------------------------


def _cell(value: str | None) -> str:
    """``value`` as one table cell that `_split_row` + `_uncell` read back exactly.

    ``None`` is ``-`` and ``""`` an empty cell, so a literal ``-`` is written ``\\-``. Escaped:
    ``\\``, ``|``, a literal ``<br>`` (``\\<br>``), ``\\r``; line breaks become ``<br>``; a
    whitespace character at either end gets a backslash, since a cell's padding is stripped.
    """
    if value is None:
        return "-"
    if value == "-":
        return "\\-"
    text = value.replace("\\", "\\\\").replace("|", "\\|").replace("<br>", "\\<br>")
    text = text.replace("\r", "\\r").replace("\n", "<br>")
    if text[:1].isspace():
        text = "\\" + text
    if text[-1:].isspace() and not (len(text) == 2 and text[0] == "\\"):
        text = text[:-1] + "\\" + text[-1]
    return text


_UNESCAPE = re.compile(r"\\(.)|<br>", re.DOTALL)


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    if char is None:
        return "\n"
    return "\r" if char == "r" else char


def _uncell(text: str) -> str:
    """What `_cell` wrote (one pass, so an escaped ``<br>`` stays text)."""
    return _UNESCAPE.sub(_unescape, text)


def _plain(name: str) -> bool:
    # A name the list item reads back as written; anything else is written as json.
    return bool(name) and name.strip() == name and "\n" not in name and "\r" not in name


def _milestone_line(item: Any) -> str:
    if isinstance(item, str) and _plain(item) and not item.startswith(("[", "json:")):
        return f"- {item}"
    if isinstance(item, dict) and set(item) == {"name", "done"} and isinstance(item["name"], str):
        title, done = item["name"], item["done"]
        if _plain(title) and isinstance(done, bool):
            return f"- [{'x' if done else ' '}] {title}"
    return f"- json: {json.dumps(item)}"


def _lines(text: str) -> list[str]:
    # Not str.splitlines: it also splits at U+2028, U+0085 and other characters a cell may hold.
    return text.replace("\r\n", "\n").split("\n")


def _goal_line(line: str) -> str:
    # A goal line that would read as a heading is escaped; the parser takes the backslash off.
    return "\\" + line if line.lstrip().startswith(("#", "\\")) else line


def render_manifest(mission: Mission) -> str:
    """``MISSION-MANIFEST.md`` for ``mission``."""
    rows = [
        ("id", mission.id),
        ("version", str(mission.version)),
        ("title", mission.title),
        ("status", mission.status),
        ("project", mission.project_id),
    ]
    lines = [
        "# Mission manifest",
        "",
        "Edit the values, the goal and the milestones, then run `mosaic mission import`.",
        "Keep `id` and `version`: they tell the import which mission this is and what you started from.",
        "",
        "| field | value |",
        "| --- | --- |",
        *(f"| {key} | {_cell(value)} |" for key, value in rows),
        "",
        "## Goal",
        "",
        *(_goal_line(line) for line in (_lines(mission.goal) if mission.goal else [])),
        "",
        "## Milestones",
        "",
        *(_milestone_line(item) for item in mission.milestones),
        "",
    ]
    return "\n".join(lines)


def render_tasks(mission: Mission, tasks: Iterable[Task], depends_on: Mapping[str, Sequence[str]]) -> str:
    """``TASKS.md``: one table row per task of ``mission``."""
    lines = [
        f"# Tasks of {_cell(mission.title)}",
        "",
        "Edit cells, or add a row with an empty id for a new task; then run `mosaic mission import`.",
        f"status: {', '.join(TASK_STATUSES)}. priority: {', '.join(TASK_PRIORITIES)}.",
        "depends on: task ids, separated by commas. Rows you delete are left alone in the store.",
        "",
        "| " + " | ".join(TASK_COLUMNS) + " |",
        "|" + "|".join(" --- " for _ in TASK_COLUMNS) + "|",
    ]
    for task in tasks:
        cells = [
            task.id,
            _cell(task.title),
            task.status,
            task.priority,
            _cell(task.assignee_id),
            ", ".join(depends_on.get(task.id, ())) or "-",
            _cell(task.description),
            str(task.version),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


# --- parsing --------------------------------------------------------------------------------


def _split_row(line: str) -> list[str] | None:
    """The cells of a Markdown table row, or ``None`` if ``line`` is not one."""
    stripped = line.strip()
    if not stripped.startswith("|"):
        return None
    cells: list[str] = []
    current: list[str] = []
    escaped = False
    for char in stripped[1:]:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            cells.append(_trim(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    rest = _trim(current)
    if rest:  # no closing pipe
        cells.append(rest)
    return cells


def _trim(tokens: list[str]) -> str:
    """A cell's text without its padding: unescaped whitespace at either end (``\\ `` stays)."""
    start, end = 0, len(tokens)
    while start < end and tokens[start].isspace():
        start += 1
    while end > start and tokens[end - 1].isspace():
        end -= 1
    return "".join(tokens[start:end])


def _is_separator(cells: Sequence[str]) -> bool:
    return bool(cells) and all(re.fullmatch(r":?-{3,}:?", cell) for cell in cells)


def _optional(text: str, *, empty: str | None = None) -> str | None:
    """A cell that may be unset: ``-`` is ``None``, an empty cell ``empty``, ``\\-`` a literal ``-``."""
    if text == "-":
        return None
    return empty if text == "" else _uncell(text)


def _version(text: str, problems: list[Problem], file: str, line: int) -> int | None:
    if text.strip() in _EMPTY:
        return None
    if not re.fullmatch(r"[1-9][0-9]{0,9}", text.strip()):
        problems.append(Problem(file, line, f"version {text.strip()!r} is not a positive whole number"))
        return None
    return int(text.strip())


def parse_tasks(text: str, *, file: str = TASKS_FILE) -> tuple[list[TaskRow], list[Problem]]:
    """The rows of ``TASKS.md`` and every problem found in it."""
    problems: list[Problem] = []
    rows: list[TaskRow] = []
    header: list[str] | None = None
    seen: dict[str, int] = {}
    for number, line in enumerate(_lines(text), start=1):
        cells = _split_row(line)
        if cells is None:
            if header is not None and line.strip():
                header = None  # a table ends at the first non-table line
            continue
        if header is None:
            header = [cell.lower() for cell in cells]
            unknown = [c for c in header if c not in TASK_COLUMNS]
            if unknown:
                problems.append(
                    Problem(
                        file,
                        number,
                        f"unknown column(s) {', '.join(map(repr, unknown))}; "
                        f"the columns are: {', '.join(TASK_COLUMNS)}",
                    )
                )
            missing = [c for c in _REQUIRED_COLUMNS if c not in header]
            if missing:
                problems.append(Problem(file, number, f"missing column(s): {', '.join(missing)}"))
            continue
        if _is_separator(cells):
            continue
        if len(cells) != len(header):
            problems.append(
                Problem(file, number, f"this row has {len(cells)} cells; the header has {len(header)}")
            )
            continue
        row = _task_row(dict(zip(header, cells, strict=True)), problems, file, number)
        if row is None:
            continue
        if row.id is not None:
            if row.id in seen:
                problems.append(
                    Problem(file, number, f"task {row.id} is listed twice (also line {seen[row.id]})")
                )
                continue
            seen[row.id] = number
        rows.append(row)
    return rows, problems


def _task_row(cells: dict[str, str], problems: list[Problem], file: str, line: int) -> TaskRow | None:
    before = len(problems)
    task_id = _optional(cells.get("id", ""))
    title = _uncell(cells.get("title", ""))
    if not title.strip():
        problems.append(Problem(file, line, "the title is empty"))
    status = cells.get("status", "").strip() or "not_started"
    if status not in TASK_STATUSES:
        problems.append(Problem(file, line, f"status {status!r} is not one of: {', '.join(TASK_STATUSES)}"))
    priority = cells.get("priority", "").strip() or "medium"
    if priority not in TASK_PRIORITIES:
        problems.append(
            Problem(file, line, f"priority {priority!r} is not one of: {', '.join(TASK_PRIORITIES)}")
        )
    depends = tuple(d.strip() for d in cells.get("depends on", "").split(",") if d.strip() not in _EMPTY)
    version = _version(cells.get("version", ""), problems, file, line)
    if task_id is not None and version is None and "version" in cells and len(problems) == before:
        problems.append(Problem(file, line, f"task {task_id} has no version; export again to get it"))
    if task_id is None and version is not None:
        problems.append(Problem(file, line, "a new task (no id) cannot have a version"))
    if task_id is not None and task_id in depends:
        problems.append(Problem(file, line, f"task {task_id} cannot depend on itself"))
    if len(problems) != before:
        return None
    return TaskRow(
        line=line,
        id=task_id,
        title=title,
        status=status,
        priority=priority,
        assignee_id=_optional(cells.get("assignee", "")),
        depends_on=depends,
        notes=_optional(cells.get("notes", "-"), empty=""),
        version=version,
    )


def _parse_milestone(text: str) -> Any:
    box = re.fullmatch(r"\[([ xX])\]\s+(.*)", text)
    if box:
        return {"name": box.group(2).strip(), "done": box.group(1) != " "}
    if text.startswith("json:"):
        return json.loads(text[5:])
    return text


def parse_manifest(text: str, *, file: str = MANIFEST_FILE) -> tuple[ManifestFile | None, list[Problem]]:
    """What ``MISSION-MANIFEST.md`` says, and every problem found in it."""
    problems: list[Problem] = []
    fields: dict[str, tuple[str, int]] = {}
    goal: list[str] = []
    milestones: list[Any] = []
    section = ""
    for number, line in enumerate(_lines(text), start=1):
        heading = re.fullmatch(r"##\s+(.*)", line.strip())
        if heading:
            section = heading.group(1).strip().lower()
            if section not in ("goal", "milestones"):
                problems.append(
                    Problem(
                        file,
                        number,
                        f"unknown section {heading.group(1)!r}; the sections are Goal, Milestones",
                    )
                )
            continue
        if section == "goal":
            goal.append(line.replace("\\", "", 1) if line.lstrip().startswith("\\") else line)
        elif section == "milestones":
            item = re.fullmatch(r"\s*[-*]\s+(.*)", line)
            if item:
                try:
                    milestones.append(_parse_milestone(item.group(1).strip()))
                except json.JSONDecodeError:
                    problems.append(Problem(file, number, "this milestone's json: value is not valid JSON"))
            elif line.strip():
                problems.append(Problem(file, number, "a milestone is a list item: start the line with '- '"))
        else:
            cells = _split_row(line)
            if cells is None or _is_separator(cells) or cells[:2] == ["field", "value"]:
                continue
            if len(cells) != 2:
                problems.append(Problem(file, number, "a field row has two cells: | field | value |"))
            elif cells[0] not in MANIFEST_FIELDS:
                problems.append(
                    Problem(
                        file,
                        number,
                        f"unknown field {cells[0]!r}; the fields are: {', '.join(MANIFEST_FIELDS)}",
                    )
                )
            else:
                fields[cells[0]] = (cells[1], number)
    for name in ("id", "version", "title", "status"):
        if name not in fields:
            problems.append(Problem(file, 1, f"the field table has no {name!r} row"))
    if problems:
        return None, problems
    status, status_line = fields["status"]
    if status not in MISSION_STATUSES:
        problems.append(
            Problem(file, status_line, f"status {status!r} is not one of: {', '.join(MISSION_STATUSES)}")
        )
    version = _version(fields["version"][0], problems, file, fields["version"][1])
    title = _uncell(fields["title"][0])
    if not title.strip():
        problems.append(Problem(file, fields["title"][1], "the title is empty"))
    mission_id = _optional(fields["id"][0])
    if mission_id is None:
        problems.append(
            Problem(file, fields["id"][1], "the id is empty; import only updates exported missions")
        )
    if problems or version is None or mission_id is None:
        return None, problems or [Problem(file, fields["version"][1], "the version is empty")]
    # The blank lines around the goal are the file's; the goal's own indentation is kept.
    while goal and not goal[0].strip():
        goal.pop(0)
    while goal and not goal[-1].strip():
        goal.pop()
    goal_text = "\n".join(goal)
    project = fields.get("project")
    return (
        ManifestFile(
            id=mission_id,
            version=version,
            title=title,
            status=status,
            project_id=_optional(project[0]) if project else None,
            goal=goal_text or None,
            milestones=tuple(milestones),
            project_line=project[1] if project else 1,
        ),
        [],
    )
