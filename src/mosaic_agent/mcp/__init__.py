"""MCP: serve Mosaic's memory and brain to any MCP client (`mosaic mcp serve`), and mount external
MCP servers' tools into an agent's registry (`McpBridge`, `mosaic mcp add`)."""

from __future__ import annotations

from ._bridge import (
    BridgeError,
    McpBridge,
    McpServerConfig,
    ServerStatus,
    check_server_name,
    servers_from_config,
)
from ._server import (
    DEFAULT_HTTP_PORT,
    BearerAuth,
    McpServeError,
    build_server,
    http_app,
    is_loopback,
    serve_http,
)

__all__ = [
    "DEFAULT_HTTP_PORT",
    "BearerAuth",
    "BridgeError",
    "McpBridge",
    "McpServeError",
    "McpServerConfig",
    "ServerStatus",
    "build_server",
    "check_server_name",
    "http_app",
    "is_loopback",
    "serve_http",
    "servers_from_config",
]
