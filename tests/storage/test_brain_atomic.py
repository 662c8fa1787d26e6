"""`Brain.atomic`: several repository calls as one transaction, on every backend."""

from __future__ import annotations

import pytest

from mosaic_storage.brain import Brain, ConflictError, NotFound


@pytest.fixture
def brain(migrated_store, tmp_path):
    return Brain(migrated_store, workspace_root=tmp_path / "workspaces")


def test_an_atomic_block_keeps_all_of_its_writes(brain):
    ann = brain.users.create(name="ann", email="ann@example.com")
    project = brain.projects.create(ann.id, name="P")
    with brain.atomic():
        first = brain.tasks.create(ann.id, title="one", project_id=project.id)
        # Reads inside the block see the block's own writes.
        assert brain.tasks.get(ann.id, first.id).title == "one"
        brain.tasks.update(ann.id, first.id, version=1, status="done")
        brain.tasks.create(ann.id, title="two", project_id=project.id)
    titles = {t.title: t.status for t in brain.tasks.list(ann.id, project_id=project.id)}
    assert titles == {"one": "done", "two": "not_started"}


def test_a_conflict_inside_an_atomic_block_keeps_none_of_its_writes(brain):
    ann = brain.users.create(name="ann", email="ann@example.com")
    project = brain.projects.create(ann.id, name="P")
    task = brain.tasks.create(ann.id, title="t", project_id=project.id)
    brain.tasks.update(ann.id, task.id, version=1, title="changed elsewhere")
    with pytest.raises(ConflictError), brain.atomic():
        brain.tasks.create(ann.id, title="new", project_id=project.id)
        brain.projects.update(ann.id, project.id, version=1, name="renamed")
        brain.tasks.update(ann.id, task.id, version=1, status="done")  # stale: version is 2
    assert [t.title for t in brain.tasks.list(ann.id)] == ["changed elsewhere"]
    assert brain.projects.get(ann.id, project.id).name == "P"


def test_an_integrity_error_inside_an_atomic_block_is_a_conflict_and_keeps_nothing(brain):
    ann = brain.users.create(name="ann", email="ann@example.com")
    with pytest.raises(ConflictError, match="already exists"), brain.atomic():
        brain.users.create(name="bob", email="bob@example.com", id="bob")
        brain.users.create(name="ann again", email="ann@example.com")
    with pytest.raises(NotFound):
        brain.users.get(ann.id, "bob")


def test_atomic_blocks_do_not_nest(brain):
    with pytest.raises(RuntimeError, match="nest"), brain.atomic(), brain.atomic():
        pass
