"""Brain tools: list, show, add and update projects, missions and tasks, acting as the session's user.

The brain's own access rules apply: the model sees and changes exactly what its user may.
An update changes only the fields given (null or left out: unchanged) and needs the
``version`` last read, so a stale update is refused instead of overwriting someone's change.
"""

from __future__ import annotations

from typing import Any, Literal

from mosaic_storage.brain import UNSET, Brain, Page, to_dict

from ._registry import ToolError, ToolSet

# Mirrors of mosaic_storage.schema's TASK_STATUSES, TASK_PRIORITIES and MISSION_STATUSES
# (a test keeps them equal), spelled out so the model sees the allowed values in the schema.
TaskStatus = Literal["not_started", "in_progress", "blocked", "done", "cancelled"]
TaskPriority = Literal["low", "medium", "high", "critical"]
MissionStatus = Literal["planning", "active", "paused", "completed", "cancelled"]
MAX_LIMIT = 100


def _page(page: Page[Any], fields: tuple[str, ...]) -> dict[str, Any]:
    items = [{k: v for k, v in to_dict(item).items() if k in fields} for item in page]
    return {"items": items, "next_cursor": page.next_cursor}


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ToolError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _given(**fields: Any) -> dict[str, Any]:
    return {k: (UNSET if v is None else v) for k, v in fields.items()}


