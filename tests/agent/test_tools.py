"""The tool registry: schemas from typed functions, checked arguments, allowed_tools, errors as results."""

from __future__ import annotations

import datetime as dt
import json
import typing
from typing import Literal

import attrs
import pytest

import mosaic_storage as ms
from mosaic_agent.tools import (
    DEFAULT_SHELL_ALLOW,
    Tool,
    ToolDefinitionError,
    ToolError,
    ToolRegistry,
    ToolsConfig,
    tool,
)
from mosaic_agent.tools._brain_tools import MissionStatus, TaskPriority, TaskStatus
from mosaic_storage.schema import MISSION_STATUSES, TASK_PRIORITIES, TASK_STATUSES


def find_flights(
    origin: str,
    passengers: int,
    max_price: float | None = None,
    cabin: Literal["economy", "business"] = "economy",
    airlines: list[str] | None = None,
    direct: bool = False,
) -> dict[str, object]:
    """Find flights from an airport.

    Longer explanation on a second paragraph.

    Args:
        origin: the IATA code of the airport,
            for example "CDG".
        passengers: how many people travel.
        max_price: the highest fare in euros.
        cabin: the cabin class.
        airlines: only these airlines.
        direct: only non-stop flights.

    Returns:
        Something the model reads.
    """
    return {
        "origin": origin,
        "passengers": passengers,
        "max_price": max_price,
        "cabin": cabin,
        "airlines": airlines,
        "direct": direct,
    }


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.register(find_flights, name="travel.find_flights")
    return reg


def test_the_schema_comes_from_the_signature_and_the_docstring(registry):
    (schema,) = registry.schemas()
    assert schema["name"] == "travel.find_flights"
    assert schema["description"].startswith("Find flights from an airport.")
    assert "Returns" not in schema["description"] and "Args" not in schema["description"]
    params = schema["parameters"]
    assert params["type"] == "object" and params["additionalProperties"] is False
    assert params["required"] == ["origin", "passengers"]
    props = params["properties"]
    assert props["origin"] == {
        "type": "string",
        "description": 'the IATA code of the airport, for example "CDG".',
    }
    assert props["passengers"] == {"type": "integer", "description": "how many people travel."}
    assert props["max_price"] == {"type": ["number", "null"], "description": "the highest fare in euros."}
    assert props["cabin"] == {
        "type": "string",
        "enum": ["economy", "business"],
        "default": "economy",
        "description": "the cabin class.",
    }
    assert props["airlines"]["anyOf"] == [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]
    assert props["direct"] == {"type": "boolean", "default": False, "description": "only non-stop flights."}


def test_provider_shapes_carry_a_wire_name_without_dots(registry):
    (openai,) = registry.schemas(style="openai")
    (anthropic,) = registry.schemas(style="anthropic")
    assert openai["type"] == "function"
    assert openai["function"]["name"] == anthropic["name"] == "travel__find_flights"
    assert openai["function"]["parameters"] == anthropic["input_schema"]
    assert registry.call("travel__find_flights", {"origin": "CDG", "passengers": 1}).ok
    with pytest.raises(ValueError, match="unknown schema style"):
        registry.schemas(style="gemini")  # type: ignore[arg-type]


