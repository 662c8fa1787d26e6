"""``mosaic mcp serve``: Mosaic's memory and brain for any MCP client, acting as one user."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mosaic_storage.brain import Brain

from ._brain import UserOption
from ._options import ConfigOption, JsonOption, UrlOption, open_named_store
from ._output import EXIT_USAGE, console, err_console, fail, handle_errors, print_json

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


def _config_path(config: Path | None) -> Path:
    import mosaic_storage as ms

    return config or ms.find_config_file() or Path("mosaic.config.json")


@mcp_app.command("add", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handle_errors
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A short lower_snake_case name; it prefixes the tools.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.", min=0.1, max=600)] = 15.0,
    config: ConfigOption = None,
) -> None:
    """Record an external MCP server: `mosaic mcp add NAME -- COMMAND [ARGS...]`."""
    import mosaic_storage as ms
    from mosaic_agent.mcp import McpServerConfig, check_server_name, servers_from_config

    try:
        check_server_name(name)
    except ms.ConfigError as err:
        fail(err.message, code=EXIT_USAGE, remediation=err.remediation)
    command = list(ctx.args)
    if not command:
        fail(
            "no command to start the server",
            code=EXIT_USAGE,
            remediation="mosaic mcp add NAME -- COMMAND ...",
        )
    # A symlinked config file is updated where it points, not replaced by a plain file.
    path = Path(os.path.realpath(_config_path(config)))
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if not isinstance(data, dict):
        fail(f"{path} does not hold a JSON object", code=EXIT_USAGE)
    server = McpServerConfig(name, command[0], tuple(command[1:]), timeout=timeout)
    agent = data.setdefault("agent", {})
    agent.setdefault("mcp_servers", {})[name] = server.to_dict()
    # Check the whole file as it will be before writing it.
    ms.config_from_dict(data, source=str(path), base_dir=path.parent.resolve())
    servers_from_config(agent["mcp_servers"], source=str(path))
    _write_json(path, data)
    console.print(f"recorded MCP server {name} in {path}", highlight=False)


def _write_json(path: Path, data: dict[str, object]) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o777)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@mcp_app.command("tools")
@handle_errors
def tools(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Start each recorded MCP server, list its tools, and say which failed."""
    import attrs

    import mosaic_storage as ms
    from mosaic_agent.mcp import McpBridge, servers_from_config

    loaded = ms.load_config(config)
    servers = servers_from_config(loaded.agent.get("mcp_servers"), source=str(loaded.source))
    with McpBridge(servers) as bridge:
        statuses = bridge.statuses
    if as_json:
        print_json({"servers": [attrs.asdict(s) for s in statuses]})
        return
    if not statuses:
        console.print("no MCP servers recorded: add one with `mosaic mcp add NAME -- COMMAND ...`")
    for status in statuses:
        if status.ok:
            console.print(f"[bold green]{escape(status.name)}[/]: {escape(', '.join(status.tools))}")
        else:
            console.print(f"[bold red]{escape(status.name)}[/]: {escape(status.error or 'failed')}")
