"""docs/mcp.md: the Python example runs; the client config names a real command line."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"


def test_the_python_example_runs_and_recalls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    [block] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(DOC), "exec"), {})
    assert "Ann prefers window seats" in out.getvalue()


def test_the_client_config_is_json_for_mosaic_mcp_serve():
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    server = next(json.loads(b) for b in blocks if "mcpServers" in b)["mcpServers"]["mosaic"]
    assert server["command"] == "mosaic" and server["args"][:3] == ["mcp", "serve", "--user"]
    recorded = next(json.loads(b) for b in blocks if "mcp_servers" in b)
    from mosaic_agent.mcp import servers_from_config

    assert servers_from_config(recorded["agent"]["mcp_servers"])["notes"].command == "python"