def test_a_valid_call_fills_defaults_and_returns_json(registry):
    result = registry.call("travel.find_flights", '{"origin": "CDG", "passengers": 2, "max_price": 300}')
    assert result.ok
    assert result.data == {
        "origin": "CDG",
        "passengers": 2,
        "max_price": 300,
        "cabin": "economy",
        "airlines": None,
        "direct": False,
    }
    assert json.loads(result.content) == result.data
    assert result.message("call_1") == {"role": "tool", "tool_call_id": "call_1", "content": result.content}


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"origin": "CDG"}, "missing required argument 'passengers'"),
        ({"origin": "CDG", "passengers": 1, "pasengers": 2}, "unknown argument(s) 'pasengers'"),
        ({"origin": "CDG", "passengers": "two"}, "'passengers' must be integer, got a string"),
        ({"origin": "CDG", "passengers": True}, "'passengers' must be integer, got a boolean"),
        ({"origin": "CDG", "passengers": 1.5}, "'passengers' must be integer, got a number"),
        (
            {"origin": "CDG", "passengers": 1, "cabin": "first"},
            "'cabin' must be one of 'economy', 'business'",
        ),
        ({"origin": "CDG", "passengers": 1, "airlines": ["AF", 7]}, "'airlines'[1] must be string"),
        ({"origin": "CDG", "passengers": 1, "direct": "yes"}, "'direct' must be boolean"),
        ('{"origin": "CDG", "passengers": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object, got list"),
    ],
)
def test_bad_arguments_are_refused_before_the_call(arguments, problem):
    calls = []

    def book(origin: str, passengers: int, cabin: Literal["economy", "business"] = "economy",
             airlines: list[str] | None = None, direct: bool = False) -> str:  # fmt: skip
        """Book a flight."""
        calls.append(origin)
        return "booked"

    reg = ToolRegistry()
    reg.register(book)
    result = reg.call("book", arguments)
    assert not result.ok and result.data is None
    assert problem in result.content, result.content
    assert calls == []


def test_every_problem_is_reported_at_once(registry):
    result = registry.call("travel.find_flights", {"passengers": "x", "extra": 1})
    assert "unknown argument(s) 'extra'" in result.content
    assert "missing required argument 'origin'" in result.content
    assert "'passengers' must be integer" in result.content


def test_an_int_is_a_number_and_null_fits_an_optional(registry):
    ok = registry.call(
        "travel.find_flights", {"origin": "X", "passengers": 1, "max_price": 10, "airlines": None}
    )
    assert ok.ok and ok.data["max_price"] == 10


def test_allowed_tools_filters_schemas_and_calls():
    reg = ToolRegistry()
    for name in ("memory.recall", "memory.remember", "workspace.read_file", "workspace.shell", "clock"):

        def fn() -> str:
            """Do it."""
            return "done"

        reg.register(fn, name=name)
    assert reg.names(["workspace.*"]) == ["workspace.read_file", "workspace.shell"]
    assert reg.names(["memory.recall", "clock"]) == ["memory.recall", "clock"]
    assert reg.names(["*"]) == reg.names()
    assert reg.names(["workspace__*", "memory__recall"]) == [
        "memory.recall",
        "workspace.read_file",
        "workspace.shell",
    ]
    assert reg.names([]) == []
    assert [s["name"] for s in reg.schemas(["memory.*"])] == ["memory.recall", "memory.remember"]
    refused = reg.call("workspace.shell", {}, allowed=["workspace.read_file", "memory.*"])
    assert not refused.ok
    assert "no tool 'workspace.shell' available" in refused.content
    assert "available tools: memory.recall, memory.remember, workspace.read_file" in refused.content
    assert reg.call("memory.recall", {}, allowed=["memory.*"]).ok
    assert "no tool 'nope'" in reg.call("nope").content


def test_errors_come_back_as_data_redacted_and_without_tracebacks():
    reg = ToolRegistry()

    def connect() -> str:
        """Connect somewhere."""
        raise RuntimeError("could not reach postgresql://app:hunter2secret@db/prod; token=abc123456789")

    def explain() -> str:
        """Explain a refusal."""
        raise ToolError("the file is too big; use search_files")

    def conflict() -> str:
        """Hit a stale version."""
        raise ms.ConflictError("task t1 changed since version 1", remediation="read it again and retry")

    for fn in (connect, explain, conflict):
        reg.register(fn)
    crashed = reg.call("connect")
    assert not crashed.ok
    assert crashed.content.startswith("error: RuntimeError: could not reach")
    assert "hunter2secret" not in crashed.content and "abc123456789" not in crashed.content
    assert "Traceback" not in crashed.content and "line " not in crashed.content
    assert reg.call("explain").content == "error: the file is too big; use search_files"
    assert "read it again and retry" in reg.call("conflict").content


