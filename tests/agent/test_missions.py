"""Missions as code: init, next task, done, and the Markdown round trip, on every backend."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from mosaic_agent.coord import (
    MANIFEST_FILE,
    TASKS_FILE,
    MissionConflictError,
    MissionFormatError,
    complete_task,
    export_mission,
    import_mission,
    init_mission,
    next_task,
)
from mosaic_storage.brain import Brain


@pytest.fixture
def brain(migrated_store, tmp_path):
    return Brain(migrated_store, workspace_root=tmp_path / "workspaces")


@pytest.fixture
def ann(brain):
    return brain.users.create(name="ann", email="ann@example.com")


@pytest.fixture
def mission(brain, ann):
    project = brain.projects.create(ann.id, name="Atlas")
    mission = init_mission(brain, ann.id, "Ship the atlas\nwith maps of every valley", project_id=project.id)
    first = brain.tasks.create(ann.id, title="Draw maps", mission_id=mission.id, priority="high")
    second = brain.tasks.create(ann.id, title="Print | bind", mission_id=mission.id, description="two\nlines")
    brain.tasks.add_dependency(ann.id, second.id, first.id)
    return mission


def _replace(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_init_mission_starts_an_active_mission_with_milestones_from_the_goal(brain, ann):
    mission = init_mission(brain, ann.id, "Learn to sail", milestones=["Knots", "Wind"])
    assert (mission.title, mission.status, mission.goal) == ("Learn to sail", "active", "Learn to sail")
    assert mission.milestones == ({"name": "Knots", "done": False}, {"name": "Wind", "done": False})
    with pytest.raises(MissionFormatError, match="goal is empty"):
        init_mission(brain, ann.id, "   ")


def test_next_task_respects_dependencies_then_priority_then_due_date(brain, ann):
    mission = init_mission(brain, ann.id, "Release")
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    low = brain.tasks.create(ann.id, title="low", mission_id=mission.id, priority="low")
    blocked = brain.tasks.create(ann.id, title="blocked", mission_id=mission.id, priority="critical")
    brain.tasks.create(ann.id, title="later", mission_id=mission.id, priority="high")
    brain.tasks.create(ann.id, title="due", mission_id=mission.id, priority="high", due_at=soon)
    brain.tasks.add_dependency(ann.id, blocked.id, low.id)
    order = []
    while (task := next_task(brain, ann.id, mission_id=mission.id)) is not None:
        order.append(task.title)
        complete_task(brain, ann.id, task.id)
    assert order == ["due", "later", "low", "blocked"]
    assert {t.status for t in brain.tasks.list(ann.id, mission_id=mission.id)} == {"done"}


def test_next_task_for_an_assignee_skips_tasks_assigned_to_others(brain, ann):
    bob = brain.users.create(name="bob", email="bob@example.com")
    mission = init_mission(brain, bob.id, "Shared")
    brain.tasks.create(bob.id, title="bob's", mission_id=mission.id, assignee_id=bob.id, priority="critical")
    assert next_task(brain, bob.id, mission_id=mission.id, assignee_id="someone-else") is None
    assert next_task(brain, ann.id, mission_id=mission.id) is None  # ann cannot see bob's private mission


def test_export_edit_import_round_trip_applies_every_edit(brain, ann, mission, tmp_path):
    manifest, tasks_md = export_mission(brain, ann.id, mission.id, tmp_path / "m")
    assert (manifest.name, tasks_md.name) == (MANIFEST_FILE, TASKS_FILE)
    # An import of untouched files changes nothing.
    report = import_mission(brain, ann.id, tmp_path / "m")
    assert (report.created, report.updated, report.mission_updated) == ((), (), False)
    assert len(report.unchanged) == 2

    _replace(manifest, "| status | active |", "| status | paused |")
    _replace(manifest, "- [ ] Plan", "- [x] Plan")
    _replace(tasks_md, "| Draw maps | not_started | high |", "| Draw maps | done | critical |")
    text = tasks_md.read_text().rstrip("\n").splitlines()
    table_end = max(i for i, line in enumerate(text) if line.startswith("|"))
    text.insert(table_end + 1, "|  | Ship it | not_started | low | - | - | new \\| task | |")
    tasks_md.write_text("\n".join(text) + "\n")

    report = import_mission(brain, ann.id, tmp_path / "m")
    assert report.mission_updated and len(report.created) == 1 and len(report.updated) == 1
    changed = brain.missions.get(ann.id, mission.id)
    assert changed.status == "paused" and changed.milestones[0] == {"name": "Plan", "done": True}
    by_title = {t.title: t for t in brain.tasks.list(ann.id, mission_id=mission.id)}
    assert (by_title["Draw maps"].status, by_title["Draw maps"].priority) == ("done", "critical")
    assert by_title["Ship it"].description == "new | task"
    assert by_title["Print | bind"].description == "two\nlines"  # escaped cells survive the round trip
    # The files were rewritten at the new versions: a second import is a no-op.
    again = import_mission(brain, ann.id, tmp_path / "m")
    assert (again.created, again.updated, again.mission_updated) == ((), (), False)


def test_dependencies_are_set_to_what_the_file_lists(brain, ann, mission, tmp_path):
    _, tasks_md = export_mission(brain, ann.id, mission.id, tmp_path)
    tasks = {t.title: t for t in brain.tasks.list(ann.id, mission_id=mission.id)}
    draw, bind = tasks["Draw maps"], tasks["Print | bind"]
    # The bound row's "depends on" cell lists the drawing task; empty it.
    _replace(tasks_md, f"| {draw.id} | two<br>lines |", "| - | two<br>lines |")
    report = import_mission(brain, ann.id, tmp_path)
    assert report.dependencies_removed == 1 and report.updated == (bind.id,)
    assert brain.tasks.dependencies(ann.id, bind.id) == ()


def test_a_concurrent_edit_in_the_store_is_reported_as_a_conflict_and_nothing_is_applied(
    brain, ann, mission, tmp_path
):
    manifest, tasks_md = export_mission(brain, ann.id, mission.id, tmp_path)
    draw = next(t for t in brain.tasks.list(ann.id, mission_id=mission.id) if t.title == "Draw maps")
    # Someone else changes the task in the store after the export...
    brain.tasks.update(ann.id, draw.id, version=draw.version, status="in_progress")
    # ...while the file edits the same task, and the mission too.
    _replace(tasks_md, "| Draw maps | not_started |", "| Draw maps | blocked |")
    _replace(manifest, "| status | active |", "| status | paused |")
    with pytest.raises(MissionConflictError) as caught:
        import_mission(brain, ann.id, tmp_path)
    [conflict] = caught.value.conflicts
    assert (conflict.file, conflict.id, conflict.exported_version, conflict.current_version) == (
        TASKS_FILE,
        draw.id,
        1,
        2,
    )
    assert "status" in conflict.fields and f"{TASKS_FILE}:{conflict.line}" in str(caught.value)
    assert brain.tasks.get(ann.id, draw.id).status == "in_progress"
    assert brain.missions.get(ann.id, mission.id).status == "active"  # not half-applied


def test_a_dependency_added_in_the_store_after_export_is_a_conflict_not_undone(brain, ann, mission, tmp_path):
    _, tasks_md = export_mission(brain, ann.id, mission.id, tmp_path)
    tasks = {t.title: t for t in brain.tasks.list(ann.id, mission_id=mission.id)}
    draw, bind = tasks["Draw maps"], tasks["Print | bind"]
    other = brain.tasks.create(ann.id, title="Buy ink", mission_id=mission.id)
    brain.tasks.add_dependency(ann.id, draw.id, other.id)  # someone else, after the export
    _replace(tasks_md, "| Print \\| bind | not_started |", "| Print \\| bind | blocked |")
    with pytest.raises(MissionConflictError) as caught:
        import_mission(brain, ann.id, tmp_path)
    [conflict] = caught.value.conflicts
    assert (conflict.id, conflict.fields) == (draw.id, ("depends on",))
    assert [t.id for t in brain.tasks.dependencies(ann.id, draw.id)] == [other.id]
    assert brain.tasks.get(ann.id, bind.id).status == "not_started"  # nothing applied
    # A removal in the store is noticed the same way.
    export_mission(brain, ann.id, mission.id, tmp_path)
    brain.tasks.remove_dependency(ann.id, draw.id, other.id)
    with pytest.raises(MissionConflictError, match="differs in: depends on"):
        import_mission(brain, ann.id, tmp_path)
    assert brain.tasks.dependencies(ann.id, draw.id) == ()


def test_a_race_between_check_and_write_rolls_back_everything(brain, ann, mission, tmp_path):
    """A task changed after the conflict check but before its update: nothing of the import stays."""
    manifest, tasks_md = export_mission(brain, ann.id, mission.id, tmp_path)
    tasks = {t.title: t for t in brain.tasks.list(ann.id, mission_id=mission.id)}
    _replace(manifest, "| status | active |", "| status | paused |")
    _replace(tasks_md, "| Print \\| bind | not_started |", "| Print \\| bind | blocked |")
    original = brain.tasks.update

    def racing_update(actor, task_id, **kwargs):
        if task_id == tasks["Print | bind"].id:
            # Another writer commits first, from another thread (its own connection).
            thread = threading.Thread(
                target=original,
                args=(actor, task_id),
                kwargs={"version": tasks["Print | bind"].version, "priority": "low"},
            )
            thread.start()
            thread.join()
        return original(actor, task_id, **kwargs)

    brain.tasks.update = racing_update
    if brain.store.dialect == "sqlite":
        pytest.skip("SQLite serialises writers: the racing writer waits for the import's transaction")
    with pytest.raises(MissionConflictError, match=f"{TASKS_FILE}:"):
        import_mission(brain, ann.id, tmp_path)
    brain.tasks.update = original
    assert brain.missions.get(ann.id, mission.id).status == "active"
    assert brain.tasks.get(ann.id, tasks["Print | bind"].id).priority == "low"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("| notes | version |", "| notes | version | owner |", "unknown column(s) 'owner'"),
        ("| Draw maps | not_started |", "| Draw maps | someday |", "status 'someday' is not one of"),
        ("| Draw maps | not_started | high |", "| Draw maps | not_started | urgent |", "priority 'urgent'"),
        ("| Draw maps |", "| Draw maps | extra |", "cells; the header has"),
        ("| Draw maps |", "|  |", "the title is empty"),
    ],
)
def test_malformed_task_rows_are_reported_with_file_and_line_and_nothing_is_applied(
    brain, ann, mission, tmp_path, old, new, message
):
    manifest, tasks_md = export_mission(brain, ann.id, mission.id, tmp_path)
    _replace(manifest, "| status | active |", "| status | paused |")
    _replace(tasks_md, old, new)
    line = next(i for i, text in enumerate(tasks_md.read_text().splitlines(), 1) if new in text)
    with pytest.raises(MissionFormatError) as caught:
        import_mission(brain, ann.id, tmp_path)
    assert message in str(caught.value)
    assert any(p.file == TASKS_FILE and p.line == line for p in caught.value.problems)
    assert brain.missions.get(ann.id, mission.id).status == "active"


def test_manifest_problems_and_unknown_task_ids_are_reported(brain, ann, mission, tmp_path):
    manifest, tasks_md = export_mission(brain, ann.id, mission.id, tmp_path)
    _replace(manifest, "| status | active |", "| status | finished |\n| owner | me |")
    with pytest.raises(MissionFormatError) as caught:
        import_mission(brain, ann.id, tmp_path)
    text = str(caught.value)
    assert "unknown field 'owner'" in text and f"{MANIFEST_FILE}:" in text
    export_mission(brain, ann.id, mission.id, tmp_path)
    draw = next(t for t in brain.tasks.list(ann.id, mission_id=mission.id) if t.title == "Draw maps")
    _replace(tasks_md, f"| {draw.id} |", "| 0000-not-a-task |")
    with pytest.raises(MissionFormatError, match="0000-not-a-task is not a task of this mission"):
        import_mission(brain, ann.id, tmp_path)


def test_another_user_cannot_import_into_a_mission_they_cannot_see(brain, ann, mission, tmp_path):
    from mosaic_storage.brain import NotFound

    export_mission(brain, ann.id, mission.id, tmp_path)
    eve = brain.users.create(name="eve", email="eve@example.com")
    with pytest.raises(NotFound):
        import_mission(brain, eve.id, tmp_path)
    with pytest.raises(NotFound):
        export_mission(brain, eve.id, mission.id, tmp_path / "eve")


def test_a_missing_file_says_to_export_first(brain, ann, tmp_path):
    with pytest.raises(MissionFormatError, match="export the mission first"):
        import_mission(brain, ann.id, tmp_path / "nothing-here")


def _set_depends_on(tasks_md, task_id, value):
    """Set the ``depends on`` cell of a row whose cells hold no escaped pipe."""
    lines = tasks_md.read_text().split("\n")
    for i, line in enumerate(lines):
        cells = line.split("|")
        if len(cells) > 8 and cells[1].strip() == task_id:
            cells[6] = f" {value} "
            lines[i] = "|".join(cells)
    tasks_md.write_text("\n".join(lines))


def test_reversing_a_dependency_is_valid_whatever_the_row_order(brain, ann, mission, tmp_path):
    _, tasks_md = export_mission(brain, ann.id, mission.id, tmp_path)
    tasks = {t.title: t for t in brain.tasks.list(ann.id, mission_id=mission.id)}
    draw, bind = tasks["Draw maps"], tasks["Print | bind"]  # bind -> draw; draw's row comes first
    _set_depends_on(tasks_md, draw.id, bind.id)
    _replace(tasks_md, f"| {draw.id} | two<br>lines |", "| - | two<br>lines |")
    report = import_mission(brain, ann.id, tmp_path)
    assert (report.dependencies_added, report.dependencies_removed) == (1, 1)
    assert [t.id for t in brain.tasks.dependencies(ann.id, draw.id)] == [bind.id]
    assert brain.tasks.dependencies(ann.id, bind.id) == ()


def test_a_dependency_on_another_missions_task_round_trips(brain, ann, mission, tmp_path):
    other = init_mission(brain, ann.id, "Other")
    elsewhere = brain.tasks.create(ann.id, title="Elsewhere", mission_id=other.id)
    draw = next(t for t in brain.tasks.list(ann.id, mission_id=mission.id) if t.title == "Draw maps")
    brain.tasks.add_dependency(ann.id, draw.id, elsewhere.id)
    manifest, _ = export_mission(brain, ann.id, mission.id, tmp_path)
    _replace(manifest, "| status | active |", "| status | paused |")
    report = import_mission(brain, ann.id, tmp_path)
    assert report.mission_updated and report.updated == ()
    assert [t.id for t in brain.tasks.dependencies(ann.id, draw.id)] == [elsewhere.id]
    # A task the actor cannot see is still refused, with the line.
    bob = brain.users.create(name="bob", email="bob@example.com")
    hidden = brain.tasks.create(bob.id, title="hidden")
    _, tasks_md = export_mission(brain, ann.id, mission.id, tmp_path)
    _set_depends_on(tasks_md, draw.id, hidden.id)
    with pytest.raises(MissionFormatError, match=f"depends on {hidden.id}, which is not a task you can see"):
        import_mission(brain, ann.id, tmp_path)


def test_a_changed_project_in_the_manifest_is_reported_not_ignored(brain, ann, mission, tmp_path):
    manifest, _ = export_mission(brain, ann.id, mission.id, tmp_path)
    _replace(manifest, f"| project | {mission.project_id} |", "| project | - |")
    _replace(manifest, "| status | active |", "| status | paused |")
    line = next(i for i, t in enumerate(manifest.read_text().split("\n"), 1) if t == "| project | - |")
    with pytest.raises(MissionFormatError, match="between projects is not supported") as caught:
        import_mission(brain, ann.id, tmp_path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (MANIFEST_FILE, line)
    assert brain.missions.get(ann.id, mission.id).status == "active"


def test_an_unedited_export_imports_as_no_change_whatever_the_text(brain, ann, tmp_path):
    mission = brain.missions.create(
        ann.id,
        title="-",
        goal="  indented first line\n\\back\ntwo\u2028x",
        milestones=[{"name": "", "done": True}, " pad", "json:x", {"name": "a", "done": False, "extra": 1}],
    )
    texts = ["ends with newline\n", "  indented", "-", "", "use <br> tags", "a\\<br>b", "cr\rlf\r\n", "a|b\\"]
    tasks = [
        brain.tasks.create(ann.id, title=f"t{i}", mission_id=mission.id, description=x)
        for i, x in enumerate(texts)
    ]
    tasks.append(brain.tasks.create(ann.id, title=" spaced title ", mission_id=mission.id))
    tasks.append(brain.tasks.create(ann.id, title="-", mission_id=mission.id))
    export_mission(brain, ann.id, mission.id, tmp_path)
    report = import_mission(brain, ann.id, tmp_path)
    assert (report.mission_updated, report.updated, report.created) == (False, (), ())
    again = brain.missions.get(ann.id, mission.id)
    assert (again.title, again.goal, again.milestones, again.version) == (
        mission.title,
        mission.goal,
        mission.milestones,
        mission.version,
    )
    for task in tasks:
        now = brain.tasks.get(ann.id, task.id)
        assert (now.title, now.description, now.version) == (task.title, task.description, task.version)
