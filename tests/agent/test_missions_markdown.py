"""The mission files' Markdown: any text survives a render -> parse round trip."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from mosaic_agent.coord._markdown import parse_manifest, parse_tasks, render_manifest, render_tasks
from mosaic_storage.brain import Mission, Task

_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), min_size=1, max_size=40
).filter(lambda s: s.strip() == s and s not in ("-",) and "<br>" not in s)
# Anything a cell may hold: padding-like spaces, "-", "", a literal "<br>", "\r", escapes.
_tricky = st.sampled_from(["-", "", " ", "  pad ", "<br>", "\\<br>", "\r", "\r\n", "\\", "|", "\t", "\u2028"])
_any_text = st.lists(st.one_of(_tricky, st.text(max_size=8)), max_size=5).map("".join)
_title = _any_text.filter(lambda s: s.strip() != "")
_notes = st.one_of(st.none(), _any_text, st.lists(_text, min_size=1, max_size=3).map("\n".join))
_milestone = st.one_of(
    _text.filter(lambda s: not s.startswith(("[", "json:"))),
    _any_text,
    st.builds(lambda n, d: {"name": n, "done": d}, st.one_of(_text, _any_text), st.booleans()),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),  # any other shape: a json: line
)
_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@given(title=_title, notes=_notes, assignee=st.one_of(st.none(), _any_text.filter(bool)))
def test_task_cells_round_trip(title, notes, assignee):
    mission = Mission(
        id="m", project_id=None, created_by="u", title="M", goal=None, status="active", milestones=()
    )
    task = Task(
        id="t1", project_id=None, mission_id="m", created_by="u", assignee_id=assignee, title=title,
        description=notes, status="blocked", priority="low", due_at=None, tags=(), version=3,
    )  # fmt: skip
    rows, problems = parse_tasks(render_tasks(mission, [task], {"t1": ("t0",)}))
    assert problems == []
    [row] = rows
    assert (row.id, row.title, row.notes, row.assignee_id) == ("t1", title, notes, assignee)
    assert (row.status, row.priority, row.depends_on, row.version) == ("blocked", "low", ("t0",), 3)


_goal = st.lists(st.one_of(_text, _text.map(lambda s: "## " + s), _text.map(lambda s: "\\" + s)), max_size=3)


@given(
    title=_title,
    goal=st.one_of(st.none(), _goal.map("\n".join).filter(lambda s: s.strip() == s and s)),
    milestones=st.lists(_milestone, max_size=4),
)
def test_manifest_round_trips(title, goal, milestones):
    mission = Mission(
        id="m1", project_id="p1", created_by="u", title=title, goal=goal, status="paused",
        milestones=tuple(milestones), version=7, created_at=_NOW, updated_at=_NOW,
    )  # fmt: skip
    parsed, problems = parse_manifest(render_manifest(mission))
    assert problems == []
    assert parsed is not None
    assert (parsed.id, parsed.version, parsed.title, parsed.status) == ("m1", 7, title, "paused")
    assert (parsed.project_id, parsed.goal, parsed.milestones) == ("p1", goal, tuple(milestones))
