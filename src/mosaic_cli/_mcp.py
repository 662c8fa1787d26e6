"""``mosaic mcp serve``: Mosaic's memory and brain for any MCP client, acting as one user."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from mosaic_storage.brain import Brain

from ._brain import UserOption
from ._options import ConfigOption, UrlOption, open_named_store
from ._output import EXIT_USAGE, err_console, fail, handle_errors

mcp_app = typer.Typer(help="MCP: serve memory and brain tools to MCP clients.", no_args_is_help=True)

TOKEN_ENV = "MOSAIC_MCP_TOKEN"  # noqa: S105 - the name of the variable, not a token


@mcp_app.command("serve")
@handle_errors
def serve(
    user: UserOption,
    transport: Annotated[
        str, typer.Option(help="stdio (for a client that starts the server) or http.")
    ] = "stdio",
    host: Annotated[str, typer.Option(help="Address to bind with --transport http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port with --transport http.", min=1, max=65535)] = 8765,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Serve memory (remember, recall, preferences) and projects, missions and tasks over MCP.

    Over HTTP on an address other than loopback, clients must send the bearer token set in
    MOSAIC_MCP_TOKEN. Nothing but MCP messages is written to stdout.
    """
    from mosaic_agent.mcp import build_server, http_app, serve_http
    from mosaic_memory import open_memory

    if transport not in ("stdio", "http"):
        fail(f"unknown transport {transport!r}", code=EXIT_USAGE, remediation="use stdio or http")
    token = os.environ.get(TOKEN_ENV) or None
    with open_named_store(config, url) as store:
        memory = open_memory(store)
        try:
            server = build_server(Brain(store), memory, user)
            if transport == "stdio":
                server.run("stdio")
                return
            http_app(server, host=host, token=token)  # refuses an unsafe bind before listening
            err_console.print(f"serving MCP for user {user} on http://{host}:{port}/mcp", highlight=False)
            serve_http(server, host=host, port=port, token=token)
        finally:
            memory.close()
