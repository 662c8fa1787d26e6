"""docs/logs.md runs as written: its Python blocks, in order, in one namespace, print what they say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "logs.md"


def test_logs_docs_run_and_print_what_their_comments_say():
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    printed = out.getvalue().splitlines()
    # Every `print(...)  # expected` comment is what that print printed, in order.
    expected = [
        comment.strip()
        for block in blocks
        for line in block.splitlines()
        if line.startswith("print(") and "  # " in line
        for comment in [line.split("  # ", 1)[1].split(" : ")[0]]
    ]
    assert len(expected) >= 10
    remaining = iter(printed)
    for want in expected:
        assert any(want in got for got in remaining), f"{want!r} not printed (in order); printed: {printed}"
