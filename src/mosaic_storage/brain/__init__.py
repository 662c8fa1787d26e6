"""The brain: typed repositories for users, teams, projects, missions, tasks, conversations and agents.

Every call acts as a user (``actor``) and applies the access rules inside its SQL: a user sees
their own records, their teams' records and system agents; owners and admins of a team change
its records. Records an actor may not see behave as missing (`NotFound`); writes to records an
actor may see but not change raise `AccessDenied`; a stale update raises `ConflictError`.
"""

from __future__ import annotations

from .._errors import AccessDenied, ConflictError
from ._agents import Agents
from ._base import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, UNSET
from ._brain import Brain
from ._conversations import Conversations
from ._records import (
    Agent,
    Conversation,
    InvalidValue,
    Membership,
    Message,
    Mission,
    NotFound,
    Page,
    Project,
    Task,
    Team,
    User,
    to_dict,
)
from ._teams import Teams, Users
from ._work import Missions, Projects, Tasks
from ._workspace import Workspaces, workspace_path

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "UNSET",
    "AccessDenied",
    "Agent",
    "Agents",
    "Brain",
    "ConflictError",
    "Conversation",
    "Conversations",
    "InvalidValue",
    "Membership",
    "Message",
    "Mission",
    "Missions",
    "NotFound",
    "Page",
    "Project",
    "Projects",
    "Task",
    "Tasks",
    "Team",
    "Teams",
    "User",
    "Users",
    "Workspaces",
    "to_dict",
    "workspace_path",
]
