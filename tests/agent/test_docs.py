"""docs/providers.md runs as written against a scripted server standing in for Ollama."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

from mosaic_agent import AgentConfig, generate_secret_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers.md"
OLLAMA = "http://localhost:11434/v1"


def test_the_config_example_is_valid():
    block = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)[0]
    agent = AgentConfig.from_dict(json.loads(block)["agent"])
    assert agent.routing.aliases["default"] == ("ollama/llama3.2", "claude/claude-sonnet-4-5")


def test_providers_docs_run_and_print_what_they_say(openai_server, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    # Set here so that it is unset again afterwards (the docs set it when it is missing).
    monkeypatch.setenv("MOSAIC_SECRET_KEY", generate_secret_key())
    text = DOC.read_text(encoding="utf-8")
    assert OLLAMA in text
    blocks = re.findall(r"```python\n(.*?)```", text.replace(OLLAMA, openai_server.base_url), flags=re.S)
    assert len(blocks) == 5
    openai_server.push(
        openai_server.text("Blue", input_tokens=23, output_tokens=2, model="llama3.2"),
        openai_server.stream_text(["one, ", "two, ", "three"], output_tokens=6, model="llama3.2"),
        openai_server.tool_call("get_weather", {"city": "Paris"}),
        openai_server.text("Yes, take an umbrella."),
        openai_server.text("Hi!", model="llama3.2"),
    )
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    printed = out.getvalue()
    assert "Blue\nstop 23 2\n" in printed
    assert "one, two, three\n[6 tokens]" in printed
    assert "Yes, take an umbrella." in printed
    assert "['claude/claude-sonnet-4-5']" in printed
    assert "ollama/llama3.2: Hi!" in printed
    assert "Secret('***')" in printed and "('claude',)" in printed
    assert "sk-ant-example" not in printed
    tool_round = openai_server.chat_requests[3].body["messages"]
    assert tool_round[-1] == {"role": "tool", "content": "Rain all day in Paris", "tool_call_id": "call_1"}
    assert openai_server.pending == 0
