"""`mosaic mcp serve`: Mosaic's memory and brain as MCP tools and resources, for one user.

The tools are the agent's own memory and brain tool sets (`mosaic_agent.tools`), so an MCP
client and an `AgentSession` get the same behaviour, checks and error texts. Every call acts
as the user the server was started for; a tool's failure is an MCP tool error with the
registry's message, never a traceback.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import json
import typing
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from mosaic_storage import MosaicError
from mosaic_storage._extras import require
from mosaic_storage.brain import Brain, NotFound

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from mosaic_memory import MemoryStore

    from ..tools import Tool, ToolRegistry

#: The tool sets served, and the prefix their registry names lose on the MCP side.
_SERVED_GROUPS = ("memory.", "brain.")
DEFAULT_HTTP_PORT = 8765
MIN_TOKEN_LENGTH = 16
#: The largest arguments object (JSON characters) a tool call may carry.
MAX_ARGUMENTS_CHARS = 200_000
INSTRUCTIONS = (
    "Mosaic memory and work items for one user. Use `remember` to store a durable fact about the "
    "user and `recall` to find what was stored; preferences are key/value settings. Projects, "
    "missions and tasks can be listed, shown, added and updated (updates need the record's version)."
)


class McpServeError(MosaicError, ValueError):
    """The server cannot start as asked (an unsafe bind, a missing token); the message says why."""


def _mcp_tool(registry: ToolRegistry, tool: Tool) -> Callable[..., str]:
    """A function MCP can describe (the tool's own signature) that calls through the registry."""
    from mcp.server.mcpserver.exceptions import ToolError

    def call(**kwargs: Any) -> str:
        size = len(json.dumps(kwargs, default=str))
        if size > MAX_ARGUMENTS_CHARS:
            raise ToolError(
                f"the arguments are {size} characters long; at most {MAX_ARGUMENTS_CHARS} are taken"
            )
        result = registry.call(tool.name, kwargs)
        if not result.ok:
            raise ToolError(result.content.removeprefix("error: "))
        return result.content

    hints = typing.get_type_hints(tool.fn)
    signature = inspect.signature(tool.fn)
    parameters = [p.replace(annotation=hints.get(p.name, Any)) for p in signature.parameters.values()]
    call.__signature__ = signature.replace(parameters=parameters, return_annotation=str)  # type: ignore[attr-defined]
    call.__annotations__ = {**{p.name: p.annotation for p in parameters}, "return": str}
    call.__doc__ = tool.description
    call.__name__ = tool.name.split(".", 1)[1]
    return call


def build_server(
    brain: Brain, memory: MemoryStore | None, user_id: str, *, name: str = "mosaic"
) -> MCPServer:
    """An MCP server over ``brain`` (and ``memory``), every tool and resource acting as ``user_id``.

    Tools: ``remember``, ``recall``, ``get_preference``, ``set_preference`` (with memory) and
    ``list|show|add|update`` of projects, missions and tasks. Resources: ``mosaic://missions``
    (the missions the user may see) and, per mission, ``mosaic://missions/{id}/manifest`` and
    ``mosaic://missions/{id}/tasks`` (the Markdown of `mosaic mission export`).

    Raises:
        NotFound: ``user_id`` is not a user.
    """
    require("mcp", extra="mcp", purpose="the MCP server")
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceNotFoundError

    from ..coord._markdown import render_manifest, render_tasks
    from ..coord._missions import _all_tasks, _dependency_ids
    from ..tools import builtin_tools

    brain.users.get(user_id, user_id)  # a user who does not exist cannot be served
    registry = builtin_tools(user_id, memory=memory)
    from ..tools import BrainTools

    registry.extend(BrainTools(brain, user_id))
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, version=_version())
    for tool in registry:
        if tool.name.startswith(_SERVED_GROUPS):
            server.add_tool(
                _mcp_tool(registry, tool), name=tool.name.split(".", 1)[1], structured_output=False
            )

    def _mission(mission_id: str) -> Any:
        try:
            return brain.missions.get(user_id, mission_id)
        except NotFound:
            raise ResourceNotFoundError(f"no mission {mission_id} that this user can see") from None

    @server.resource("mosaic://missions", name="missions", mime_type="application/json")
    def missions() -> str:
        """The missions this user can see: id, title, status, project."""
        found = []
        cursor: str | None = None
        while True:
            page = brain.missions.list(user_id, cursor=cursor, limit=500)
            found += [
                {"id": m.id, "title": m.title, "status": m.status, "project_id": m.project_id} for m in page
            ]
            if page.next_cursor is None:
                return json.dumps(found)
            cursor = page.next_cursor

    markdown = "text/markdown"

    @server.resource("mosaic://missions/{mission_id}/manifest", name="mission manifest", mime_type=markdown)
    def manifest(mission_id: str) -> str:
        """A mission's MISSION-MANIFEST.md: fields, goal, milestones."""
        return render_manifest(_mission(mission_id))

    @server.resource("mosaic://missions/{mission_id}/tasks", name="mission tasks", mime_type=markdown)
    def tasks(mission_id: str) -> str:
        """A mission's TASKS.md: one table row per task, with dependencies."""
        mission = _mission(mission_id)
        found = list(_all_tasks(brain, user_id, mission_id=mission.id))
        return render_tasks(mission, found, _dependency_ids(brain, user_id, found))

    return server


def _version() -> str:
    from mosaic_storage import __version__

    return __version__


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class BearerAuth:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = token.encode()

    def _allowed(self, header: bytes) -> bool:
        scheme, _, credentials = header.partition(b" ")
        # The scheme is case-insensitive (RFC 7235); the token is compared in constant time.
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._expected)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not self._allowed(given):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error": "unauthorized"}'})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, *, host: str, token: str | None) -> ASGIApp:
    """The streamable-HTTP app at ``/mcp``; with a token, behind `BearerAuth`.

    Raises:
        McpServeError: ``host`` is not a loopback address and there is no token.
    """
    if token is not None and (token != token.strip() or any(c.isspace() for c in token)):
        raise McpServeError(
            "the bearer token contains whitespace, which clients cannot send intact",
            remediation="use a long random value (secrets.token_urlsafe(32) in Python)",
        )
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise McpServeError(
            f"the bearer token is shorter than {MIN_TOKEN_LENGTH} characters",
            remediation="use a long random value (secrets.token_urlsafe(32) in Python)",
        )
    if not is_loopback(host) and not token:
        raise McpServeError(
            f"serving on {host} lets other machines call this user's tools, so it needs a bearer token",
            remediation="set MOSAIC_MCP_TOKEN to a long random value (clients send it as a Bearer token), "
            "or bind to 127.0.0.1",
        )
    from mcp.server.transport_security import TransportSecuritySettings

    if is_loopback(host):
        # No token on loopback, so the Host and Origin headers are checked (a web page could
        # otherwise reach the server through DNS rebinding), for every loopback address.
        bound = f"[{host.strip('[]')}]" if ":" in host else host
        names = sorted({"127.0.0.1", "localhost", "[::1]", bound})
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[f"{name}:*" for name in names],
            allowed_origins=[f"http://{name}:*" for name in names],
        )
    else:
        # The token guards the endpoint; Host names of a public server are not known here.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app: ASGIApp = server.streamable_http_app(host=host, transport_security=security)
    return BearerAuth(app, token) if token else app


def serve_http(server: MCPServer, *, host: str, port: int, token: str | None) -> None:
    """Serve over streamable HTTP until interrupted."""
    import uvicorn

    app = http_app(server, host=host, token=token)
    uvicorn.run(app, host=host, port=port, log_level="warning")
