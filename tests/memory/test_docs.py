"""docs/memory.md runs as written: its Python blocks, in order, in one namespace."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "memory.md"


def test_memory_docs_run_and_print_what_they_say():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 5
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    printed = out.getvalue()
    assert "is immutable: an agent cannot change it" in printed
    assert "Is planning a hiking trip to the Alps in June" in printed
    assert "update user 'Prefers short answers with code examples' -> 'Prefers very short answers'" in printed
    assert "['Works mostly in Python and SQL']" in printed
    assert "reembed" in printed and "Speaks Dutch" in printed
