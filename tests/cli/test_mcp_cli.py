"""``mosaic mcp add|tools``: record an external MCP server in config and list its tools."""

from __future__ import annotations

import json
import sys

import pytest

from mosaic_agent.mcp import McpServerConfig
from tests.agent.test_mcp_bridge import NOTES_SERVER


@pytest.fixture
def notes_server(tmp_path):
    script = tmp_path / "notes_server.py"
    script.write_text(NOTES_SERVER)
    return McpServerConfig("notes", sys.executable, (str(script),), timeout=60)


def test_mosaic_mcp_add_records_a_server_and_mcp_tools_lists_it(mosaic, notes_server, tmp_path):
    config = tmp_path / "mosaic.config.json"
    config.write_text(json.dumps({"storage": {"url": f"sqlite:///{tmp_path}/c.db"}}))
    script = notes_server.args[0]
    added = mosaic("mcp", "add", "notes", "--config", str(config), "--", sys.executable, script)
    assert added.returncode == 0, added.stderr
    data = json.loads(config.read_text())
    assert data["agent"]["mcp_servers"]["notes"] == {"command": sys.executable, "args": [script]}
    assert data["storage"]["url"].endswith("c.db")  # the rest of the file is kept
    listed = mosaic("mcp", "tools", "--config", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    [server] = json.loads(listed.stdout)["servers"]
    assert server["ok"] and "notes.add_note" in server["tools"]
    bad = mosaic("mcp", "add", "Not OK", "--config", str(config), "--", "x")
    assert bad.returncode == 2 and "not allowed" in bad.stderr


def test_mcp_add_updates_a_symlinked_config_where_it_points(mosaic, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    target = real / "mosaic.config.json"
    target.write_text(json.dumps({"tier": "local"}))
    target.chmod(0o640)
    link = tmp_path / "mosaic.config.json"
    link.symlink_to(target)
    out = mosaic("mcp", "add", "notes", "--config", str(link), "--", sys.executable, "server.py")
    assert out.returncode == 0, out.stderr
    assert link.is_symlink()
    assert json.loads(target.read_text())["agent"]["mcp_servers"]["notes"]["args"] == ["server.py"]
    assert target.stat().st_mode & 0o777 == 0o640
