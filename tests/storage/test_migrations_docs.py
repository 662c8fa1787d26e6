"""The examples of docs/migrations.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mosaic_storage as ms

DOC = Path(__file__).resolve().parents[2] / "docs" / "migrations.md"


def test_the_migrations_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC.name} example {number}", "exec"), {})
    with ms.open_store(f"sqlite:///{tmp_path}/deploy-demo.db") as store, store.engine.connect() as conn:
        assert ms.current(store) == ms.head()
        count = conn.exec_driver_sql("SELECT count(*) FROM insights").scalar()
    assert count == 1


def test_the_table_names_the_revisions_the_code_checks() -> None:
    from mosaic_memory import MEMORY_SCHEMA
    from mosaic_storage.queue import QUEUE_SCHEMA

    text = DOC.read_text(encoding="utf-8")
    assert f"| `mosaic_memory.MEMORY_SCHEMA` | {MEMORY_SCHEMA} or later |" in text
    assert f"| `mosaic_storage.queue.QUEUE_SCHEMA` | {QUEUE_SCHEMA} or later |" in text


def test_the_queue_runs_wherever_memory_does() -> None:
    # Memory schedules its summarization through the queue: the queue's floor is no later.
    from mosaic_memory import MEMORY_SCHEMA
    from mosaic_storage._migrations import reaches
    from mosaic_storage.queue import QUEUE_SCHEMA

    assert reaches(MEMORY_SCHEMA, QUEUE_SCHEMA)
    assert reaches(ms.head(), MEMORY_SCHEMA) and not reaches(QUEUE_SCHEMA, ms.head())
