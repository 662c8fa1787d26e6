"""``mosaic worker`` and ``mosaic jobs``: handlers imported by name; the queue seen and repaired."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import mosaic_storage as ms

SRC = Path(__file__).resolve().parents[2] / "src"

HANDLERS = """
import json, os
from mosaic_storage.queue import job_handler

@job_handler("greet")
def greet(job):
    with open(os.environ["GREETED"], "a") as out:
        out.write(job.payload["name"] + "\\n")

@job_handler("explode")
def explode(job):
    raise ValueError("no such user")
"""


@pytest.fixture
def url(tmp_path: Path) -> str:
    # One backend: the CLI only calls the library, whose suite runs on every backend.
    url = f"sqlite:///{tmp_path}/jobs.db"
    with ms.open_store(url) as store:
        ms.upgrade(store)
    return url


def test_worker_runs_imported_handlers_and_jobs_commands_manage_the_queue(
    mosaic, url: str, tmp_path: Path
) -> None:
    (tmp_path / "my_handlers.py").write_text(HANDLERS)
    greeted = tmp_path / "greeted.txt"
    env = {"PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)]), "GREETED": str(greeted)}

    def run(*args: str) -> object:
        done = mosaic(*args, "--url", url, env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if "--json" in args else done.stdout

    for name in ("Ada", "Grace"):
        run("jobs", "enqueue", "greet", "--payload", json.dumps({"name": name}), "--json")
    first = run("jobs", "enqueue", "explode", "--max-attempts", "1", "--dedupe-key", "x", "--json")
    again = run("jobs", "enqueue", "explode", "--dedupe-key", "x", "--json")
    assert again["id"] == first["id"]  # type: ignore[index]
    assert run("jobs", "stats", "--json")["queued"] == 3  # type: ignore[index]

    report = run("worker", "--import", "my_handlers", "--until-idle", "--json", "--lease", "5")
    assert report == {"succeeded": 2, "failed": 1, "released": 0, "lost": 0, "stopped_by": None}
    assert sorted(greeted.read_text().split()) == ["Ada", "Grace"]

    [dead] = run("jobs", "list", "--status", "dead", "--json")  # type: ignore[misc]
    assert (dead["id"], dead["kind"], dead["last_error"]) == (
        first["id"],
        "explode",
        "ValueError: no such user",
    )  # type: ignore[index]
    assert "explode" in run("jobs", "list")  # type: ignore[operator]

    assert run("jobs", "retry", "--kind", "explode", "--json") == {"retried": 1}
    assert run("jobs", "stats", "--json")["queued"] == 1  # type: ignore[index]
    run("worker", "--import", "my_handlers", "--kind", "explode", "--until-idle")
    assert run("jobs", "purge", "--status", "dead", "--yes", "--json") == {"purged": 1, "status": "dead"}
    assert run("jobs", "list", "--status", "dead", "--json") == []


def test_jobs_commands_reject_bad_arguments_with_usage_errors(mosaic, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    bad = [
        ("jobs", "enqueue", "k", "--payload", "{nope"),
        ("jobs", "enqueue", "k", "--delay", "soon"),
        ("jobs", "retry"),
        ("jobs", "purge", "--status", "queued", "--yes"),
        ("jobs", "purge", "--status", "dead", "--older-than", "ages", "--yes"),
    ]
    for args in bad:
        done = mosaic(*args, "--url", url)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "error" in done.stderr.lower() or "usage" in done.stderr.lower()
    missing = mosaic("worker", "--import", "no_such_module_xyz", "--url", url)
    assert missing.returncode == 1
    assert "cannot import handler module 'no_such_module_xyz'" in missing.stderr
    unmigrated = mosaic("jobs", "stats", "--url", url)
    assert unmigrated.returncode == 1
    assert "mosaic db upgrade" in unmigrated.stderr