def test_results_are_redacted_capped_and_made_json_ready():
    @attrs.frozen
    class Row:
        when: dt.datetime
        tags: tuple[str, ...]

    reg = ToolRegistry(max_result_chars=200)

    def leak() -> str:
        """Return a URL with a password."""
        return "use redis://:s3cretpass@cache:6379/0"

    def rows() -> list[Row]:
        """Return records."""
        return [Row(dt.datetime(2026, 1, 2, tzinfo=dt.UTC), ("a", "b"))]

    def flood() -> str:
        """Return too much."""
        return "x" * 1000

    def weird() -> object:
        """Return something that is not JSON."""
        return object()

    for fn in (leak, rows, flood, weird):
        reg.register(fn)
    assert "s3cretpass" not in reg.call("leak").content
    assert reg.call("rows").data == [{"when": "2026-01-02T00:00:00+00:00", "tags": ["a", "b"]}]
    flooded = reg.call("flood")
    assert flooded.ok and len(flooded.content) < 260 and "truncated: 800 more characters" in flooded.content
    assert "not JSON" in reg.call("weird").content


def test_functions_that_cannot_be_described_are_refused_at_registration():
    def variadic(*names: str) -> None:
        """Take many."""

    def untyped(x) -> None:  # type: ignore[no-untyped-def]
        """No type."""

    def odd(when: dt.datetime) -> None:
        """A type without a JSON Schema."""

    def silent(x: int) -> None:
        pass

    def fine(x: int) -> int:
        """Fine."""
        return x

    reg = ToolRegistry()
    for fn, match in (
        (variadic, r"\*args"),
        (untyped, "needs a type annotation"),
        (odd, "has no JSON Schema"),
        (silent, "needs a description"),
    ):
        with pytest.raises(ToolDefinitionError, match=match):
            reg.register(fn)
    for bad_name in ("Fine", "with space", "a.b.c", "a__b", "x" * 70, "9lives"):
        with pytest.raises(ToolDefinitionError, match="not allowed"):
            reg.register(fine, name=bad_name)
    reg.register(fine)
    with pytest.raises(ToolDefinitionError, match="already registered"):
        reg.register(fine)
    assert len(reg) == 1 and "fine" in reg and isinstance(reg.get("fine"), Tool)
    assert tool(fine, description="Given here.").description == "Given here."


def test_tool_literals_mirror_the_schema_constants():
    assert typing.get_args(TaskStatus) == TASK_STATUSES
    assert typing.get_args(TaskPriority) == TASK_PRIORITIES
    assert typing.get_args(MissionStatus) == MISSION_STATUSES


# -- config --------------------------------------------------------------------------------


def test_tools_config_reads_the_agent_section(tmp_path):
    config = ms.MosaicConfig(
        agent={
            "workspace_root": str(tmp_path / "ws"),
            "tools": {"shell_allow": ["ls", "cat"], "shell_timeout": 5, "max_output_bytes": 1000},
            "providers": {"ignored": "by the tools"},
        }
    )
    tools = ToolsConfig.from_config(config)
    assert tools.workspace_root == tmp_path / "ws"
    assert tools.shell_allow == ("ls", "cat") and tools.shell_timeout == 5 and tools.max_output_bytes == 1000
    assert ToolsConfig.from_config(None).shell_allow == DEFAULT_SHELL_ALLOW


@pytest.mark.parametrize(
    ("tools", "field", "message"),
    [
        ({"shel_allow": ["ls"]}, "agent.tools", r"unknown key\(s\) shel_allow"),
        ({"shell_allow": "ls"}, "agent.tools.shell_allow", "must be a list"),
        ({"shell_allow": ["bash"]}, "agent.tools.shell_allow", "can run other programs"),
        ({"shell_allow": ["/bin/ls"]}, "agent.tools.shell_allow", "not a command name"),
        ({"shell_timeout": 0}, "agent.tools.shell_timeout", "positive"),
        ({"max_file_bytes": "1MB"}, "agent.tools.max_file_bytes", "whole number"),
    ],
)
def test_bad_tools_config_names_the_field(tools, field, message):
    with pytest.raises(ms.ConfigError, match=message) as err:
        ToolsConfig.from_config({"tools": tools})
    assert err.value.field == field


