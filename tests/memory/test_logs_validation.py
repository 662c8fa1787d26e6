"""Agent log input checks: all-or-nothing batches, NUL and NaN refused, no database error leaks parameters."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import sqlalchemy as sa

from mosaic_memory import NewLogEntry
from mosaic_storage import MosaicError


def entry(content: str = "fine", **kwargs) -> NewLogEntry:
    return NewLogEntry("s1", content, **kwargs)


def test_a_bad_entry_after_several_batches_writes_nothing(memory):
    entries = [entry(f"line {i}") for i in range(7)] + [entry("late", level="fatal")]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"entry 7: level must be one of.*nothing was written"):
        memory.logs.append_many(entries, user_id="u1", batch_size=2)
    assert memory.logs.count(user_id="u1") == 0
    written = memory.logs.append_many(entries[:7], user_id="u1", batch_size=2)
    assert len(written) == 7 and memory.logs.count(user_id="u1") == 7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": "a\x00b"}, "content contains a NUL character"),
        ({"category": "to\x00ol"}, "category contains a NUL character"),
        ({"metadata": {"note": "x\x00y"}}, "metadata contains a NUL character"),
        ({"metadata": {"k\x00": 1}}, "metadata contains a NUL character"),
        ({"metadata": {"score": math.nan}}, "without NaN or infinity"),
        ({"metadata": {"nested": [1.0, math.inf]}}, "without NaN or infinity"),
        ({"metadata": {"a": {1: "one"}}}, "keys must be strings"),
    ],
)
def test_nul_characters_and_non_finite_numbers_are_refused_on_every_backend(memory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        memory.logs.append_many([entry("ok"), entry(**kwargs)], user_id="u1")
    assert memory.logs.count(user_id="u1") == 0


def test_a_literal_backslash_u0000_in_metadata_is_stored(memory):
    stored = memory.logs.append("s1", "u1", "info", None, "x", {"text": "\\u0000 is an escape"})
    assert memory.logs.get(stored.id, user_id="u1").metadata == {"text": "\\u0000 is an escape"}


def test_append_returns_metadata_as_stored(memory):
    stored = memory.logs.append("s1", "u1", "info", None, "x", {"pair": (1, 2)})
    assert stored.metadata == {"pair": [1, 2]} == memory.logs.get(stored.id, user_id="u1").metadata


@pytest.mark.parametrize("user_id", ["ada\x00", " ada", "ada\n", "ada\t"])
def test_user_ids_with_nul_or_surrounding_whitespace_are_refused(memory, user_id):
    with pytest.raises(ValueError, match="user_id"):
        memory.logs.append("s1", user_id, "info", None, "x")
    with pytest.raises(ValueError, match="user_id"):
        memory.logs.query(user_id=user_id)


def test_append_returns_created_at_in_utc_as_stored(memory):
    berlin = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2026, 3, 1, 12, 0, tzinfo=berlin)
    stored = memory.logs.append("s1", "u1", "info", None, "x", created_at=at)
    assert stored.created_at == at and stored.created_at.utcoffset() == dt.timedelta(0)
    assert memory.logs.get(stored.id, user_id="u1") == stored


def test_a_database_error_names_no_statement_parameter(memory):
    with memory.store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE agent_logs"))
    with pytest.raises(MosaicError) as caught:
        memory.logs.append("s1", "u1", "info", None, "the plan is xyzzy-4711", {"token": "plugh-0815"})
    text = f"{caught.value} {caught.value!r}"
    assert "refused to write the logs" in text
    for leaked in ("xyzzy-4711", "plugh-0815", "parameters", "INSERT"):
        assert leaked not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(MosaicError, match="refused to read the logs") as read:
        memory.logs.query(user_id="secret-user-42")
    assert "secret-user-42" not in str(read.value)
