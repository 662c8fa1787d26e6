"""The tool registry: typed functions described to a model, called with checked arguments.

Whatever happens inside a tool comes back as a `ToolResult` for the model's tool message: a
model loop never sees an exception or a traceback, and every text it gets is redacted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import PurePath
from typing import Any, Literal

import attrs

from mosaic_storage import MosaicError
from mosaic_storage._redact import redact

from ._schema import Signature, ToolDefinitionError, check_arguments, describe

logger = logging.getLogger("mosaic_agent.tools")

# "group.name": the dot groups tools for allowed_tools patterns ("workspace.*"). Providers
# allow only [A-Za-z0-9_-] in a function name, so on the wire the dot is spelled "__".
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*(?:\.[a-z][a-z0-9]*(?:_[a-z0-9]+)*)?$")
_WIRE_MAX = 64
DEFAULT_MAX_RESULT_CHARS = 20_000
MAX_ARGUMENTS_CHARS = 1_000_000

SchemaStyle = Literal["neutral", "openai", "anthropic"]


class ToolError(Exception):
    """Raised by a tool to tell the model what went wrong and what to do; becomes an error result."""


@attrs.frozen
class Tool:
    """A function a model may call: its name, description and JSON Schema of its arguments."""

    name: str
    fn: Callable[..., Any] = attrs.field(repr=False)
    signature: Signature = attrs.field(repr=False)

    @property
    def description(self) -> str:
        """What the tool does, as told to the model."""
        return self.signature.description

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON Schema of the arguments object."""
        return self.signature.json_schema()

    @property
    def wire_name(self) -> str:
        """The name providers see: ``workspace.read_file`` is ``workspace__read_file``."""
        return self.name.replace(".", "__")

    def schema(self, style: SchemaStyle = "neutral") -> dict[str, Any]:
        """The tool definition in one of three shapes.

        ``neutral``: ``{"name", "description", "parameters"}`` (the dotted name);
        ``openai``: ``{"type": "function", "function": {...}}``;
        ``anthropic``: ``{"name", "description", "input_schema"}``.
        """
        if style == "neutral":
            return {"name": self.name, "description": self.description, "parameters": self.parameters}
        if style == "openai":
            function = {
                "name": self.wire_name,
                "description": self.description,
                "parameters": self.parameters,
            }
            return {"type": "function", "function": function}
        if style == "anthropic":
            return {"name": self.wire_name, "description": self.description, "input_schema": self.parameters}
        raise ValueError(f"unknown schema style {style!r}; use 'neutral', 'openai' or 'anthropic'")


@attrs.frozen
class ToolResult:
    """The outcome of one tool call, as data for the model's tool message.

    ``ok`` false means ``content`` explains the error (never a traceback). ``content`` is
    redacted and capped: it is what the model sees and what a session stores. ``data`` is the
    JSON-ready value the tool returned (None on error), as it was, for the application only.
    """

    name: str
    ok: bool
    content: str
    data: Any = None

    def message(self, tool_call_id: str) -> dict[str, Any]:
        """A ``{"role": "tool", "tool_call_id", "content"}`` message."""
        return {"role": "tool", "tool_call_id": tool_call_id, "content": self.content}


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=False)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json_ready(value: Any) -> Any:
    """``value`` as plain JSON types (records, datetimes, tuples and paths converted)."""
    return json.loads(json.dumps(value, default=_json_default))


# Redaction costs microseconds per character, so only what the model will see is redacted:
# the text cut a little beyond the limit first (a secret cut in half at the limit is still
# whole in the window, and masked), then cut at the limit.
_REDACT_MARGIN = 1024


def _cap(text: str, limit: int) -> str:
    total = len(text)
    shown = redact(text[: limit + _REDACT_MARGIN])
    if total <= limit and len(shown) <= limit:
        return shown
    return f"{shown[:limit]}\n... [truncated: {total - limit} more characters]"


