"""`Brain`: the repositories over one store, each call acting as a user."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .._store import Store
from ._agents import Agents
from ._base import atomic
from ._conversations import Conversations
from ._teams import Teams, Users
from ._work import Missions, Projects, Tasks
from ._workspace import Workspaces


class Brain:
    """Typed repositories for users, teams, projects, missions, tasks, conversations and agents.

    Every call but sign-up (`Users.create`) and system set-up (`Agents.create_system`) takes
    the acting user's id as ``actor`` and applies the access rules inside its SQL. Records
    ``actor`` may not see behave exactly as missing ones: reads and writes raise `NotFound`.
    Writes to records ``actor`` may see but not change raise `AccessDenied`.

    Args:
        store: an open, migrated store (`mosaic_storage.upgrade`).
        workspace_root: the directory workspaces live under (default: ``workspaces`` in the
            Mosaic data directory).
    """

    def __init__(self, store: Store, *, workspace_root: str | Path | None = None) -> None:
        engine = store.engine
        if workspace_root is None:
            from .._config import default_data_dir

            workspace_root = default_data_dir() / "workspaces"
        self.store = store
        self.users = Users(engine)
        self.teams = Teams(engine)
        self.projects = Projects(engine)
        self.missions = Missions(engine)
        self.tasks = Tasks(engine)
        self.conversations = Conversations(engine)
        self.agents = Agents(engine)
        self.workspaces = Workspaces(engine, workspace_root)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Make every call inside the block one transaction: all of it is written, or none.

        ```python
        with brain.atomic():
            brain.tasks.update(actor, a.id, version=a.version, status="done")
            brain.tasks.update(actor, b.id, version=b.version, status="in_progress")
        ```

        If anything inside raises (a `ConflictError` from a stale version, say), nothing of
        the block is kept and the error propagates. Blocks do not nest, and an error caught
        inside the block does not make the rest of it safe to go on with.
        """
        with atomic(self.store.engine):
            yield
