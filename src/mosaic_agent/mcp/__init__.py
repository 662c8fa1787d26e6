"""MCP: serve Mosaic's memory and brain to any MCP client (`mosaic mcp serve`)."""

from __future__ import annotations

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
    "McpServeError",
    "build_server",
    "http_app",
    "is_loopback",
    "serve_http",
]
