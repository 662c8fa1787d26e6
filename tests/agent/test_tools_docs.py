"""docs/tools.md runs as written: its Python blocks, in order, in one namespace, printing what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "tools.md"


def test_the_tools_docs_run_and_print_what_they_say(tmp_path, monkeypatch):
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"{DOC.name} example {number}", "exec"), namespace)
    printed = out.getvalue().splitlines()
    # Every "# ..." comment right after a print is what it printed ("..." elides the rest).
    expected = [line[2:] for block in blocks for line in block.splitlines() if line.startswith("# ")]
    assert len(printed) == len(expected)
    for got, want in zip(printed, expected, strict=True):
        head = want.split("...")[0].rstrip("; ")
        assert got.startswith(head), (got, want)
    assert (tmp_path / "workspaces" / "users").is_dir()
