"""Agent logs: append one or many, query by session, time and level with keyset pages, tiers by age."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mosaic_memory import LogEntry, LogStore, NewLogEntry

NOW = dt.datetime.now(dt.UTC)


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


def test_append_returns_the_stored_entry_and_get_reads_it_back(memory):
    entry = memory.logs.append("s1", "u1", "warning", "tool", "disk almost full", {"pct": 91})
    assert isinstance(entry, LogEntry) and isinstance(memory.logs, LogStore)
    assert (entry.session_id, entry.level, entry.category, entry.metadata) == (
        "s1",
        "warning",
        "tool",
        {"pct": 91},
    )
    assert entry.tier == "hot" and entry.summarized_at is None and entry.created_at.tzinfo is not None
    assert memory.logs.get(entry.id, user_id="u1") == entry


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"level": "fatal"}, "level must be one of"),
        ({"content": ""}, "content must be a non-empty string"),
        ({"session_id": " "}, "session_id must be a non-empty string"),
        ({"metadata": {"x": object()}}, "JSON-serializable"),
        ({"created_at": dt.datetime(2026, 1, 1)}, "aware datetime"),
    ],
)
def test_bad_entries_are_refused_and_their_batch_is_not_written(memory, kwargs, message):
    good = {"session_id": "s1", "content": "fine", "level": "info"}
    bad = NewLogEntry(**{**good, **kwargs})
    with pytest.raises(ValueError, match=message):
        memory.logs.append_many([NewLogEntry(**good), bad], user_id="u1")
    assert memory.logs.count(user_id="u1") == 0


def test_a_user_id_is_required(memory):
    with pytest.raises(ValueError, match="user_id"):
        memory.logs.append("s1", "", "info", None, "x")
    with pytest.raises(ValueError, match="user_id"):
        memory.logs.query(user_id="")


def test_append_many_writes_in_batches_and_keyset_pages_read_each_entry_once(memory):
    entries = [NewLogEntry(f"s{i % 3}", f"line {i}") for i in range(2_345)]
    written = memory.logs.append_many(entries, user_id="u1", batch_size=1000)
    assert [e.content for e in written] == [f"line {i}" for i in range(2_345)]
    for newest_first in (False, True):
        seen, cursor, pages = [], None, 0
        while True:
            page = memory.logs.query(user_id="u1", limit=500, cursor=cursor, newest_first=newest_first)
            seen += [e.content for e in page.entries]
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        expected = [e.content for e in written]
        assert seen == (expected[::-1] if newest_first else expected)
        assert pages == 5


def test_query_filters_by_session_time_level_category_tier(memory):
    logs = memory.logs
    logs.append("s1", "u1", "debug", "llm", "thinking", created_at=ago(hours=5))
    logs.append("s1", "u1", "info", "chat", "hello", created_at=ago(hours=3))
    logs.append("s2", "u1", "warning", "tool", "slow tool", created_at=ago(hours=2))
    logs.append("s2", "u1", "error", "tool", "tool failed", created_at=ago(hours=1))

    def contents(**kwargs):
        return [e.content for e in logs.query(user_id="u1", **kwargs).entries]

    assert contents(session_id="s2") == ["slow tool", "tool failed"]
    assert contents(since=ago(hours=3), until=ago(hours=1)) == ["hello", "slow tool"]
    assert contents(levels=["debug", "error"]) == ["thinking", "tool failed"]
    assert contents(min_level="warning") == ["slow tool", "tool failed"]
    assert contents(category="tool", newest_first=True) == ["tool failed", "slow tool"]
    assert contents(tier="warm") == []
    assert contents(summarized=False, limit=2) == ["thinking", "hello"]
    with pytest.raises(ValueError, match="level must be one of"):
        logs.query(user_id="u1", min_level="loud")
    with pytest.raises(ValueError, match="not a log cursor"):
        logs.query(user_id="u1", cursor="garbage!")


def test_every_read_is_scoped_by_user(memory):
    mine = memory.logs.append("shared-session", "u1", "info", None, "u1 secret")
    memory.logs.append("shared-session", "u2", "info", None, "u2 line")
    assert memory.logs.get(mine.id, user_id="u2") is None
    assert [e.content for e in memory.logs.tail(user_id="u2", session_id="shared-session")] == ["u2 line"]
    assert [e.content for e in memory.logs.query(user_id="u2").entries] == ["u2 line"]
    assert memory.logs.count(user_id="u2") == 1
    assert memory.logs.count(user_id="u3") == 0


def test_tail_then_follow_with_the_last_cursor(memory):
    for i in range(30):
        memory.logs.append("s1", "u1", "info", None, f"line {i}")
    last = memory.logs.tail(user_id="u1", session_id="s1", limit=5)
    assert [e.content for e in last] == [f"line {i}" for i in range(25, 30)]
    assert memory.logs.query(user_id="u1", session_id="s1", cursor=last[-1].cursor).entries == ()
    memory.logs.append("s1", "u1", "info", None, "line 30")
    memory.logs.append("s2", "u1", "info", None, "other session")
    new = memory.logs.query(user_id="u1", session_id="s1", cursor=last[-1].cursor).entries
    assert [e.content for e in new] == ["line 30"]


def test_move_tiers_ages_logs_hot_to_warm_to_cold_once(memory):
    logs = memory.logs
    logs.append("s", "u1", "info", None, "today", created_at=ago(hours=1))
    logs.append("s", "u1", "info", None, "last week", created_at=ago(days=8))
    logs.append("s", "u2", "info", None, "last quarter", created_at=ago(days=90))
    moved = logs.move_tiers()  # config defaults: warm after 7 days, cold after 30
    assert (moved.to_warm, moved.to_cold) == (1, 1)
    assert [e.content for e in logs.query(user_id="u1", tier="warm").entries] == ["last week"]
    assert [e.content for e in logs.query(user_id="u2", tier="cold").entries] == ["last quarter"]
    assert logs.move_tiers() == type(moved)(0, 0)
    moved = logs.move_tiers(warm_after=dt.timedelta(minutes=1), cold_after=dt.timedelta(days=7))
    assert (moved.to_warm, moved.to_cold) == (1, 1)
    assert logs.count(user_id="u1", tier="cold") == 1 and logs.count(user_id="u1", tier="warm") == 1
    with pytest.raises(ValueError, match="warm_after <= cold_after"):
        logs.move_tiers(warm_after=dt.timedelta(days=2), cold_after=dt.timedelta(days=1))


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=3), min_size=0, max_size=25),
    page=st.integers(min_value=1, max_value=7),
    newest_first=st.booleans(),
)
def test_keyset_pages_return_every_entry_once_in_order_also_among_ties(memory, offsets, page, newest_first):
    user = f"prop-{uuid.uuid4().hex}"  # every example its own user: the store is shared
    written = memory.logs.append_many(
        [NewLogEntry("s", f"e{i}", created_at=NOW + dt.timedelta(seconds=o)) for i, o in enumerate(offsets)],
        user_id=user,
        batch_size=4,
    )
    seen, cursor = [], None
    while True:
        result = memory.logs.query(user_id=user, limit=page, cursor=cursor, newest_first=newest_first)
        assert len(result.entries) <= page
        seen += [e.id for e in result.entries]
        if result.next_cursor is None:
            break
        cursor = result.next_cursor
    expected = [e.id for e in sorted(written, key=lambda e: (e.created_at, e.id), reverse=newest_first)]
    assert seen == expected
