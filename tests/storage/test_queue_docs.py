"""The example of docs/background-work.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "background-work.md"


def test_the_background_work_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], f"{DOC.name} example", "exec"), namespace)
    assert namespace["sent"] == ["ann@example.com", "ann@example.com"]
    namespace["queue"].close()  # type: ignore[attr-defined]
    namespace["store"].close()  # type: ignore[attr-defined]