def test_a_bad_workspace_root_is_refused():
    with pytest.raises(ms.ConfigError) as err:
        ToolsConfig.from_config({"workspace_root": 3})
    assert err.value.field == "agent.workspace_root"


def test_acall_awaits_async_tools_and_runs_plain_ones_in_a_thread():
    import asyncio
    import threading

    reg = ToolRegistry()
    main = threading.get_ident()

    async def fetch_note(key: str) -> str:
        """Fetch a note."""
        await asyncio.sleep(0)
        return f"note {key}"

    def where() -> bool:
        """Say whether it ran off the event loop's thread."""
        return threading.get_ident() != main

    async def broken() -> str:
        """Fail."""
        raise ValueError("bad password=hunter2xyz")

    for fn in (fetch_note, where, broken):
        reg.register(fn)

    async def run():
        return (
            await reg.acall("fetch_note", {"key": "a"}),
            await reg.acall("where"),
            await reg.acall("broken"),
            await reg.acall("fetch_note", {}),
        )

    note, thread, failed, invalid = asyncio.run(run())
    assert note.data == "note a" and thread.data is True
    assert not failed.ok and "hunter2xyz" not in failed.content and "ValueError" in failed.content
    assert "missing required argument 'key'" in invalid.content
    assert "use acall()" in reg.call("fetch_note", {"key": "a"}).content


@pytest.mark.parametrize("offset", [80, 95, 100, 105])
def test_a_secret_cut_by_the_cap_is_still_masked(offset):
    reg = ToolRegistry(max_result_chars=120)

    def page() -> str:
        """Return a long page with a password in it."""
        return "x" * offset + " postgresql://app:supersecretpw@db/prod " + "y" * 5000

    reg.register(page)
    result = reg.call("page")
    assert result.ok and "truncated" in result.content
    assert "supers" not in result.content and "secretpw" not in result.content


def test_arguments_nested_too_deeply_or_unreadable_come_back_as_errors(registry):
    import asyncio

    deep_json = '{"origin": ' + "[" * 200_000 + "]" * 200_000 + "}"
    deep_list: list[object] = []
    for _ in range(100_000):
        deep_list = [deep_list]
    cases = [
        (deep_json, "nested too deeply"),
        ('{"passengers": ' + "9" * 5000 + "}", "cannot be read as JSON"),
        ({"origin": "CDG", "passengers": 1, "airlines": deep_list}, "airlines"),
    ]
    for arguments, message in cases:
        for result in (
            registry.call("travel.find_flights", arguments),
            asyncio.run(registry.acall("travel.find_flights", arguments)),
        ):
            assert not result.ok and message in result.content, result.content
            assert "Traceback" not in result.content


def test_anything_the_arguments_check_raises_comes_back_as_an_error():
    reg = ToolRegistry()

    class Unreadable(dict[str, object]):
        def keys(self):  # type: ignore[override]
            raise RuntimeError("cannot list keys; password=hunter2xyz")

        def __iter__(self):  # type: ignore[override]
            raise RuntimeError("cannot list keys; password=hunter2xyz")

    reg.register(find_flights, name="travel.find_flights")
    result = reg.call("travel.find_flights", Unreadable(origin="CDG"))
    assert not result.ok and "could not be read (RuntimeError" in result.content
    assert "hunter2xyz" not in result.content


def test_a_result_nested_too_deeply_for_json_comes_back_as_an_error():
    reg = ToolRegistry()

    def deep() -> list[object]:
        """Return a very deep list."""
        value: list[object] = []
        for _ in range(100_000):
            value = [value]
        return value

    reg.register(deep)
    result = reg.call("deep")
    assert not result.ok and "nested too deeply" in result.content
