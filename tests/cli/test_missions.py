"""``mosaic mission init|export|import`` and ``mosaic task next|done`` through the real CLI."""

from __future__ import annotations

import json

import pytest

import mosaic_storage as ms
from mosaic_storage.brain import Brain


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path}/brain.db"
    with ms.open_store(url) as store:
        ms.upgrade(store)
        ann = Brain(store).users.create(name="ann").id
    return {"url": url, "ann": ann}


def _json(out):
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_init_export_edit_import_next_and_done(mosaic, world, tmp_path):
    common = ("--user", world["ann"], "--url", world["url"])
    mission = _json(mosaic("mission", "init", "Ship the atlas", "--milestone", "maps", *common, "--json"))
    assert mission["status"] == "active" and mission["milestones"] == [{"name": "maps", "done": False}]
    for title, priority in (("low one", "low"), ("urgent one", "critical")):
        _json(
            mosaic(
                "task", "add", title, "--mission", mission["id"], "--priority", priority, *common, "--json"
            )
        )
    folder = tmp_path / "atlas"
    exported = _json(mosaic("mission", "export", mission["id"], "--dir", str(folder), *common, "--json"))
    assert sorted(p.rsplit("/", 1)[1] for p in exported["files"]) == ["MISSION-MANIFEST.md", "TASKS.md"]

    tasks_md = folder / "TASKS.md"
    tasks_md.write_text(tasks_md.read_text().replace("| low one | not_started |", "| low one | blocked |"))
    dry = _json(mosaic("mission", "import", "--dir", str(folder), "--dry-run", *common, "--json"))
    assert dry["dry_run"] is True and len(dry["updated"]) == 1
    report = _json(mosaic("mission", "import", "--dir", str(folder), *common, "--json"))
    assert len(report["updated"]) == 1 and len(report["unchanged"]) == 1

    first = _json(mosaic("task", "next", "--mission", mission["id"], *common, "--json"))
    assert first["title"] == "urgent one"
    done = _json(mosaic("task", "done", first["id"], *common, "--json"))
    assert done["status"] == "done"
    assert (
        _json(mosaic("task", "next", "--mission", mission["id"], *common, "--json")) is None
    )  # low one: blocked


def test_a_conflicting_import_exits_1_with_a_json_report_and_changes_nothing(mosaic, world, tmp_path):
    common = ("--user", world["ann"], "--url", world["url"])
    mission = _json(mosaic("mission", "init", "Goal", *common, "--json"))
    task = _json(mosaic("task", "add", "t", "--mission", mission["id"], *common, "--json"))
    _json(mosaic("mission", "export", mission["id"], "--dir", str(tmp_path), *common, "--json"))
    _json(mosaic("task", "update", task["id"], "--priority", "high", *common, "--json"))
    tasks_md = tmp_path / "TASKS.md"
    tasks_md.write_text(tasks_md.read_text().replace("| t | not_started |", "| t | in_progress |"))
    out = mosaic("mission", "import", "--dir", str(tmp_path), *common, "--json")
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["error"] == "conflict" and report["problems"][0]["id"] == task["id"]
    assert report["problems"][0]["current_version"] == 2
    shown = _json(mosaic("task", "show", task["id"], *common, "--json"))
    assert shown["status"] == "not_started"
    # Without --json: a readable message naming the file and line, exit 1, no traceback.
    out = mosaic("mission", "import", "--dir", str(tmp_path), *common)
    assert out.returncode == 1 and "TASKS.md:" in out.stderr and "Traceback" not in out.stderr
