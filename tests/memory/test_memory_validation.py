"""Input the database would refuse, store differently or cut is refused with a clear ValueError,
before anything is written, on every backend (PostgreSQL cannot store NUL or NaN in JSON)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mosaic_memory import NewInsight

NAN = math.nan


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (NewInsight("likes tea\x00"), "NUL character"),
        (NewInsight("   "), "non-empty string"),
        (NewInsight("likes tea", category="c" * 101), "at most 100"),
        (NewInsight("likes tea", metadata={"score": NAN}), "without NaN"),
        (NewInsight("likes tea", metadata={"note": "a\x00b"}), "NUL character"),
        (NewInsight("likes tea", metadata={1: "x"}), "keys must be strings"),
        (NewInsight("likes tea", metadata=["not", "a", "mapping"]), "must be a mapping"),  # type: ignore[arg-type]
        (NewInsight("likes tea", embedding="nan"), "NaN or infinity"),
    ],
)
def test_bad_insights_are_refused_and_nothing_of_the_batch_is_written(memory, item, message):
    if isinstance(item.embedding, str):
        vector = np.ones(memory.insights.dim, dtype=np.float32)
        vector[3] = np.nan
        item = NewInsight(item.text, embedding=vector)
    with pytest.raises(ValueError, match=message):
        memory.insights.add_many([NewInsight("likes coffee"), item], user_id="u1")
    assert memory.insights.list(user_id="u1") == []


def test_bad_updates_are_refused_and_the_insight_is_unchanged(memory):
    iid = memory.insights.add("likes coffee", user_id="u1", metadata={"n": 1})
    for kwargs, message in [
        ({"text": "likes tea\x00"}, "NUL character"),
        ({"text": " "}, "non-empty string"),
        ({"metadata": {"n": math.inf}}, "without NaN"),
        ({"category": "x\x00"}, "NUL character"),
    ]:
        with pytest.raises(ValueError, match=message):
            memory.insights.update(iid, user_id="u1", **kwargs)
    stored = memory.insights.get(iid, user_id="u1")
    assert (stored.text, stored.metadata) == ("likes coffee", {"n": 1})
    assert [h.action for h in memory.insights.history(iid, user_id="u1")] == ["add"]


def test_bad_preferences_and_skills_are_refused(memory):
    for args, message in [
        (("k\x00", 1), "NUL character"),
        (("k", NAN), "without NaN"),
        (("k", {"a": [1, math.inf]}), "without NaN"),
        (("k", {"a": "b\x00"}), "NUL character"),
        (("k" * 256, 1), "at most 255"),
    ]:
        with pytest.raises(ValueError, match=message):
            memory.preferences.set("u1", *args)
    assert memory.preferences.list("u1") == []
    with pytest.raises(ValueError, match="without NaN"):
        memory.skills.create("u1", "summarise", config={"temperature": NAN})
    with pytest.raises(ValueError, match="NUL character"):
        memory.skills.create("u1", "summarise", description="a\x00")
    memory.skills.create("u1", "summarise", config={"temperature": 0.2})
    with pytest.raises(ValueError, match="without NaN"):
        memory.skills.update("u1", "summarise", config={"temperature": NAN})
    assert [s.config for s in memory.skills.list("u1")] == [{"temperature": 0.2}]


def test_empty_optional_strings_and_any_mapping_type_are_stored_as_before(memory):
    from types import MappingProxyType

    iid = memory.insights.add("likes tea", user_id="u1", category="", metadata=MappingProxyType({"n": 1}))
    memory.insights.update(iid, user_id="u1", metadata=MappingProxyType({"n": 2}))
    stored = memory.insights.get(iid, user_id="u1")
    assert (stored.category, stored.metadata) == ("", {"n": 2})
    assert memory.preferences.set("u1", "tone", "dry", category="").category == ""
    skill = memory.skills.create("u1", "s", description="", config=MappingProxyType({"t": 0.2}))
    assert (skill.description, skill.config) == ("", {"t": 0.2})
    vector = np.full(memory.insights.dim, np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="NaN or infinity"):
        memory.insights.search("tea", user_id="u1", vector=vector)
