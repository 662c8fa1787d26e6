"""The MCP client bridge: external MCP servers' tools, mounted into an agent's tool registry.

Servers are recorded in config under ``agent.mcp_servers`` (``mosaic mcp add NAME -- COMMAND``).
`McpBridge` starts each one over stdio, lists its tools and turns them into registry `Tool`s
named ``<server>.<tool>``, so an agent's ``allowed_tools`` patterns (``"notes.*"``) apply to
them like to the built-in ones. A server that fails to start, or does not answer in time, is
reported in `McpBridge.statuses` and left out; it never stops the others or the session.

The MCP client is asynchronous; the bridge runs it on an event loop in a thread of its own, so
the synchronous registry (and `AgentSession`) can call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import attrs

from mosaic_storage import ConfigError, MosaicError
from mosaic_storage._extras import require
from mosaic_storage._redact import redact

from ..tools import Tool, ToolError
from ..tools._schema import Parameter, Signature

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
#: Tool groups of the built-in tool sets: an external server may not take their names.
RESERVED_NAMES = frozenset({"memory", "brain", "workspace", "mcp", "mosaic"})
#: The longest tool result (characters) taken from an external server.
MAX_RESULT_CHARS = 1_000_000
_SERVER_KEYS = ("command", "args", "env", "timeout")
DEFAULT_TIMEOUT = 15.0


class BridgeError(MosaicError, RuntimeError):
    """The bridge cannot do what was asked (closed, no such server); the message says why."""


@attrs.frozen
class McpServerConfig:
    """An external MCP server started over stdio: ``command`` with ``args``.

    ``env`` adds variables to the few the MCP SDK passes by default (PATH, HOME, ...): the
    server does not see the rest of your environment, so secrets stay out unless named here.
    """

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    def to_dict(self) -> dict[str, Any]:
        """The config file's shape."""
        data: dict[str, Any] = {"command": self.command, "args": list(self.args)}
        if self.env:
            data["env"] = dict(self.env)
        if self.timeout != DEFAULT_TIMEOUT:
            data["timeout"] = self.timeout
        return data


def check_server_name(name: str) -> str:
    """``name`` if it can prefix tool names (lower_snake_case), else `ConfigError`."""
    if name in RESERVED_NAMES:
        raise ConfigError(
            f"MCP server name {name!r} is taken by Mosaic's own tools",
            field="agent.mcp_servers",
            remediation=f"choose another name (not {', '.join(sorted(RESERVED_NAMES))})",
        )
    if not _NAME.fullmatch(name) or len(name) > 30:
        raise ConfigError(
            f"MCP server name {name!r} is not allowed",
            field="agent.mcp_servers",
            remediation="use lower_snake_case letters and digits, at most 30 characters (e.g. notes)",
        )
    return name


def servers_from_config(section: Any, *, source: str | None = None) -> dict[str, McpServerConfig]:
    """Validate ``agent.mcp_servers``: name -> {command, args, env, timeout}."""
    if section is None:
        return {}

    def bad(field: str, message: str) -> ConfigError:
        return ConfigError(message, source=source, field=f"agent.mcp_servers{field}")

    if not isinstance(section, Mapping):
        raise bad("", "expected an object mapping server names to {command, args}")
    servers = {}
    for name, entry in section.items():
        check_server_name(str(name))
        if not isinstance(entry, Mapping):
            raise bad(f".{name}", "expected an object with command and args")
        unknown = sorted(set(entry) - set(_SERVER_KEYS))
        if unknown:
            raise bad(
                f".{name}", f"unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(_SERVER_KEYS)}"
            )
        command = entry.get("command")
        args = entry.get("args", [])
        env = entry.get("env", {})
        timeout = entry.get("timeout", DEFAULT_TIMEOUT)
        if not isinstance(command, str) or not command.strip():
            raise bad(f".{name}.command", "expected the program to start, e.g. npx or python")
        if not isinstance(args, list | tuple) or not all(isinstance(a, str) for a in args):
            raise bad(f".{name}.args", "expected a list of strings")
        if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
            raise bad(f".{name}.env", "expected an object of string values")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0.1 <= timeout <= 600:
            raise bad(f".{name}.timeout", "expected seconds from 0.1 to 600")
        servers[str(name)] = McpServerConfig(str(name), command, tuple(args), dict(env), float(timeout))
    return servers


@attrs.frozen
class ServerStatus:
    """How starting one server went: ``ok`` with its tool names, or the error (redacted)."""

    name: str
    ok: bool
    tools: tuple[str, ...] = ()
    error: str | None = None
    skipped: tuple[str, ...] = ()


def _tool_name(raw: str) -> str | None:
    """An MCP tool name as a registry name part: camelCase and dashes to lower_snake_case."""
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", raw).lower()
    name = re.sub(r"[^a-z0-9]+", "_", name).strip("_")
    return name if _NAME.fullmatch(name or "") else None


def _usable(tools: Sequence[Any]) -> tuple[list[Any], tuple[str, ...]]:
    """The tools whose names map to distinct registry names, and the names of the others."""
    kept: list[Any] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for spec in tools:
        short = _tool_name(spec.name)
        if short is None or short in seen:
            skipped.append(spec.name)
            continue
        seen.add(short)
        kept.append(spec)
    return kept, tuple(skipped)