class BrainTools(ToolSet):
    """Tools over a `mosaic_storage.brain.Brain`, every call acting as ``actor``."""

    group = "brain"
    names = (
        "list_projects",
        "show_project",
        "add_project",
        "update_project",
        "list_missions",
        "show_mission",
        "add_mission",
        "update_mission",
        "list_tasks",
        "show_task",
        "add_task",
        "update_task",
    )

    def __init__(self, brain: Brain, actor: str) -> None:
        self.brain = brain
        self.actor = actor

    # -- projects ----------------------------------------------------------------------------

    def list_projects(
        self, status: str | None = None, cursor: str | None = None, limit: int = 20
    ) -> dict[str, Any]:
        """List the projects the user can see (their own and their teams'), oldest first.

        Args:
            status: only projects with this status, e.g. "active".
            cursor: the next_cursor of the previous page, to get the next one.
            limit: how many per page, 1 to 100.
        """
        page = self.brain.projects.list(self.actor, status=status, cursor=cursor, limit=_limit(limit))
        return _page(page, ("id", "name", "status", "team_id", "version"))

    def show_project(self, project_id: str) -> dict[str, Any]:
        """Show one project with all its fields.

        Args:
            project_id: the project's id.
        """
        return to_dict(self.brain.projects.get(self.actor, project_id))

    def add_project(
        self, name: str, description: str | None = None, team_id: str | None = None
    ) -> dict[str, Any]:
        """Create a project owned by the user, or by one of their teams.

        Args:
            name: the project's name.
            description: what it is about.
            team_id: a team the user owns or administers, to make it the team's project.
        """
        return to_dict(
            self.brain.projects.create(self.actor, name=name, description=description, team_id=team_id)
        )

    def update_project(
        self,
        project_id: str,
        version: int,
        name: str | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Change a project's fields; the ones left out stay as they are.

        Args:
            project_id: the project's id.
            version: the version last read (show_project); a newer one means someone changed it.
            name: a new name.
            description: a new description.
            status: a new status, e.g. "active" or "archived".
        """
        changed = _given(name=name, description=description, status=status)
        return to_dict(self.brain.projects.update(self.actor, project_id, version=version, **changed))

    # -- missions ----------------------------------------------------------------------------

    def list_missions(
        self,
        project_id: str | None = None,
        status: MissionStatus | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        """List the missions the user can see, oldest first.

        Args:
            project_id: only this project's missions.
            status: only missions with this status.
            cursor: the next_cursor of the previous page, to get the next one.
            limit: how many per page, 1 to 100.
        """
        page = self.brain.missions.list(
            self.actor, project_id=project_id, status=status, cursor=cursor, limit=_limit(limit)
        )
        return _page(page, ("id", "title", "status", "project_id", "version"))

    def show_mission(self, mission_id: str) -> dict[str, Any]:
        """Show one mission with its goal and milestones.

        Args:
            mission_id: the mission's id.
        """
        return to_dict(self.brain.missions.get(self.actor, mission_id))

    def add_mission(
        self,
        title: str,
        project_id: str | None = None,
        goal: str | None = None,
        status: MissionStatus = "planning",
        milestones: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a mission, in a project the user may change or private to the user.

        Args:
            title: the mission's title.
            project_id: the project it belongs to; private to the user when left out.
            goal: what done looks like.
            status: its starting status.
            milestones: the milestones, in order.
        """
        mission = self.brain.missions.create(
            self.actor,
            title=title,
            project_id=project_id,
            goal=goal,
            status=status,
            milestones=milestones or (),
        )
        return to_dict(mission)

    def update_mission(
        self,
        mission_id: str,
        version: int,
        title: str | None = None,
        goal: str | None = None,
        status: MissionStatus | None = None,
        milestones: list[str] | None = None,
    ) -> dict[str, Any]:
        """Change a mission's fields; the ones left out stay as they are.

        Args:
            mission_id: the mission's id.
            version: the version last read (show_mission).
            title: a new title.
            goal: a new goal.
            status: a new status.
            milestones: the new list of milestones (replaces the old one).
        """
        changed = _given(title=title, goal=goal, status=status, milestones=milestones)
        return to_dict(self.brain.missions.update(self.actor, mission_id, version=version, **changed))

    # -- tasks -------------------------------------------------------------------------------

    def list_tasks(
        self,
        project_id: str | None = None,
        mission_id: str | None = None,
        status: TaskStatus | None = None,
        assignee_id: str | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        """List the tasks the user can see, oldest first, optionally filtered.

        Args:
            project_id: only this project's tasks.
            mission_id: only this mission's tasks.
            status: only tasks with this status.
            assignee_id: only tasks assigned to this user.
            cursor: the next_cursor of the previous page, to get the next one.
            limit: how many per page, 1 to 100.
        """
        page = self.brain.tasks.list(
            self.actor,
            project_id=project_id,
            mission_id=mission_id,
            status=status,
            assignee_id=assignee_id,
            cursor=cursor,
            limit=_limit(limit),
        )
        return _page(page, ("id", "title", "status", "priority", "assignee_id", "project_id", "version"))

    def show_task(self, task_id: str) -> dict[str, Any]:
        """Show one task with all its fields.

        Args:
            task_id: the task's id.
        """
        return to_dict(self.brain.tasks.get(self.actor, task_id))

    def add_task(
        self,
        title: str,
        project_id: str | None = None,
        mission_id: str | None = None,
        description: str | None = None,
        priority: TaskPriority = "medium",
        assignee_id: str | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a task, in a project the user may change (or a mission's project), or private.

        Args:
            title: the task's title.
            project_id: the project it belongs to.
            mission_id: the mission it is part of (its project is used).
            description: details.
            priority: how urgent it is.
            assignee_id: who should do it (must be able to see the project).
            tags: labels.
        """
        task = self.brain.tasks.create(
            self.actor,
            title=title,
            project_id=project_id,
            mission_id=mission_id,
            description=description,
            priority=priority,
            assignee_id=assignee_id,
            tags=tags or (),
        )
        return to_dict(task)

    def update_task(
        self,
        task_id: str,
        version: int,
        title: str | None = None,
        description: str | None = None,
        status: TaskStatus | None = None,
        priority: TaskPriority | None = None,
        assignee_id: str | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Change a task's fields; the ones left out stay as they are.

        Args:
            task_id: the task's id.
            version: the version last read (show_task).
            title: a new title.
            description: a new description.
            status: a new status.
            priority: a new priority.
            assignee_id: a new assignee.
            tags: the new list of tags (replaces the old one).
        """
        changed = _given(
            title=title,
            description=description,
            status=status,
            priority=priority,
            assignee_id=assignee_id,
            tags=tags,
        )
        return to_dict(self.brain.tasks.update(self.actor, task_id, version=version, **changed))
