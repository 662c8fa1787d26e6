"""docs/agent.md runs as written, against a scripted server standing in for Ollama."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent.md"
OLLAMA = "http://localhost:11434/v1"


def test_the_agent_docs_run_and_print_what_they_say(openai_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = DOC.read_text(encoding="utf-8")
    assert OLLAMA in text
    blocks = re.findall(r"```python\n(.*?)```", text.replace(OLLAMA, openai_server.base_url), flags=re.S)
    assert len(blocks) == 3
    openai_server.push(
        openai_server.tool_call("memory__remember", {"text": "Ann takes her tea without sugar"}),
        openai_server.text("Noted."),
        openai_server.stream_tool_call("memory__recall", ['{"query": "tea"}']),
        openai_server.stream_text(["Without ", "sugar."], model="llama3.2"),
    )
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    printed = out.getvalue()
    assert "Noted.\n2 ['memory__remember'] 24\n" in printed
    assert "[calling memory__recall]" in printed and "[ok: " in printed
    assert "Without sugar.\n-- answered by ollama/llama3.2" in printed
    assert "tool " in printed and "user Please remember" in printed
    assert openai_server.pending == 0
