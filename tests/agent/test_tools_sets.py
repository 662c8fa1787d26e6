"""The memory and brain tool sets on real stores, called the way a model calls them (JSON in, data out)."""

from __future__ import annotations

import json

import pytest

import mosaic_storage as ms
from mosaic_agent.tools import BrainTools, MemoryTools, ToolRegistry, Workspace, WorkspaceTools
from mosaic_memory import open_memory
from mosaic_storage.brain import Brain


def _registry(*sets) -> ToolRegistry:
    reg = ToolRegistry()
    for tool_set in sets:
        reg.extend(tool_set)
    return reg


@pytest.fixture
def sqlite_brain(sqlite_store, tmp_path) -> Brain:
    ms.upgrade(sqlite_store)
    return Brain(sqlite_store, workspace_root=tmp_path / "workspaces")


def _memory_round_trip(store: ms.Store) -> None:
    with open_memory(store) as memory:
        alice = ToolRegistry()
        alice.extend(MemoryTools(memory, "alice"))
        bob = ToolRegistry()
        bob.extend(MemoryTools(memory, "bob"))

        saved = alice.call(
            "memory.remember", '{"text": "Alice prefers short answers in French", "category": "style"}'
        )
        assert saved.ok, saved
        assert bob.call("memory.remember", {"text": "Bob likes long answers about French cooking"}).ok

        hits = alice.call("memory.recall", {"query": "answers in French", "limit": 5})
        assert hits.ok
        assert [h["text"] for h in hits.data] == ["Alice prefers short answers in French"]
        assert hits.data[0]["category"] == "style"
        stored = memory.insights.get(saved.data["id"], user_id="alice")
        assert stored is not None and stored.source == "agent"

        assert alice.call("memory.set_preference", {"key": "units", "value": "metric"}).ok
        assert alice.call("memory.get_preference", {"key": "units"}).data == {
            "key": "units",
            "found": True,
            "value": "metric",
            "category": None,
        }
        assert bob.call("memory.get_preference", {"key": "units"}).data == {"key": "units", "found": False}

        # A preference the user locked stays as it is; the model is told why.
        memory.preferences.set("alice", "language", "fr", source="user", mutable=False)
        refused = alice.call("memory.set_preference", {"key": "language", "value": "en"})
        assert not refused.ok and "immutable" in refused.content
        assert memory.preferences.get("alice", "language") == "fr"

        # The model cannot pick another user: there is no user argument to give.
        sneaky = alice.call("memory.recall", {"query": "cooking", "user_id": "bob"})
        assert not sneaky.ok and "unknown argument(s) 'user_id'" in sneaky.content
        assert alice.call("memory.recall", {"query": "cooking", "limit": 50}).content.startswith(
            "error: limit"
        )


def test_memory_tools_on_sqlite(sqlite_store):
    ms.upgrade(sqlite_store)
    _memory_round_trip(sqlite_store)


def test_memory_tools_on_postgresql(postgres_store):
    ms.upgrade(postgres_store)
    _memory_round_trip(postgres_store)


