"""Projects, missions and tasks: owned by a user or a team, read by members, changed by owners and admins."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from .._errors import ConflictError
from .._ids import new_id
from .._types import utcnow
from ..schema import MISSION_STATUSES, PROJECT_STATUSES, TASK_PRIORITIES, TASK_STATUSES
from ._access import (
    ACTOR,
    Id,
    missions,
    project_visible,
    project_writable,
    projects,
    task_dependencies,
    tasks,
    users,
    work_visible,
    work_writable,
)
from ._base import (
    DEFAULT_PAGE_SIZE,
    UNSET,
    Repository,
    changes,
    check_one_of,
    deny,
    exists,
    insert_owned,
    insert_where,
    keyset,
    not_found,
    record_columns,
    statement,
    versioned_delete,
    versioned_update,
)
from ._records import InvalidValue, Mission, Page, Project, Task, from_row

R = TypeVar("R")


class _Owned(Repository, Generic[R]):
    """get / update / delete / list shared by projects, missions and tasks."""

    _table: sa.Table
    _record: type[R]
    _what: str

    def _visible(self, actor: Id) -> Any:
        raise NotImplementedError

    def _writable(self, actor: Id) -> Any:
        raise NotImplementedError

    def get(self, actor: str, record_id: str) -> R:
        """The record, if ``actor`` may see it.

        Raises:
            NotFound: no such record, or not visible to ``actor``.
        """
        table = self._table
        query = statement(
            (type(self), "get"),
            lambda: sa.select(*record_columns(table, self._record)).where(
                table.c.id == sa.bindparam("id"), self._visible(ACTOR)
            ),
        )
        row = self._read(lambda conn: conn.execute(query, {"id": record_id, "actor": actor}).first())
        if row is None:
            raise not_found(self._what, record_id)
        return self._record(*row)

    def delete(self, actor: str, record_id: str, *, version: int) -> None:
        """Delete the record (and, by cascade, what it contains) if it is still at ``version``.

        Raises:
            NotFound: not visible to ``actor``.
            AccessDenied: visible but not changeable by ``actor``.
            ConflictError: it changed since ``version`` was read.
        """
        with self._begin() as conn:
            versioned_delete(
                conn,
                self._table,
                record_id,
                version=version,
                writable=self._writable(actor),
                visible=self._visible(actor),
                what=self._what,
            )

    def _update(self, actor: str, record_id: str, version: int, values: dict[str, Any]) -> R:
        with self._begin() as conn:
            row = versioned_update(
                conn,
                self._table,
                record_id,
                version=version,
                values=values,
                writable=self._writable(actor),
                visible=self._visible(actor),
                what=self._what,
            )
        return from_row(self._record, row)

    def _page(
        self,
        actor: str,
        filters: dict[str, Any],
        *,
        updated_since: dt.datetime | None,
        cursor: str | None,
        limit: int,
        project_id: str | None = None,
    ) -> Page[R]:
        params: dict[str, Any] = {name: value for name, value in filters.items() if value is not None}
        if updated_since is not None:
            params["updated_since"] = updated_since
        names = tuple(sorted(params))
        in_project = project_id is not None
        query = statement(
            (type(self), "page", names, in_project, cursor is not None),
            lambda: self._page_query(names, in_project=in_project, after=cursor is not None),
        )
        params["actor"] = actor
        if project_id is not None:
            params["project_id"] = project_id
        return self._read_page(query, params, self._record, cursor=cursor, limit=limit)

    def _page_query(self, names: Sequence[str], *, in_project: bool, after: bool) -> sa.Select[Any]:
        table = self._table
        visible = (
            work_visible(table, ACTOR, sa.bindparam("project_id")) if in_project else self._visible(ACTOR)
        )
        query = sa.select(*record_columns(table, self._record)).where(visible)
        for name in names:
            if name == "updated_since":
                query = query.where(table.c.updated_at >= sa.bindparam(name))
            elif name == "statuses":
                query = query.where(table.c.status.in_(sa.bindparam(name, expanding=True)))
            else:
                query = query.where(table.c[name] == sa.bindparam(name))
        return keyset(query, table.c.id, after=after)


def _statuses(status: str | Sequence[str] | None, allowed: Sequence[str]) -> dict[str, Any]:
    """The status filter of a list: ``status = :status`` for one, ``status IN :statuses`` for several."""
    if status is None:
        return {}
    wanted = [status] if isinstance(status, str) else list(dict.fromkeys(status))
    for value in wanted:
        check_one_of("status", value, allowed)
    return {"status": wanted[0]} if len(wanted) == 1 else {"statuses": wanted}


class Projects(_Owned[Project]):
    """Projects, each owned by one user or one team.

    Readers: the owner, or every member of the owning team. Writers: the owner, or the
    team's owners and admins.
    """

    _table = projects
    _record = Project
    _what = "project"

    def _visible(self, actor: Id) -> Any:
        return project_visible(actor)

    def _writable(self, actor: Id) -> Any:
        return project_writable(actor)

    def create(
        self,
        actor: str,
        *,
        name: str,
        team_id: str | None = None,
        description: str | None = None,
        status: str = "active",
        metadata: dict[str, Any] | None = None,
    ) -> Project:
        """Create a project owned by ``actor``, or by ``team_id`` (``actor`` must be its owner or admin).

        Raises:
            NotFound: the team is not visible to ``actor``, or ``actor`` is not a user.
            AccessDenied: ``actor`` is a plain member of the team.
            InvalidValue: a status not in ``PROJECT_STATUSES``.
        """
        check_one_of("status", status, PROJECT_STATUSES)
        now = utcnow()
        values = {
            "id": new_id(),
            "name": name,
            "description": description,
            "status": status,
            "owner_id": None if team_id else actor,
            "team_id": team_id,
            "metadata": dict(metadata or {}),
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        with self._begin() as conn:
            insert_owned(conn, projects, values, actor, team_id, "projects")
        return from_row(Project, values)

    def list(
        self,
        actor: str,
        *,
        team_id: str | None = None,
        status: str | Sequence[str] | None = None,
        updated_since: dt.datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[Project]:
        """The projects ``actor`` may see, oldest first, one keyset page at a time."""
        filters = {"team_id": team_id, **_statuses(status, PROJECT_STATUSES)}
        return self._page(actor, filters, updated_since=updated_since, cursor=cursor, limit=limit)

    def update(
        self,
        actor: str,
        project_id: str,
        *,
        version: int,
        name: str | Any = UNSET,
        description: str | Any | None = UNSET,
        status: str | Any = UNSET,
        metadata: dict[str, Any] | Any = UNSET,
    ) -> Project:
        """Change the given fields if the project is still at ``version``; returns it at ``version + 1``.

        Raises:
            NotFound: not visible to ``actor``.
            AccessDenied: visible but ``actor`` is a plain member of its team.
            ConflictError: it changed since ``version`` was read; nothing was written.
            InvalidValue: a status not in ``PROJECT_STATUSES``.
        """
        if status is not UNSET:
            check_one_of("status", status, PROJECT_STATUSES)
        values = changes(name=name, description=description, status=status, metadata=metadata)
        return self._update(actor, project_id, version, values)


def _place(conn: Any, actor: str, project_id: str | None) -> None:
    """Check that ``actor`` may create work in ``project_id``: `NotFound` or `AccessDenied`."""
    if project_id is not None and not exists(conn, projects, project_id, project_writable(actor)):
        raise deny(conn, projects, project_id, project_visible(actor), "project")


class Missions(_Owned[Mission]):
    """Missions: goals with milestones inside a project, with the project's readers and writers.

    A mission with no project is private to the user who created it.
    """

    _table = missions
    _record = Mission
    _what = "mission"

    def _visible(self, actor: Id) -> Any:
        return work_visible(missions, actor)

    def _writable(self, actor: Id) -> Any:
        return work_writable(missions, actor)

    def create(
        self,
        actor: str,
        *,
        title: str,
        project_id: str | None = None,
        goal: str | None = None,
        status: str = "planning",
        milestones: Sequence[Any] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Mission:
        """Create a mission in a project ``actor`` may change (or a private one, with no project).

        Raises:
            NotFound: the project is not visible to ``actor``.
            AccessDenied: ``actor`` may read the project but not change it.
        """
        check_one_of("status", status, MISSION_STATUSES)
        now = utcnow()
        values = {
            "id": new_id(),
            "project_id": project_id,
            "created_by": actor,
            "title": title,
            "goal": goal,
            "status": status,
            "milestones": list(milestones),
            "metadata": dict(metadata or {}),
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        with self._begin() as conn:
            if not insert_where(conn, missions, values, _may_create(actor, project_id)):
                _place(conn, actor, project_id)
                raise not_found("user", actor)
        return from_row(Mission, values)

    def list(
        self,
        actor: str,
        *,
        project_id: str | None = None,
        status: str | Sequence[str] | None = None,
        updated_since: dt.datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[Mission]:
        """The missions ``actor`` may see, oldest first, one keyset page at a time."""
        filters = _statuses(status, MISSION_STATUSES)
        return self._page(
            actor, filters, updated_since=updated_since, cursor=cursor, limit=limit, project_id=project_id
        )

    def update(
        self,
        actor: str,
        mission_id: str,
        *,
        version: int,
        title: str | Any = UNSET,
        goal: str | Any | None = UNSET,
        status: str | Any = UNSET,
        milestones: Sequence[Any] | Any = UNSET,
        metadata: dict[str, Any] | Any = UNSET,
    ) -> Mission:
        """Change the given fields if the mission is still at ``version``; returns it at ``version + 1``.

        Raises:
            NotFound: not visible to ``actor``.
            AccessDenied: visible but not changeable by ``actor``.
            ConflictError: it changed since ``version`` was read; nothing was written.
        """
        if status is not UNSET:
            check_one_of("status", status, MISSION_STATUSES)
        if milestones is not UNSET:
            milestones = list(milestones)
        values = changes(title=title, goal=goal, status=status, milestones=milestones, metadata=metadata)
        return self._update(actor, mission_id, version, values)


def _may_create(actor: str, project_id: str | None) -> Any:
    if project_id is None:
        return sa.exists().where(users.c.id == actor)
    return sa.exists().where(projects.c.id == project_id, project_writable(actor))


class Tasks(_Owned[Task]):
    """Tasks: status, priority, assignee, due date, tags and dependencies, with their project's rules.

    A task with no project is private to the user who created it. The assignee must be able
    to see the task's project.
    """

    _table = tasks
    _record = Task
    _what = "task"

    def _visible(self, actor: Id) -> Any:
        return work_visible(tasks, actor)

    def _writable(self, actor: Id) -> Any:
        return work_writable(tasks, actor)

    def create(
        self,
        actor: str,
        *,
        title: str,
        project_id: str | None = None,
        mission_id: str | None = None,
        description: str | None = None,
        status: str = "not_started",
        priority: str = "medium",
        assignee_id: str | None = None,
        due_at: dt.datetime | None = None,
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Task:
        """Create a task in a project ``actor`` may change; with a mission, in the mission's project.

        Raises:
            NotFound: the project or mission is not visible to ``actor``.
            AccessDenied: ``actor`` may read the project but not change it.
            InvalidValue: a bad status or priority, a mission of another project, or an
                assignee who cannot see the project.
        """
        check_one_of("status", status, TASK_STATUSES)
        check_one_of("priority", priority, TASK_PRIORITIES)
        now = utcnow()
        with self._begin() as conn:
            if mission_id is not None:
                mission_project = conn.execute(
                    sa.select(missions.c.project_id).where(
                        missions.c.id == mission_id, work_visible(missions, actor)
                    )
                ).first()
                if mission_project is None:
                    raise not_found("mission", mission_id)
                if project_id is not None and project_id != mission_project[0]:
                    raise InvalidValue(
                        f"mission {mission_id} belongs to another project",
                        remediation="leave project_id out to use the mission's project",
                    )
                project_id = mission_project[0]
            values = {
                "id": new_id(),
                "project_id": project_id,
                "mission_id": mission_id,
                "created_by": actor,
                "assignee_id": assignee_id,
                "title": title,
                "description": description,
                "status": status,
                "priority": priority,
                "due_at": due_at,
                "tags": list(tags),
                "metadata": dict(metadata or {}),
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
            if not insert_where(conn, tasks, values, _may_create(actor, project_id)):
                _place(conn, actor, project_id)
                raise not_found("user", actor)
            self._check_assignee(conn, actor, project_id, assignee_id)
        return from_row(Task, values)

    def list(
        self,
        actor: str,
        *,
        project_id: str | None = None,
        mission_id: str | None = None,
        status: str | Sequence[str] | None = None,
        assignee_id: str | None = None,
        updated_since: dt.datetime | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> Page[Task]:
        """The tasks ``actor`` may see, filtered, oldest first, one keyset page at a time."""
        filters = {**_statuses(status, TASK_STATUSES), "mission_id": mission_id, "assignee_id": assignee_id}
        return self._page(
            actor, filters, updated_since=updated_since, cursor=cursor, limit=limit, project_id=project_id
        )

    def update(
        self,
        actor: str,
        task_id: str,
        *,
        version: int,
        title: str | Any = UNSET,
        description: str | Any | None = UNSET,
        status: str | Any = UNSET,
        priority: str | Any = UNSET,
        assignee_id: str | Any | None = UNSET,
        due_at: dt.datetime | Any | None = UNSET,
        tags: Sequence[str] | Any = UNSET,
        metadata: dict[str, Any] | Any = UNSET,
    ) -> Task:
        """Change the given fields if the task is still at ``version``; returns it at ``version + 1``.

        Raises:
            NotFound: not visible to ``actor``.
            AccessDenied: visible but not changeable by ``actor``.
            ConflictError: it changed since ``version`` was read; nothing was written.
            InvalidValue: a bad status or priority, or an assignee who cannot see the project.
        """
        if status is not UNSET:
            check_one_of("status", status, TASK_STATUSES)
        if priority is not UNSET:
            check_one_of("priority", priority, TASK_PRIORITIES)
        if tags is not UNSET:
            tags = list(tags)
        values = changes(
            title=title,
            description=description,
            status=status,
            priority=priority,
            assignee_id=assignee_id,
            due_at=due_at,
            tags=tags,
            metadata=metadata,
        )
        with self._begin() as conn:
            row = versioned_update(
                conn,
                tasks,
                task_id,
                version=version,
                values=values,
                writable=self._writable(actor),
                visible=self._visible(actor),
                what="task",
            )
            if values.get("assignee_id") is not None:
                self._check_assignee(conn, actor, row["project_id"], values["assignee_id"])
        return from_row(Task, row)

    def _check_assignee(self, conn: Any, actor: str, project_id: str | None, assignee_id: str | None) -> None:
        # Raised inside the transaction, so the write it guards is rolled back.
        if assignee_id is None:
            return
        if project_id is None:
            allowed = assignee_id == actor
        else:
            allowed = exists(conn, projects, project_id, project_visible(assignee_id))
        if not allowed:
            raise InvalidValue(
                f"user {assignee_id} cannot see this task's project, so cannot be its assignee",
                remediation="add them to the project's team first, or assign someone who can see it",
            )

    def add_dependency(self, actor: str, task_id: str, depends_on_id: str) -> None:
        """Record that ``task_id`` cannot start before ``depends_on_id`` is done.

        ``actor`` must be able to change ``task_id`` and see ``depends_on_id``. A new dependency
        moves ``task_id`` to its next version, so an edit made from the old version is noticed.

        Raises:
            NotFound: either task is not visible to ``actor``.
            AccessDenied: ``actor`` may not change ``task_id``.
            ConflictError: the dependency would make a cycle.
        """
        with self._begin() as conn:
            if not exists(conn, tasks, depends_on_id, self._visible(actor)):
                raise not_found("task", depends_on_id)
            if not exists(conn, tasks, task_id, self._writable(actor)):
                raise deny(conn, tasks, task_id, self._visible(actor), "task")
            if task_id == depends_on_id or task_id in _reachable(conn, depends_on_id):
                raise ConflictError(
                    # No ids: the path may run through tasks the actor cannot see.
                    "this dependency would make a cycle of task dependencies",
                    remediation="remove the opposite dependency first",
                )
            existing = conn.execute(
                sa.select(task_dependencies.c.id).where(
                    task_dependencies.c.task_id == task_id, task_dependencies.c.depends_on_id == depends_on_id
                )
            ).first()
            if existing is None:
                conn.execute(
                    sa.insert(task_dependencies).values(
                        id=new_id(), task_id=task_id, depends_on_id=depends_on_id, created_at=utcnow()
                    )
                )
                _bump(conn, task_id)

    def remove_dependency(self, actor: str, task_id: str, depends_on_id: str) -> None:
        """Forget that ``task_id`` depends on ``depends_on_id`` (no error if it did not).

        Removing one moves ``task_id`` to its next version, like `add_dependency`.
        """
        with self._begin() as conn:
            if not exists(conn, tasks, task_id, self._writable(actor)):
                raise deny(conn, tasks, task_id, self._visible(actor), "task")
            gone = conn.execute(
                sa.delete(task_dependencies).where(
                    task_dependencies.c.task_id == task_id, task_dependencies.c.depends_on_id == depends_on_id
                )
            )
            if gone.rowcount:
                _bump(conn, task_id)

    def dependencies(self, actor: str, task_id: str) -> tuple[Task, ...]:
        """The tasks ``task_id`` directly depends on that ``actor`` may see, oldest first.

        Raises:
            NotFound: ``task_id`` is not visible to ``actor``.
        """

        def read(conn: Any) -> tuple[Task, ...] | None:
            if not exists(conn, tasks, task_id, self._visible(actor)):
                return None
            rows = conn.execute(
                sa.select(*record_columns(tasks, Task))
                .join(task_dependencies, task_dependencies.c.depends_on_id == tasks.c.id)
                .where(task_dependencies.c.task_id == task_id, self._visible(actor))
                .order_by(tasks.c.id)
            )
            return tuple(Task(*row) for row in rows)

        found = self._read(read)
        if found is None:
            raise not_found("task", task_id)
        return found


def _bump(conn: Any, task_id: str) -> None:
    """A task's dependencies are part of it: changing them moves it to its next version."""
    conn.execute(
        sa.update(tasks).where(tasks.c.id == task_id).values(version=tasks.c.version + 1, updated_at=utcnow())
    )


def _reachable(conn: Any, start: str) -> set[str]:
    """Every task ``start`` depends on, directly or not."""
    seen: set[str] = set()
    frontier = [start]
    while frontier:
        rows = conn.execute(
            sa.select(task_dependencies.c.depends_on_id).where(task_dependencies.c.task_id.in_(frontier))
        ).scalars()
        frontier = [dep for dep in rows if dep not in seen]
        seen.update(frontier)
    return seen
