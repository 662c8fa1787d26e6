"""The MCP client bridge: a small MCP server written here, mounted into the registry and a session."""

from __future__ import annotations

import sys
import time

import pytest

import mosaic_storage as ms
from mosaic_agent import AgentSession, OpenAICompatibleProvider
from mosaic_agent.mcp import McpBridge, McpServerConfig, servers_from_config
from mosaic_agent.tools import ToolRegistry
from mosaic_storage.brain import Brain

NOTES_SERVER = '''
import sys
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("notes")
notes = []

@server.tool()
def addNote(text: str, pinned: bool = False) -> str:
    """Add a note to the notebook."""
    notes.append(text)
    return f"added note {len(notes)}: {text}"

@server.tool()
def count_notes() -> str:
    """How many notes there are."""
    return str(len(notes))

@server.tool()
def explode() -> str:
    """Always fails."""
    raise ToolError("the notebook is on fire")

server.run("stdio")
'''


@pytest.fixture
def notes_server(tmp_path):
    script = tmp_path / "notes_server.py"
    script.write_text(NOTES_SERVER)
    return McpServerConfig("notes", sys.executable, (str(script),), timeout=60)


def test_the_bridge_mounts_tools_calls_them_and_reports_errors_as_tool_errors(notes_server):
    with McpBridge({"notes": notes_server}) as bridge:
        [status] = bridge.statuses
        assert status.ok and set(status.tools) == {"notes.add_note", "notes.count_notes", "notes.explode"}
        registry = ToolRegistry()
        registry.extend(bridge.tools())
        schema = next(s for s in registry.schemas() if s["name"] == "notes.add_note")
        assert schema["parameters"]["required"] == ["text"] and "notebook" in schema["description"]
        added = registry.call("notes__add_note", {"text": "buy milk"})
        assert added.ok and added.content == "added note 1: buy milk"
        assert registry.call("notes.count_notes", {}).content == "1"
        failed = registry.call("notes.explode", {})
        assert not failed.ok and "on fire" in failed.content
        refused = registry.call("notes.add_note", {"text": 5})  # checked before the server is asked
        assert not refused.ok and "must be string" in refused.content
        assert registry.call("notes.count_notes", {}).content == "1"


def test_servers_that_fail_or_hang_are_reported_and_the_rest_still_work(notes_server, tmp_path):
    servers = {
        "notes": notes_server,
        "missing": McpServerConfig("missing", str(tmp_path / "no-such-program"), timeout=5),
        "silent": McpServerConfig("silent", sys.executable, ("-c", "import time; time.sleep(60)"), timeout=2),
    }
    started = time.monotonic()
    with McpBridge(servers) as bridge:
        by_name = {s.name: s for s in bridge.statuses}
        assert by_name["notes"].ok
        assert not by_name["missing"].ok and by_name["missing"].error
        assert not by_name["silent"].ok and "2 s" in (by_name["silent"].error or "")
        assert [t.name.split(".")[0] for t in bridge.tools()] == ["notes"] * 3
    assert time.monotonic() - started < 45


def test_an_agent_session_calls_a_bridged_tool_over_a_real_provider(notes_server, tmp_path, openai_server):
    with ms.open_store(f"sqlite:///{tmp_path}/a.db") as store:
        ms.upgrade(store)
        brain = Brain(store)
        ann = brain.users.create(name="ann").id
        brain.agents.create(ann, name="scribe", allowed_tools=["notes.add_note"])
        openai_server.push(
            openai_server.tool_call("notes__add_note", {"text": "call mum"}),
            openai_server.tool_call("notes__count_notes", {}, id="call_2"),
            openai_server.text("Done."),
        )
        provider = OpenAICompatibleProvider("local", openai_server.base_url, max_retries=0)
        with McpBridge({"notes": notes_server}) as bridge:
            registry = ToolRegistry()
            registry.extend(bridge.tools())
            session = AgentSession.start(brain, ann, provider, agent="scribe", model="m1", tools=registry)
            reply = session.send("note: call mum")
            assert bridge.call("notes", "count_notes", {}) == "1"
        assert reply.text == "Done."
        results = [m for m in session.history() if m.role == "tool"]
        assert results[0].content == "added note 1: call mum" and not results[0].is_error
        # count_notes is not in the agent's allow-list: refused, never sent to the server.
        assert results[1].is_error and "no tool" in results[1].content
        offered = [t["function"]["name"] for t in openai_server.chat_requests[0].body["tools"]]
        assert offered == ["notes__add_note"]


def test_mcp_servers_config_is_validated():
    servers = servers_from_config({"notes": {"command": "python", "args": ["s.py"], "timeout": 3}})
    assert servers["notes"] == McpServerConfig("notes", "python", ("s.py",), {}, 3.0)
    for bad, field in (
        ({"Bad-Name": {"command": "x"}}, "mcp_servers"),
        ({"notes": {"command": ""}}, "notes.command"),
        ({"notes": {"command": "x", "args": "not a list"}}, "notes.args"),
        ({"notes": {"command": "x", "shell": True}}, "notes"),
    ):
        with pytest.raises(ms.ConfigError) as caught:
            servers_from_config(bad)
        assert field in str(caught.value)


def test_built_in_tool_groups_are_reserved_and_env_values_stay_out_of_reprs():
    for name in ("memory", "brain", "workspace"):
        with pytest.raises(ms.ConfigError, match="taken by Mosaic"):
            servers_from_config({name: {"command": "python"}})
    server = McpServerConfig("notes", "python", env={"API_TOKEN": "sk-live-0123456789"})
    assert "sk-live-0123456789" not in repr(server)


def test_tools_whose_names_collide_are_skipped_not_fatal(tmp_path):
    script = tmp_path / "twins.py"
    script.write_text(
        "from mcp.server.mcpserver import MCPServer\n"
        "server = MCPServer('twins')\n"
        "@server.tool()\ndef addNote(text: str) -> str:\n    'a'\n    return 'camel'\n"
        "@server.tool()\ndef add_note(text: str) -> str:\n    'b'\n    return 'snake'\n"
        "server.run('stdio')\n"
    )
    with McpBridge({"twins": McpServerConfig("twins", sys.executable, (str(script),), timeout=60)}) as bridge:
        [status] = bridge.statuses
        assert status.ok and status.tools == ("twins.add_note",) and len(status.skipped) == 1
        registry = ToolRegistry()
        registry.extend(bridge.tools())
        assert registry.names() == ["twins.add_note"]


def test_an_oversized_answer_from_an_external_server_is_refused(tmp_path, monkeypatch):
    from mosaic_agent.mcp import _bridge

    monkeypatch.setattr(_bridge, "MAX_RESULT_CHARS", 100)
    script = tmp_path / "big.py"
    script.write_text(
        "from mcp.server.mcpserver import MCPServer\n"
        "server = MCPServer('big')\n"
        "@server.tool()\ndef blob() -> str:\n    'a lot'\n    return 'y' * 5000\n"
        "server.run('stdio')\n"
    )
    with McpBridge({"big": McpServerConfig("big", sys.executable, (str(script),), timeout=60)}) as bridge:
        registry = ToolRegistry()
        registry.extend(bridge.tools())
        result = registry.call("big.blob", {})
        assert not result.ok and "5000 characters" in result.content
