"""Coordination: missions as code on top of the brain's missions and tasks.

Start a mission from a goal (`init_mission`), pick what to do next (`next_task`), finish a
task (`complete_task`), and round-trip a mission through two Markdown files a person can edit
or keep in git (`export_mission`, `import_mission`): ``MISSION-MANIFEST.md`` and ``TASKS.md``.
"""

from __future__ import annotations

from ._markdown import MANIFEST_FILE, TASK_COLUMNS, TASKS_FILE, Problem
from ._missions import (
    DEFAULT_MILESTONES,
    Conflict,
    ImportReport,
    MissionConflictError,
    MissionFormatError,
    complete_task,
    export_mission,
    import_mission,
    init_mission,
    next_task,
)

__all__ = [
    "DEFAULT_MILESTONES",
    "MANIFEST_FILE",
    "TASKS_FILE",
    "TASK_COLUMNS",
    "Conflict",
    "ImportReport",
    "MissionConflictError",
    "MissionFormatError",
    "Problem",
    "complete_task",
    "export_mission",
    "import_mission",
    "init_mission",
    "next_task",
]
