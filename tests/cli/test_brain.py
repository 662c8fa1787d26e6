"""``mosaic project|mission|task``: the brain from the command line, acting as ``--user``."""

from __future__ import annotations

import json

import pytest

import mosaic_storage as ms
from mosaic_storage.brain import Brain


@pytest.fixture
def world(tmp_path):
    """A migrated SQLite file with users ann (team owner), cid (team member) and dan (no team)."""
    url = f"sqlite:///{tmp_path}/brain.db"
    with ms.open_store(url) as store:
        ms.upgrade(store)
        brain = Brain(store)
        ann, cid, dan = (brain.users.create(name=n).id for n in ("ann", "cid", "dan"))
        team = brain.teams.create(ann, name="T").id
        brain.teams.add_member(ann, team, cid)
    return {"url": url, "ann": ann, "cid": cid, "dan": dan, "team": team}


def _json(out):
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_project_task_and_mission_round_trip_as_json(mosaic, world):
    url, ann = world["url"], world["ann"]
    project = _json(
        mosaic("project", "add", "Atlas", "--team", world["team"], "--user", ann, "--url", url, "--json")
    )
    assert project["team_id"] == world["team"] and project["version"] == 1
    mission = _json(
        mosaic(
            "mission", "add", "Launch", "--project", project["id"], "--milestone", "beta",
            "--user", ann, "--url", url, "--json",
        )
    )  # fmt: skip
    assert mission["milestones"] == [{"name": "beta", "done": False}]
    task = _json(
        mosaic(
            "task", "add", "Write docs", "--mission", mission["id"], "--priority", "high", "--tag", "docs",
            "--assignee", world["cid"], "--due", "2030-01-02", "--user", ann, "--url", url, "--json",
        )
    )  # fmt: skip
    assert (task["project_id"], task["tags"], task["due_at"]) == (
        project["id"],
        ["docs"],
        "2030-01-02T00:00:00+00:00",
    )
    listed = _json(
        mosaic("task", "list", "--assignee", world["cid"], "--user", world["cid"], "--url", url, "--json")
    )
    assert [t["id"] for t in listed["items"]] == [task["id"]] and listed["next_cursor"] is None
    done = _json(
        mosaic("task", "update", task["id"], "--status", "done", "--user", ann, "--url", url, "--json")
    )
    assert (done["status"], done["version"]) == ("done", 2)
    shown = _json(mosaic("task", "show", task["id"], "--user", world["cid"], "--url", url, "--json"))
    assert shown == done
    missions = _json(
        mosaic("mission", "list", "--project", project["id"], "--user", ann, "--url", url, "--json")
    )
    assert [m["id"] for m in missions["items"]] == [mission["id"]]


def test_access_rules_and_stale_versions_fail_with_exit_1(mosaic, world):
    url = world["url"]
    project = _json(mosaic("project", "add", "Mine", "--user", world["dan"], "--url", url, "--json"))
    hidden = mosaic("project", "show", project["id"], "--user", world["ann"], "--url", url)
    assert hidden.returncode == 1 and "not found" in hidden.stderr and "Traceback" not in hidden.stderr
    denied = mosaic("project", "add", "Nope", "--team", world["team"], "--user", world["cid"], "--url", url)
    assert denied.returncode == 1 and "owners and admins" in denied.stderr
    stale = mosaic(
        "project",
        "update",
        project["id"],
        "--name",
        "x",
        "--version",
        "7",
        "--user",
        world["dan"],
        "--url",
        url,
    )
    assert stale.returncode == 1 and "version 1, not 7" in stale.stderr
    assert (
        _json(mosaic("project", "list", "--user", world["dan"], "--url", url, "--json"))["items"][0]["name"]
        == "Mine"
    )


def test_usage_errors_exit_2(mosaic, world):
    url = world["url"]
    assert mosaic("task", "list", "--url", url).returncode == 2  # no --user
    bad = mosaic("task", "add", "x", "--priority", "urgent", "--user", world["ann"], "--url", url)
    assert bad.returncode == 2 and "critical" in bad.stderr
    when = mosaic("task", "list", "--since", "yesterday", "--user", world["ann"], "--url", url)
    assert when.returncode == 2 and "ISO 8601" in when.stderr


def test_human_output_is_a_table(mosaic, world):
    url, ann = world["url"], world["ann"]
    mosaic("task", "add", "Plain task", "--user", ann, "--url", url)
    out = mosaic("task", "list", "--url", url, env={"MOSAIC_USER": ann})
    assert out.returncode == 0, out.stderr
    assert "Plain task" in out.stdout and "not_started" in out.stdout


def test_human_output_is_redacted_and_never_read_as_markup(mosaic, tmp_path):
    env = {"MOSAIC_DATABASE_URL": f"sqlite:///{tmp_path}/b.db", "MOSAIC_HOME": str(tmp_path)}
    assert mosaic("db", "upgrade", env=env).returncode == 0
    from mosaic_storage import open_store
    from mosaic_storage.brain import Brain

    with open_store(f"sqlite:///{tmp_path}/b.db") as store:
        user = Brain(store).users.create(name="u")
        Brain(store).tasks.create(user.id, title="[/]broken password=hunter22 postgresql://a:s3cretpw@h/db")
    out = mosaic("task", "list", "--user", user.id, env=env)
    assert out.returncode == 0, out.stderr
    assert "[/]broken" in out.stdout
    assert "hunter22" not in out.stdout
    assert "s3cretpw" not in out.stdout
