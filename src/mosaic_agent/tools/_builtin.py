"""One call that builds a session's registry from the built-in tool sets."""

from __future__ import annotations

from mosaic_memory import MemoryStore
from mosaic_storage.brain import Brain, Workspaces

from ._brain_tools import BrainTools
from ._config import ToolsConfig
from ._memory_tools import MemoryTools
from ._registry import ToolRegistry
from ._sandbox import Workspace
from ._workspace_tools import WorkspaceTools


def builtin_tools(
    user_id: str,
    *,
    memory: MemoryStore | None = None,
    brain: Brain | None = None,
    workspace: Workspace | None = None,
    team_id: str | None = None,
    config: ToolsConfig | None = None,
) -> ToolRegistry:
    """A registry with the built-in tools for ``user_id``: memory, brain and workspace, as given.

    With ``brain`` and no ``workspace``, the workspace is the user's (or, with ``team_id``,
    the team's, if the user is a member) under ``config.workspace_root`` (default: the
    brain's root), created if missing. Filter what an agent may use with ``allowed=`` on
    `ToolRegistry.schemas` and `ToolRegistry.call`.

    Raises:
        NotFound: ``user_id`` is not a user, or not a member of ``team_id``.
    """
    config = config or ToolsConfig()
    registry = ToolRegistry(max_result_chars=config.max_result_chars)
    if memory is not None:
        registry.extend(MemoryTools(memory, user_id))
    if brain is not None:
        registry.extend(BrainTools(brain, user_id))
        if workspace is None:
            places = brain.workspaces
            if config.workspace_root is not None:
                places = Workspaces(brain.store.engine, config.workspace_root)
            workspace = Workspace(places.path(user_id, team_id=team_id, create=True), config=config)
    if workspace is not None:
        registry.extend(WorkspaceTools(workspace, config))
    return registry
