"""The brain's repositories, on SQLite, PostgreSQL and PostgreSQL + pgvector: access, paging, versions."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

import mosaic_storage as ms
from mosaic_storage.brain import (
    AccessDenied,
    Brain,
    ConflictError,
    InvalidValue,
    NotFound,
    Page,
    Task,
    to_dict,
)


@pytest.fixture
def brain(migrated_store, tmp_path):
    return Brain(migrated_store, workspace_root=tmp_path / "workspaces")


@pytest.fixture
def people(brain):
    """Ann owns team T; Bob is an admin, Cid a member; Dan is in no team."""
    names = ("ann", "bob", "cid", "dan")
    ann, bob, cid, dan = (brain.users.create(name=n, email=f"{n}@example.com") for n in names)
    team = brain.teams.create(ann.id, name="T", slug="t")
    brain.teams.add_member(ann.id, team.id, bob.id, "admin")
    brain.teams.add_member(ann.id, team.id, cid.id)
    return attrs.make_class("People", ["ann", "bob", "cid", "dan", "team"])(ann, bob, cid, dan, team)


def test_records_are_frozen_attrs_and_round_trip(brain, people):
    project = brain.projects.create(people.ann.id, name="Atlas", description="maps", metadata={"k": [1]})
    again = brain.projects.get(people.ann.id, project.id)
    assert again == project
    assert again.created_at.tzinfo is not None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        again.name = "other"  # type: ignore[misc]
    as_json = to_dict(again)
    assert as_json["metadata"] == {"k": [1]}
    assert isinstance(as_json["created_at"], str)


def test_a_personal_project_is_seen_and_changed_only_by_its_owner(brain, people):
    project = brain.projects.create(people.dan.id, name="Diary")
    assert [p.id for p in brain.projects.list(people.dan.id)] == [project.id]
    for other in (people.ann, people.bob, people.cid):
        assert project.id not in [p.id for p in brain.projects.list(other.id)]
        with pytest.raises(NotFound):
            brain.projects.get(other.id, project.id)
        with pytest.raises(NotFound):
            brain.projects.update(other.id, project.id, version=1, name="mine now")
    assert brain.projects.get(people.dan.id, project.id).name == "Diary"


def test_team_members_read_team_records_and_only_owners_and_admins_change_them(brain, people):
    project = brain.projects.create(people.bob.id, name="Shared", team_id=people.team.id)
    assert project.team_id == people.team.id and project.owner_id is None
    assert brain.projects.get(people.cid.id, project.id) == project
    with pytest.raises(AccessDenied):
        brain.projects.update(people.cid.id, project.id, version=1, name="by a member")
    with pytest.raises(AccessDenied):
        brain.projects.create(people.cid.id, name="member's", team_id=people.team.id)
    with pytest.raises(NotFound):
        brain.projects.create(people.dan.id, name="stranger's", team_id=people.team.id)
    changed = brain.projects.update(people.bob.id, project.id, version=1, name="by an admin")
    changed = brain.projects.update(people.ann.id, project.id, version=changed.version, status="archived")
    assert (changed.name, changed.status, changed.version) == ("by an admin", "archived", 3)


def test_membership_changes_take_effect_on_the_next_call(brain, people):
    project = brain.projects.create(people.ann.id, name="Shared", team_id=people.team.id)
    task = brain.tasks.create(people.ann.id, title="t", project_id=project.id)
    brain.teams.remove_member(people.ann.id, people.team.id, people.cid.id)
    with pytest.raises(NotFound):
        brain.tasks.get(people.cid.id, task.id)
    assert len(brain.tasks.list(people.cid.id)) == 0
    brain.teams.add_member(people.bob.id, people.team.id, people.cid.id, "admin")
    updated = brain.tasks.update(people.cid.id, task.id, version=1, status="in_progress")
    assert updated.status == "in_progress"
    brain.teams.set_role(people.ann.id, people.team.id, people.cid.id, "member")
    with pytest.raises(AccessDenied):
        brain.tasks.update(people.cid.id, task.id, version=2, status="done")


def test_unseen_records_look_exactly_like_missing_ones(brain, people):
    task = brain.tasks.create(people.dan.id, title="private")
    missing = ms.new_id()
    for record_id in (task.id, missing):
        with pytest.raises(NotFound) as caught:
            brain.tasks.get(people.ann.id, record_id)
        assert str(caught.value).startswith(f"task {record_id} not found")
        with pytest.raises(NotFound):
            brain.tasks.update(people.ann.id, record_id, version=1, title="x")
        with pytest.raises(NotFound):
            brain.tasks.delete(people.ann.id, record_id, version=1)
    assert brain.tasks.get(people.dan.id, task.id).title == "private"


def test_a_stale_update_raises_conflict_and_writes_nothing(brain, people):
    task = brain.tasks.create(people.ann.id, title="first")
    winner = brain.tasks.update(people.ann.id, task.id, version=task.version, title="second")
    with pytest.raises(ConflictError, match="version 2, not 1"):
        brain.tasks.update(people.ann.id, task.id, version=task.version, title="stale", priority="high")
    now = brain.tasks.get(people.ann.id, task.id)
    assert now == winner
    assert (now.title, now.priority, now.version) == ("second", "medium", 2)
    with pytest.raises(ConflictError):
        brain.tasks.delete(people.ann.id, task.id, version=1)
    assert brain.tasks.get(people.ann.id, task.id).version == 2


def test_update_changes_only_given_fields_and_none_clears(brain, people):
    due = dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC)
    task = brain.tasks.create(
        people.ann.id, title="t", description="d", assignee_id=people.ann.id, due_at=due, tags=["a"]
    )
    assert task.due_at == due and task.tags == ("a",)
    updated = brain.tasks.update(people.ann.id, task.id, version=1, assignee_id=None, tags=["b", "c"])
    assert updated.assignee_id is None
    assert updated.tags == ("b", "c")
    assert (updated.description, updated.due_at) == ("d", due)
    assert updated.updated_at >= task.updated_at
    assert brain.tasks.get(people.ann.id, task.id) == updated


def test_keyset_pages_are_complete_stable_and_in_id_order(brain, people):
    created = [brain.tasks.create(people.ann.id, title=f"t{i}").id for i in range(7)]
    seen: list[str] = []
    cursor = first_cursor = late = None
    pages = 0
    while True:
        page = brain.tasks.list(people.ann.id, cursor=cursor, limit=3)
        assert isinstance(page, Page) and all(isinstance(t, Task) for t in page)
        if pages == 0:
            # Updating and adding while paging neither repeats nor skips what was there.
            brain.tasks.update(people.ann.id, page.items[0].id, version=1, title="moved")
            late = brain.tasks.create(people.ann.id, title="late").id
            first_cursor = page.next_cursor
        seen.extend(t.id for t in page)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert set(created) <= set(seen)
    # A record added meanwhile shows up when its id sorts after the cursor: always, unless it
    # was made in the same millisecond as the cursor's record and drew smaller random bits.
    assert (late in seen) == (late > first_cursor)
    assert pages == 3
    with pytest.raises(InvalidValue):
        brain.tasks.list(people.ann.id, limit=0)


def test_task_filters_status_project_mission_assignee_and_updated_since(brain, people):
    project = brain.projects.create(people.ann.id, name="P", team_id=people.team.id)
    other = brain.projects.create(people.ann.id, name="Q")
    mission = brain.missions.create(people.ann.id, title="M", project_id=project.id)
    a = brain.tasks.create(people.ann.id, title="a", project_id=project.id, assignee_id=people.cid.id)
    b = brain.tasks.create(people.ann.id, title="b", mission_id=mission.id, status="blocked")
    c = brain.tasks.create(people.ann.id, title="c", project_id=other.id, status="blocked")
    ann = people.ann.id

    def ids(**filters):
        return [t.id for t in brain.tasks.list(ann, **filters)]

    # Pages are in id order; UUIDv7 ids made in the same millisecond sort by their random bits.
    assert ids(project_id=project.id) == sorted([a.id, b.id])
    assert ids(status="blocked") == sorted([b.id, c.id])
    assert ids(status=["blocked", "not_started"], project_id=project.id) == sorted([a.id, b.id])
    assert ids(mission_id=mission.id) == [b.id]
    assert ids(assignee_id=people.cid.id) == [a.id]
    assert b.project_id == project.id
    later = brain.tasks.update(ann, c.id, version=1, status="done")
    assert ids(updated_since=later.updated_at) == [c.id]
    assert [t.id for t in brain.tasks.list(people.cid.id)] == sorted([a.id, b.id])
    with pytest.raises(InvalidValue, match="not_started"):
        brain.tasks.list(ann, status="finished")


def test_invalid_values_and_bad_placement_are_rejected_before_writing(brain, people):
    project = brain.projects.create(people.ann.id, name="P")
    other = brain.projects.create(people.ann.id, name="Q")
    mission = brain.missions.create(people.ann.id, title="M", project_id=project.id)
    with pytest.raises(InvalidValue):
        brain.tasks.create(people.ann.id, title="x", priority="urgent")
    with pytest.raises(InvalidValue):
        brain.missions.create(people.ann.id, title="x", status="dreaming")
    with pytest.raises(InvalidValue, match="another project"):
        brain.tasks.create(people.ann.id, title="x", mission_id=mission.id, project_id=other.id)
    with pytest.raises(InvalidValue, match="cannot see"):
        brain.tasks.create(people.ann.id, title="x", project_id=project.id, assignee_id=people.dan.id)
    assert len(brain.tasks.list(people.ann.id)) == 0


def test_assignees_must_see_the_project(brain, people):
    project = brain.projects.create(people.ann.id, name="P", team_id=people.team.id)
    task = brain.tasks.create(people.ann.id, title="t", project_id=project.id, assignee_id=people.cid.id)
    with pytest.raises(InvalidValue):
        brain.tasks.update(people.ann.id, task.id, version=1, assignee_id=people.dan.id)
    assert brain.tasks.get(people.ann.id, task.id).version == 1
    moved = brain.tasks.update(people.ann.id, task.id, version=1, assignee_id=people.bob.id)
    assert moved.assignee_id == people.bob.id


def test_missions_hold_milestones_and_follow_their_project(brain, people):
    project = brain.projects.create(people.ann.id, name="P", team_id=people.team.id)
    mission = brain.missions.create(
        people.bob.id, title="Launch", project_id=project.id, goal="ship", milestones=[{"name": "beta"}]
    )
    assert mission.milestones == ({"name": "beta"},)
    assert brain.missions.get(people.cid.id, mission.id) == mission
    with pytest.raises(AccessDenied):
        brain.missions.update(people.cid.id, mission.id, version=1, status="active")
    done = brain.missions.update(
        people.ann.id, mission.id, version=1, status="active", milestones=[{"name": "beta", "done": True}]
    )
    assert done.milestones == ({"name": "beta", "done": True},)
    assert [m.id for m in brain.missions.list(people.cid.id, status="active")] == [mission.id]
    assert len(brain.missions.list(people.dan.id)) == 0


def test_deleting_a_project_deletes_its_missions_and_tasks(brain, people):
    project = brain.projects.create(people.ann.id, name="P", team_id=people.team.id)
    mission = brain.missions.create(people.ann.id, title="M", project_id=project.id)
    task = brain.tasks.create(people.ann.id, title="t", mission_id=mission.id)
    with pytest.raises(AccessDenied):
        brain.projects.delete(people.cid.id, project.id, version=1)
    brain.projects.delete(people.bob.id, project.id, version=1)
    gone = ((brain.projects, project.id), (brain.missions, mission.id), (brain.tasks, task.id))
    for repo, record_id in gone:
        with pytest.raises(NotFound):
            repo.get(people.ann.id, record_id)


def test_task_dependencies_are_listed_and_cycles_refused(brain, people):
    a, b, c = (brain.tasks.create(people.ann.id, title=n) for n in "abc")
    brain.tasks.add_dependency(people.ann.id, c.id, b.id)
    brain.tasks.add_dependency(people.ann.id, b.id, a.id)
    assert brain.tasks.get(people.ann.id, b.id).version == 2  # a dependency is part of the task
    brain.tasks.add_dependency(people.ann.id, b.id, a.id)  # idempotent
    assert brain.tasks.get(people.ann.id, b.id).version == 2
    assert [t.id for t in brain.tasks.dependencies(people.ann.id, b.id)] == [a.id]
    with pytest.raises(ConflictError, match="cycle") as cycle:
        brain.tasks.add_dependency(people.ann.id, a.id, c.id)
    # The path may cross tasks the actor cannot see: the message names none of them.
    assert not any(task.id in str(cycle.value) for task in (a, b, c))
    with pytest.raises(ConflictError):
        brain.tasks.add_dependency(people.ann.id, a.id, a.id)
    private = brain.tasks.create(people.dan.id, title="d")
    with pytest.raises(NotFound):
        brain.tasks.add_dependency(people.ann.id, a.id, private.id)
    brain.tasks.remove_dependency(people.ann.id, b.id, a.id)
    assert brain.tasks.dependencies(people.ann.id, b.id) == ()
    assert brain.tasks.get(people.ann.id, b.id).version == 3
    brain.tasks.remove_dependency(people.ann.id, b.id, a.id)  # nothing to remove: no new version
    assert brain.tasks.get(people.ann.id, b.id).version == 3
    brain.tasks.add_dependency(people.ann.id, a.id, c.id)
    assert [t.id for t in brain.tasks.dependencies(people.ann.id, a.id)] == [c.id]


def test_system_agents_are_visible_to_all_and_changed_by_no_actor(brain, people):
    system = brain.agents.create_system(name="helper", model="m", allowed_tools=["search"])
    mine = brain.agents.create(people.dan.id, name="mine", skills=["x"])
    for user in (people.ann, people.dan):
        assert brain.agents.get(user.id, system.id) == system
    with pytest.raises(AccessDenied):
        brain.agents.update(people.ann.id, system.id, version=1, name="hijacked")
    assert brain.agents.get(people.dan.id, system.id).name == "helper"
    with pytest.raises(NotFound):
        brain.agents.get(people.ann.id, mine.id)
    dans = [a.id for a in brain.agents.list(people.dan.id, limit=500, system=False)]
    assert dans == [mine.id]
    assert system.id in [a.id for a in brain.agents.list(people.dan.id, system=True, limit=500)]


def test_team_agents_follow_team_roles(brain, people):
    agent = brain.agents.create(people.bob.id, name="team bot", team_id=people.team.id, allowed_tools=["a"])
    assert brain.agents.get(people.cid.id, agent.id).allowed_tools == ("a",)
    with pytest.raises(AccessDenied):
        brain.agents.create(people.cid.id, name="nope", team_id=people.team.id)
    with pytest.raises(AccessDenied):
        brain.agents.update(people.cid.id, agent.id, version=1, model="x")
    with pytest.raises(NotFound):
        brain.agents.get(people.dan.id, agent.id)
    updated = brain.agents.update(people.ann.id, agent.id, version=1, model="x", allowed_tools=["a", "b"])
    assert (updated.model, updated.allowed_tools, updated.version) == ("x", ("a", "b"), 2)


def test_team_roles_owner_admin_member(brain, people):
    team = people.team.id
    with pytest.raises(AccessDenied):
        brain.teams.add_member(people.cid.id, team, people.dan.id)
    with pytest.raises(AccessDenied):
        brain.teams.add_member(people.bob.id, team, people.dan.id, "owner")
    with pytest.raises(NotFound):
        brain.teams.add_member(people.dan.id, team, people.dan.id)
    with pytest.raises(ConflictError):
        brain.teams.add_member(people.ann.id, team, people.cid.id)
    with pytest.raises(AccessDenied):
        brain.teams.set_role(people.bob.id, team, people.ann.id, "member")
    with pytest.raises(ConflictError, match="no owner"):
        brain.teams.remove_member(people.ann.id, team, people.ann.id)
    with pytest.raises(InvalidValue):
        brain.teams.add_member(people.ann.id, team, people.dan.id, "boss")
    brain.teams.add_member(people.bob.id, team, people.dan.id)
    brain.teams.remove_member(people.dan.id, team, people.dan.id)  # anyone may leave
    brain.teams.set_role(people.ann.id, team, people.bob.id, "owner")
    brain.teams.remove_member(people.bob.id, team, people.ann.id)
    roles = {m.user_id: m.role for m in brain.teams.members(people.cid.id, team)}
    assert roles == {people.bob.id: "owner", people.cid.id: "member"}
    assert brain.teams.role(people.cid.id, team) == "member"
    assert brain.teams.list(people.ann.id) == ()
    with pytest.raises(NotFound):
        brain.teams.get(people.ann.id, team)


def test_users_see_themselves_and_teammates_and_change_only_themselves(brain, people):
    assert brain.users.get(people.cid.id, people.ann.id).name == "ann"
    with pytest.raises(NotFound):
        brain.users.get(people.dan.id, people.ann.id)
    with pytest.raises(AccessDenied):
        brain.users.update(people.cid.id, people.ann.id, name="x")
    me = brain.users.update(people.dan.id, people.dan.id, name="Daniel")
    assert brain.users.get(people.dan.id, people.dan.id) == me
    with pytest.raises(ConflictError):
        brain.users.create(name="again", email="ann@example.com")
    with pytest.raises(ConflictError):
        brain.teams.create(people.dan.id, name="dup", slug="t")


def test_conversations_are_private_and_messages_keep_their_order(brain, people):
    conv = brain.conversations.create(people.ann.id, title="Planning")
    appended = [brain.conversations.append(people.ann.id, conv.id, "user", f"m{i}") for i in range(5)]
    assert [m.seq for m in appended] == [1, 2, 3, 4, 5]
    window = brain.conversations.messages(people.ann.id, conv.id, last=2)
    assert [m.content for m in window] == ["m3", "m4"]
    earlier = brain.conversations.messages(people.ann.id, conv.id, last=2, before=window[0].id)
    assert [m.content for m in earlier] == ["m1", "m2"]
    assert [m.seq for m in brain.conversations.messages(people.ann.id, conv.id)] == [1, 2, 3, 4, 5]
    for call in (
        lambda: brain.conversations.get(people.bob.id, conv.id),
        lambda: brain.conversations.append(people.bob.id, conv.id, "user", "hi"),
        lambda: brain.conversations.messages(people.bob.id, conv.id),
        lambda: brain.conversations.archive(people.bob.id, conv.id),
    ):
        with pytest.raises(NotFound):
            call()
    tool = brain.conversations.append(
        people.ann.id, conv.id, "tool", "42", tool_calls=[{"name": "calc"}], tool_call_id="c1"
    )
    assert (tool.seq, tool.tool_calls, tool.tool_call_id) == (6, ({"name": "calc"},), "c1")
    with pytest.raises(InvalidValue):
        brain.conversations.append(people.ann.id, conv.id, "robot", "x")


def test_archive_hides_from_the_default_list_and_search_matches_titles(brain, people):
    plan = brain.conversations.create(people.ann.id, title="Q3 Planning")
    chat = brain.conversations.create(people.ann.id, title="100% done?")
    brain.conversations.create(people.bob.id, title="Planning too")
    brain.conversations.archive(people.ann.id, plan.id)
    assert [c.id for c in brain.conversations.list(people.ann.id)] == [chat.id]
    assert [c.id for c in brain.conversations.list(people.ann.id, archived=True)] == [plan.id]
    assert len(brain.conversations.list(people.ann.id, archived=None)) == 2
    assert [c.id for c in brain.conversations.search(people.ann.id, "planning")] == [plan.id]
    assert [c.id for c in brain.conversations.search(people.ann.id, "%")] == [chat.id]
    assert brain.conversations.search(people.ann.id, "_") == ()
    renamed = brain.conversations.rename(people.ann.id, chat.id, "Finished")
    assert brain.conversations.get(people.ann.id, chat.id) == renamed


def test_conversations_refer_only_to_visible_agents_and_projects(brain, people):
    private = brain.projects.create(people.dan.id, name="D")
    with pytest.raises(NotFound):
        brain.conversations.create(people.ann.id, title="x", project_id=private.id)
    system = brain.agents.create_system(name="s")
    conv = brain.conversations.create(people.ann.id, title="x", agent_id=system.id)
    assert conv.agent_id == system.id


def test_workspaces_for_users_and_their_teams(brain, people, tmp_path):
    root = (tmp_path / "workspaces").resolve()
    assert brain.workspaces.path(people.dan.id) == root / "users" / people.dan.id
    team_dir = brain.workspaces.path(people.cid.id, team_id=people.team.id, create=True)
    assert team_dir == root / "teams" / people.team.id and team_dir.is_dir()
    with pytest.raises(NotFound):
        brain.workspaces.path(people.dan.id, team_id=people.team.id)


def test_teammates_see_names_but_never_each_others_email(brain, people):
    seen = brain.users.get(people.cid.id, people.ann.id)
    assert seen.name == "ann"
    assert seen.email is None
    assert brain.users.get(people.ann.id, people.ann.id).email == "ann@example.com"


def test_changing_an_email_resets_its_verification(brain, people, migrated_store):
    import sqlalchemy as sa

    from mosaic_storage.schema import User as UserRow

    with migrated_store.engine.begin() as conn:
        conn.execute(sa.update(UserRow).where(UserRow.id == people.ann.id).values(email_verified=True))
    brain.users.update(people.ann.id, people.ann.id, email="ann@new.example")
    with migrated_store.engine.connect() as conn:
        verified = conn.execute(sa.select(UserRow.email_verified).where(UserRow.id == people.ann.id)).scalar()
    assert verified is False


def test_a_write_breaking_a_data_rule_is_a_conflict_not_a_driver_error(brain, people):
    with pytest.raises(ConflictError):
        brain.users.update(people.bob.id, people.bob.id, email="ann@example.com")
    assert brain.users.get(people.bob.id, people.bob.id).email == "bob@example.com"


def test_agents_are_deleted_by_their_writers_at_a_version_and_conversations_keep_going(brain, people):
    personal = brain.agents.create(people.dan.id, name="mine")
    team_agent = brain.agents.create(people.ann.id, name="ours", team_id=people.team.id)
    system = brain.agents.create_system(name="helper")
    talk = brain.conversations.create(people.dan.id, agent_id=personal.id)
    with pytest.raises(NotFound):
        brain.agents.delete(people.ann.id, personal.id, version=1)
    with pytest.raises(AccessDenied):
        brain.agents.delete(people.cid.id, team_agent.id, version=1)
    with pytest.raises(AccessDenied):
        brain.agents.delete(people.ann.id, system.id, version=1)
    with pytest.raises(ConflictError):
        brain.agents.delete(people.dan.id, personal.id, version=2)
    brain.agents.delete(people.dan.id, personal.id, version=1)
    brain.agents.delete(people.bob.id, team_agent.id, version=1)
    with pytest.raises(NotFound):
        brain.agents.get(people.dan.id, personal.id)
    assert brain.conversations.get(people.dan.id, talk.id).agent_id is None


def test_only_its_user_deletes_a_conversation_and_its_messages_go_with_it(brain, people, migrated_store):
    import sqlalchemy as sa

    from mosaic_storage.schema import Message as MessageRow

    conv = brain.conversations.create(people.ann.id, title="To forget")
    kept = brain.conversations.create(people.ann.id, title="To keep")
    for text in ("a", "b"):
        brain.conversations.append(people.ann.id, conv.id, "user", text)
    brain.conversations.append(people.ann.id, kept.id, "user", "stays")
    with pytest.raises(NotFound):
        brain.conversations.delete(people.bob.id, conv.id)
    assert len(brain.conversations.messages(people.ann.id, conv.id)) == 2
    brain.conversations.delete(people.ann.id, conv.id)
    with pytest.raises(NotFound):
        brain.conversations.get(people.ann.id, conv.id)
    with pytest.raises(NotFound):
        brain.conversations.delete(people.ann.id, conv.id)
    with migrated_store.engine.connect() as conn:
        left = conn.execute(sa.select(MessageRow.conversation_id)).scalars().all()
    assert left == [kept.id]
    assert [c.id for c in brain.conversations.list(people.ann.id)] == [kept.id]


def test_project_statuses_are_checked_before_writing_and_by_the_database(brain, people, migrated_store):
    import sqlalchemy as sa

    from mosaic_storage.schema import Project as ProjectRow

    with pytest.raises(InvalidValue, match="archived"):
        brain.projects.create(people.ann.id, name="P", status="someday")
    project = brain.projects.create(people.ann.id, name="P", status="paused")
    with pytest.raises(InvalidValue):
        brain.projects.update(people.ann.id, project.id, version=1, status="someday")
    with pytest.raises(InvalidValue):
        brain.projects.list(people.ann.id, status="someday")
    assert brain.projects.get(people.ann.id, project.id) == project
    assert [p.id for p in brain.projects.list(people.ann.id, status=["paused", "active"])] == [project.id]
    with pytest.raises(sa.exc.IntegrityError), migrated_store.engine.begin() as conn:
        conn.execute(sa.update(ProjectRow).where(ProjectRow.id == project.id).values(status="someday"))
