"""Workspace directories: ``users/<id>/`` or ``teams/<id>/`` under one root, for the agent sandbox."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ._access import in_team, users
from ._base import Repository, not_found
from ._records import InvalidValue

# Ids are UUIDs in practice; anything that could be a path component other than a plain
# name ("..", "a/b", "C:", "") is refused before it reaches the filesystem.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def workspace_path(root: str | Path, *, user_id: str | None = None, team_id: str | None = None) -> Path:
    """``root/users/<user_id>`` or ``root/teams/<team_id>``: no access check, only a safe path.

    Raises:
        InvalidValue: not exactly one of the two ids, or an id that is not a plain name (it
            could escape the root).
    """
    if (user_id is None) == (team_id is None):
        raise InvalidValue("give exactly one of user_id and team_id")
    kind, owner = ("users", user_id) if user_id is not None else ("teams", team_id)
    assert owner is not None
    if not _SAFE_ID.fullmatch(owner):
        raise InvalidValue(
            f"{owner!r} cannot name a workspace directory",
            remediation="ids are letters, digits, '-' and '_', starting with a letter or digit",
        )
    base = Path(root).resolve()
    path = (base / kind / owner).resolve()
    if not path.is_relative_to(base):  # a symlink inside the root pointing out of it
        raise InvalidValue(f"the workspace of {owner} would be outside {base}")
    return path


class Workspaces(Repository):
    """Where an owner's files live; ``actor`` gets their own workspace and their teams'."""

    def __init__(self, engine: Engine, root: str | Path) -> None:
        super().__init__(engine)
        self.root = Path(root)

    def path(self, actor: str, *, team_id: str | None = None, create: bool = False) -> Path:
        """``actor``'s workspace, or that of ``team_id`` if ``actor`` is a member.

        Raises:
            NotFound: ``actor`` is not a user, or not a member of the team.
            InvalidValue: an id that could escape the root.
        """
        if team_id is None:
            path = workspace_path(self.root, user_id=actor)
            rule: Any = sa.exists().where(users.c.id == actor)
            what, wanted = "user", actor
        else:
            path = workspace_path(self.root, team_id=team_id)
            rule = in_team(actor, team_id)
            what, wanted = "team", team_id
        query = sa.select(sa.literal(1)).where(rule)
        if self._read(lambda conn: conn.execute(query).first()) is None:
            raise not_found(what, wanted)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path
