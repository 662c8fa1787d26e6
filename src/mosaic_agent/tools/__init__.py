"""Tools for agents: a registry of typed functions, built-in tool sets and the workspace sandbox.

Everything users may touch is listed in ``__all__``; other modules may change.
"""

from __future__ import annotations

from ._brain_tools import BrainTools
from ._builtin import builtin_tools
from ._config import DEFAULT_SHELL_ALLOW, ToolsConfig
from ._memory_tools import MemoryTools
from ._registry import Tool, ToolError, ToolRegistry, ToolResult, ToolSet, tool
from ._sandbox import SandboxError, Workspace
from ._schema import ToolDefinitionError
from ._workspace_tools import WorkspaceTools

__all__ = [
    "DEFAULT_SHELL_ALLOW",
    "BrainTools",
    "MemoryTools",
    "SandboxError",
    "Tool",
    "ToolDefinitionError",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "ToolSet",
    "ToolsConfig",
    "Workspace",
    "WorkspaceTools",
    "builtin_tools",
    "tool",
]