def tool(fn: Callable[..., Any], *, name: str | None = None, description: str | None = None) -> Tool:
    """A `Tool` from a typed function: JSON Schema from its signature, text from its docstring.

    Raises:
        ToolDefinitionError: a name providers cannot carry, or a function that cannot be
            described (``*args``, a parameter without a type or with no JSON Schema).
    """
    tool_name: str = name or getattr(fn, "__name__", None) or ""
    if not _NAME.fullmatch(tool_name) or len(tool_name.replace(".", "__")) > _WIRE_MAX:
        raise ToolDefinitionError(
            f"tool name {tool_name!r} is not allowed: use lower_snake_case words, optionally "
            f"'group.name', at most {_WIRE_MAX} characters"
        )
    return Tool(tool_name, fn, describe(fn, description=description))


class ToolSet:
    """A group of tools bound to a context (a user, a store, a workspace); methods named in ``names``."""

    group: str = ""
    names: tuple[str, ...] = ()

    def tools(self) -> list[Tool]:
        """One `Tool` per method in ``names``, named ``group.method``."""
        return [tool(getattr(self, name), name=f"{self.group}.{name}") for name in self.names]


class ToolRegistry:
    """Tools by name: schemas for the model, checked calls, results and errors as data.

    Args:
        max_result_chars: the longest tool message content; longer results are cut, with a note.
    """

    def __init__(self, *, max_result_chars: int = DEFAULT_MAX_RESULT_CHARS) -> None:
        if max_result_chars < 100:
            raise ValueError("max_result_chars must be at least 100")
        self.max_result_chars = max_result_chars
        self._tools: dict[str, Tool] = {}

    def register(
        self, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
    ) -> Tool:
        """Describe ``fn`` from its signature and docstring and add it under ``name``.

        Raises:
            ToolDefinitionError: a name providers cannot carry, a name taken, or a function
                that cannot be described (see `describe`).
        """
        built = tool(fn, name=name, description=description)
        self.extend([built])
        return built

    def extend(self, tools: ToolSet | Iterable[Tool]) -> None:
        """Add tools built elsewhere: a built-in tool set, or `Tool` values."""
        if isinstance(tools, ToolSet):
            tools = tools.tools()
        for tool in tools:
            if tool.name in self._tools:
                raise ToolDefinitionError(f"a tool named {tool.name!r} is already registered")
            self._tools[tool.name] = tool

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get(self, name: str) -> Tool | None:
        """The tool named ``name`` (dotted or wire spelling), or None."""
        return self._tools.get(name) or self._tools.get(name.replace("__", "."))

    def names(self, allowed: Sequence[str] | None = None) -> list[str]:
        """Names of the tools ``allowed`` lets through (all when None), in registration order.

        ``allowed`` holds names or glob patterns: ``"memory.recall"``, ``"workspace.*"``, ``"*"``.
        """
        if allowed is None:
            return list(self._tools)
        return [name for name in self._tools if _allowed(name, allowed)]

    def schemas(
        self, allowed: Sequence[str] | None = None, *, style: SchemaStyle = "neutral"
    ) -> list[dict[str, Any]]:
        """Tool definitions for the tools ``allowed`` lets through, in ``style``'s shape."""
        return [self._tools[name].schema(style) for name in self.names(allowed)]

    def call(
        self,
        name: str,
        arguments: str | Mapping[str, Any] | None = None,
        *,
        allowed: Sequence[str] | None = None,
    ) -> ToolResult:
        """Check the arguments, call the tool and return what it gave or why it failed, as data.

        ``arguments`` is the JSON text a model produced or a mapping. Never raises: an unknown
        or disallowed tool, bad JSON, unknown, missing or wrongly typed arguments and anything
        the tool raises become an error result whose text says what to fix.
        """
        prepared = self._prepare(name, arguments, allowed)
        if isinstance(prepared, ToolResult):
            return prepared
        tool, kwargs = prepared
        if inspect.iscoroutinefunction(tool.fn):
            return self._error(tool.name, "this tool is asynchronous: the application must use acall()")
        return self._run(tool, kwargs)

    async def acall(
        self,
        name: str,
        arguments: str | Mapping[str, Any] | None = None,
        *,
        allowed: Sequence[str] | None = None,
    ) -> ToolResult:
        """`call` for an event loop: ``async def`` tools are awaited, plain ones run in a worker thread."""
        prepared = self._prepare(name, arguments, allowed)
        if isinstance(prepared, ToolResult):
            return prepared
        tool, kwargs = prepared
        if not inspect.iscoroutinefunction(tool.fn):
            # The call and the making of its result (JSON, redaction) stay off the event loop.
            return await asyncio.to_thread(self._run, tool, kwargs)
        try:
            value = await tool.fn(**kwargs)
        except Exception as err:
            return self._failure(tool, err)
        return self._finish(tool, value)

    def _run(self, tool: Tool, kwargs: dict[str, Any]) -> ToolResult:
        try:
            value = tool.fn(**kwargs)
        except Exception as err:  # a tool's failure must not end the model loop
            return self._failure(tool, err)
        return self._finish(tool, value)

    def _prepare(
        self, name: str, arguments: str | Mapping[str, Any] | None, allowed: Sequence[str] | None
    ) -> tuple[Tool, dict[str, Any]] | ToolResult:
        try:
            return self._check(name, arguments, allowed)
        except Exception as err:  # the registry never raises: whatever the input, an error result
            return self._error(str(name), f"the call could not be read ({type(err).__name__}: {err})")

    def _check(
        self, name: str, arguments: str | Mapping[str, Any] | None, allowed: Sequence[str] | None
    ) -> tuple[Tool, dict[str, Any]] | ToolResult:
        tool = self.get(name)
        if tool is None or (allowed is not None and not _allowed(tool.name, allowed)):
            available = ", ".join(self.names(allowed)) or "none"
            return self._error(name, f"there is no tool {name!r} available; available tools: {available}")
        parsed, problem = _parse_arguments(arguments)
        if problem is not None:
            return self._error(tool.name, problem)
        kwargs, problems = check_arguments(tool.signature, parsed)
        if problems:
            return self._error(tool.name, "invalid arguments: " + "; ".join(problems))
        return tool, kwargs

    def _failure(self, tool: Tool, err: Exception) -> ToolResult:
        if isinstance(err, ToolError | MosaicError):
            return self._error(tool.name, str(err))
        # An unexpected exception: its type and message (redacted), never its traceback.
        logger.warning("tool %s raised %s: %s", tool.name, type(err).__name__, redact(err))
        return self._error(tool.name, f"{type(err).__name__}: {err}")

    def _finish(self, tool: Tool, value: Any) -> ToolResult:
        try:
            data = to_json_ready(value)
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        except RecursionError:
            return self._error(tool.name, "the tool returned a value nested too deeply to send as JSON")
        except (TypeError, ValueError) as err:
            return self._error(tool.name, f"the tool returned a value that is not JSON: {err}")
        return ToolResult(tool.name, True, _cap(text, self.max_result_chars), data)

    def _error(self, name: str, message: str) -> ToolResult:
        text = _cap(f"error: {message}", self.max_result_chars)
        return ToolResult(name, False, text)


def _allowed(name: str, patterns: Sequence[str]) -> bool:
    # Patterns may use either spelling: "workspace.*" or "workspace__*".
    wire = name.replace(".", "__")
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(wire, p) for p in patterns)


def _parse_arguments(arguments: str | Mapping[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    if arguments is None:
        return {}, None
    if isinstance(arguments, str):
        if len(arguments) > MAX_ARGUMENTS_CHARS:
            return {}, f"the arguments are longer than {MAX_ARGUMENTS_CHARS} characters"
        if not arguments.strip():
            return {}, None
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as err:
            return (
                {},
                f"the arguments are not valid JSON ({err.msg} at position {err.pos}); send a JSON object",
            )
        except RecursionError:
            return {}, "the arguments are nested too deeply; send a flatter JSON object"
        except ValueError as err:  # e.g. an integer longer than Python converts
            return {}, f"the arguments cannot be read as JSON ({err}); send a JSON object"
    if not isinstance(arguments, Mapping):
        return {}, f"the arguments must be a JSON object, got {type(arguments).__name__}"
    return dict(arguments), None