def _brain_round_trip(brain: Brain) -> None:
    alice = brain.users.create(name="Alice").id
    bob = brain.users.create(name="Bob").id
    tools = _registry(BrainTools(brain, alice))
    others = _registry(BrainTools(brain, bob))

    project = tools.call("brain.add_project", {"name": "Launch", "description": "ship it"})
    assert project.ok, project
    pid = project.data["id"]
    assert project.data["owner_id"] == alice and project.data["version"] == 1

    listed = tools.call("brain.list_projects", {})
    assert [p["name"] for p in listed.data["items"]] == ["Launch"] and listed.data["next_cursor"] is None
    assert others.call("brain.list_projects", {}).data["items"] == []
    hidden = others.call("brain.show_project", {"project_id": pid})
    assert not hidden.ok and "not found" in hidden.content.lower()

    mission = tools.call(
        "brain.add_mission", {"title": "Beta", "project_id": pid, "milestones": ["invite", "feedback"]}
    )
    assert mission.ok and mission.data["milestones"] == ["invite", "feedback"]
    task = tools.call(
        "brain.add_task",
        json.dumps(
            {"title": "Write docs", "mission_id": mission.data["id"], "priority": "high", "tags": ["docs"]}
        ),
    )
    assert task.ok, task
    assert task.data["project_id"] == pid and task.data["tags"] == ["docs"]
    bad = tools.call("brain.add_task", {"title": "x", "priority": "urgent"})
    assert not bad.ok and "'priority' must be one of 'low', 'medium', 'high', 'critical'" in bad.content

    done = tools.call("brain.update_task", {"task_id": task.data["id"], "version": 1, "status": "done"})
    assert done.ok and done.data["status"] == "done" and done.data["version"] == 2
    assert done.data["title"] == "Write docs"  # left out: unchanged
    stale = tools.call("brain.update_task", {"task_id": task.data["id"], "version": 1, "title": "late"})
    assert not stale.ok and "is at version 2, not 1" in stale.content
    assert brain.tasks.get(alice, task.data["id"]).title == "Write docs"

    assert [t["title"] for t in tools.call("brain.list_tasks", {"status": "done"}).data["items"]] == [
        "Write docs"
    ]
    assert tools.call("brain.list_tasks", {"status": "blocked"}).data["items"] == []
    assert tools.call("brain.list_missions", {"project_id": pid}).data["items"][0]["title"] == "Beta"
    renamed = tools.call("brain.update_project", {"project_id": pid, "version": 1, "name": "Launch v2"})
    assert renamed.ok and renamed.data["description"] == "ship it"
    denied = others.call("brain.update_project", {"project_id": pid, "version": 2, "name": "mine"})
    assert not denied.ok
    assert brain.projects.get(alice, pid).name == "Launch v2"


def test_brain_tools_on_sqlite(sqlite_brain):
    _brain_round_trip(sqlite_brain)


def test_brain_tools_on_postgresql(postgres_store, tmp_path):
    ms.upgrade(postgres_store)
    _brain_round_trip(Brain(postgres_store, workspace_root=tmp_path / "ws"))


def test_a_session_registry_combines_the_sets_and_filters_them(sqlite_brain, tmp_path):
    alice = sqlite_brain.users.create(name="Alice").id
    root = sqlite_brain.workspaces.path(alice, create=True)
    with open_memory(sqlite_brain.store) as memory:
        reg = _registry(
            MemoryTools(memory, alice), BrainTools(sqlite_brain, alice), WorkspaceTools(Workspace(root))
        )
        assert len(reg) == 4 + 12 + 9
        allowed = ["memory.recall", "workspace.*"]
        names = [s["function"]["name"] for s in reg.schemas(allowed, style="openai")]
        assert names[0] == "memory__recall" and len(names) == 10
        assert all(n.startswith("workspace__") for n in names[1:])
        assert not reg.call("brain.add_project", {"name": "x"}, allowed=allowed).ok
        assert sqlite_brain.projects.list(alice).items == ()
        assert reg.call("workspace__write_file", {"path": "a.md", "content": "hi"}, allowed=allowed).ok
        assert (root / "a.md").read_text() == "hi"


def test_builtin_tools_build_a_session_registry_with_the_configured_workspace(sqlite_brain, tmp_path):
    from mosaic_agent.tools import ToolsConfig, builtin_tools
    from mosaic_storage.brain import NotFound

    ann = sqlite_brain.users.create(name="Ann").id
    bob = sqlite_brain.users.create(name="Bob").id
    team = sqlite_brain.teams.create(ann, name="Platform")
    config = ToolsConfig.from_config(
        {"workspace_root": str(tmp_path / "configured"), "tools": {"max_result_chars": 300}}
    )
    with open_memory(sqlite_brain.store) as memory:
        reg = builtin_tools(ann, memory=memory, brain=sqlite_brain, team_id=team.id, config=config)
        assert len(reg) == 25 and reg.max_result_chars == 300
        assert reg.call("workspace.write_file", {"path": "plan.md", "content": "p" * 1000}).ok
        assert (tmp_path / "configured" / "teams" / team.id / "plan.md").exists()
        assert "truncated" in reg.call("workspace.read_file", {"path": "plan.md"}).content
        with pytest.raises(NotFound):
            builtin_tools(bob, brain=sqlite_brain, team_id=team.id, config=config)
        only_memory = builtin_tools(bob, memory=memory)
        assert only_memory.names() == [
            "memory.remember",
            "memory.recall",
            "memory.set_preference",
            "memory.get_preference",
        ]