def _signature(description: str, schema: Mapping[str, Any]) -> Signature:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    parameters = tuple(
        Parameter(
            name=str(key), schema=dict(value) if isinstance(value, Mapping) else {}, required=key in required
        )
        for key, value in properties.items()
    )
    return Signature(description=description, parameters=parameters)


class McpBridge:
    """External MCP servers, started over stdio, their tools as registry `Tool`s.

    ```python
    with McpBridge(servers_from_config(config.agent.get("mcp_servers"))) as bridge:
        registry.extend(bridge.tools())
    ```
    """

    def __init__(self, servers: Mapping[str, McpServerConfig]) -> None:
        require("mcp", extra="mcp", purpose="MCP servers' tools")
        self.servers = dict(servers)
        self.statuses: tuple[ServerStatus, ...] = ()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mosaic-mcp-bridge", daemon=True)
        self._thread.start()
        self._stop = asyncio.Event()
        self._clients: dict[str, Any] = {}
        self._listed: dict[str, list[Any]] = {}
        self._holders: list[Future[None]] = []
        self._closed = False
        self._start()

    # --- starting ---------------------------------------------------------------------------

    def _start(self) -> None:
        statuses = []
        for name, server in self.servers.items():
            ready: Future[list[Any]] = Future()
            self._holders.append(asyncio.run_coroutine_threadsafe(self._hold(server, ready), self._loop))
            try:
                tools = ready.result(timeout=server.timeout + 1)
            except TimeoutError:
                statuses.append(ServerStatus(name, False, error=f"no answer within {server.timeout:g} s"))
                continue
            except Exception as err:  # any failure to start is reported, never raised
                statuses.append(ServerStatus(name, False, error=redact(f"{type(err).__name__}: {err}")))
                continue
            kept, skipped = _usable(tools)
            self._listed[name] = kept
            statuses.append(
                ServerStatus(
                    name,
                    True,
                    tools=tuple(f"{name}.{_tool_name(t.name)}" for t in kept),
                    skipped=skipped,
                )
            )
        self.statuses = tuple(statuses)

    async def _hold(self, server: McpServerConfig, ready: Future[list[Any]]) -> None:
        """Connect, list the tools, then keep the connection until the bridge closes."""
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters

        params = StdioServerParameters(
            command=server.command, args=list(server.args), env=dict(server.env) or None
        )
        try:
            async with asyncio.timeout(server.timeout):
                client = Client(params, read_timeout_seconds=server.timeout)
                entered = await client.__aenter__()
            try:
                async with asyncio.timeout(server.timeout):
                    listed = (await entered.list_tools()).tools
                self._clients[server.name] = entered
                ready.set_result(list(listed))
                await self._stop.wait()
            finally:
                await client.__aexit__(None, None, None)
        except BaseException as err:
            if not ready.done():
                ready.set_exception(err if isinstance(err, Exception) else RuntimeError("cancelled"))
            if not isinstance(err, Exception):
                raise

    # --- tools ------------------------------------------------------------------------------

    def tools(self, *, allowed: Sequence[str] | None = None) -> list[Tool]:
        """The started servers' tools as registry `Tool`s named ``<server>.<tool>``."""
        out = []
        for server, listed in self._listed.items():
            for spec in listed:
                short = _tool_name(spec.name) or ""
                description = spec.description or f"{spec.name} (from MCP server {server})"
                schema = spec.input_schema or {}
                fn = self._caller(server, spec.name, schema)
                out.append(Tool(f"{server}.{short}", fn, _signature(description, schema)))
        return out

    def _caller(self, server: str, tool: str, schema: Mapping[str, Any]) -> Any:
        timeout = self.servers[server].timeout

        def call(**arguments: Any) -> str:
            return self.call(server, tool, arguments, timeout=timeout)

        return call

    def call(
        self, server: str, tool: str, arguments: Mapping[str, Any], *, timeout: float | None = None
    ) -> str:
        """Call ``tool`` on ``server``; its text, or `ToolError` with the server's error text."""
        if self._closed:
            raise BridgeError("the MCP bridge is closed")
        client = self._clients.get(server)
        if client is None:
            raise ToolError(f"MCP server {server} is not running")
        wait = timeout or self.servers[server].timeout
        future = asyncio.run_coroutine_threadsafe(client.call_tool(tool, dict(arguments)), self._loop)
        try:
            result = future.result(timeout=wait)
        except TimeoutError:
            future.cancel()
            raise ToolError(f"MCP server {server} did not answer {tool} within {wait:g} s") from None
        except Exception as err:
            raise ToolError(
                redact(f"MCP server {server} failed on {tool}: {type(err).__name__}: {err}")
            ) from None
        text = "\n".join(part.text for part in result.content if getattr(part, "type", "") == "text")
        if len(text) > MAX_RESULT_CHARS:
            raise ToolError(
                f"MCP server {server} answered {tool} with {len(text)} characters; the most taken is "
                f"{MAX_RESULT_CHARS}"
            )
        if result.is_error:
            raise ToolError(redact(text) or f"{tool} failed")
        return text

    # --- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every server and the bridge's thread."""
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._stop.set)
        for holder in self._holders:
            # A server that failed to start was reported already.
            with contextlib.suppress(Exception):
                holder.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> McpBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
