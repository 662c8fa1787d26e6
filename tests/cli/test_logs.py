"""``mosaic logs tail|query`` and ``mosaic summarize`` from the shell, JSON for scripts."""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import subprocess
import sys

import pytest

import mosaic_storage as ms
from mosaic_memory import NewLogEntry, open_memory

from .conftest import SRC

OLD = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)


@pytest.fixture
def url(tmp_path, mosaic):
    url = f"sqlite:///{tmp_path}/brain.db"
    assert mosaic("db", "upgrade", "--url", url).returncode == 0
    return url


def append(url, user, *entries):
    with ms.open_store(url) as store, open_memory(store) as memory:
        memory.logs.append_many(list(entries), user_id=user)


def test_query_pages_filters_and_scopes_by_user(mosaic, url):
    append(
        url,
        "u1",
        *[
            NewLogEntry("s1", f"line {i}", "info", None, None, OLD + dt.timedelta(minutes=i))
            for i in range(5)
        ],
        NewLogEntry("s2", "tool failed", "error", "tool"),
    )
    append(url, "u2", NewLogEntry("s1", "not yours"))
    first = mosaic("logs", "query", "--user", "u1", "--session", "s1", "--limit", "3", "--url", url, "--json")
    assert first.returncode == 0, first.stderr
    page = json.loads(first.stdout)
    assert [e["content"] for e in page["entries"]] == ["line 0", "line 1", "line 2"]
    rest = mosaic(
        "logs",
        "query",
        "--user",
        "u1",
        "--session",
        "s1",
        "--cursor",
        page["next_cursor"],
        "--url",
        url,
        "--json",
    )
    assert [e["content"] for e in json.loads(rest.stdout)["entries"]] == ["line 3", "line 4"]
    assert json.loads(rest.stdout)["next_cursor"] is None

    errors = mosaic(
        "logs", "query", "--user", "u1", "--min-level", "warning", "--since", "1h", "--url", url, "--json"
    )
    [entry] = json.loads(errors.stdout)["entries"]
    assert (entry["content"], entry["level"], entry["category"], entry["tier"]) == (
        "tool failed",
        "error",
        "tool",
        "hot",
    )
    text = mosaic("logs", "query", "--user", "u1", "--until", OLD.isoformat(), "--url", url).stdout
    assert text.strip() == ""
    others = mosaic("logs", "query", "--user", "u2", "--url", url, "--json")
    assert [e["content"] for e in json.loads(others.stdout)["entries"]] == ["not yours"]


def test_bad_arguments_are_usage_errors(mosaic, url):
    out = mosaic("logs", "query", "--user", "u1", "--since", "yesterday-ish", "--url", url)
    assert out.returncode == 2 and "--since" in out.stderr and "Traceback" not in out.stderr
    out = mosaic("logs", "query", "--user", "u1", "--level", "loud", "--url", url)
    assert out.returncode == 2 and "level must be one of" in out.stderr


def test_tail_prints_the_last_lines(mosaic, url):
    append(url, "u1", NewLogEntry("s1", "connecting to postgresql://app:hunter22@db/x", "debug", "tool"))
    append(url, "u1", *[NewLogEntry("s1", f"line {i}") for i in range(30)])
    out = mosaic("logs", "tail", "--user", "u1", "-n", "3", "--url", url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[-1].endswith("[s1] line 29") and "INFO" in lines[-1]
    everything = mosaic("logs", "tail", "--user", "u1", "-n", "100", "--url", url)
    assert "DEBUG   [s1] tool: connecting to postgresql://app:***@db/x" in everything.stdout
    assert (
        "hunter22"
        not in everything.stdout + mosaic("logs", "query", "--user", "u1", "--url", url, "--json").stdout
    )
    as_json = mosaic("logs", "tail", "--user", "u1", "-n", "2", "--url", url, "--json")
    assert [json.loads(line)["content"] for line in as_json.stdout.splitlines()] == ["line 28", "line 29"]


def read_line(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """The process's next stdout line, or a failure when none comes within ``timeout`` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, (
        f"no output within {timeout}s; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
    )
    return proc.stdout.readline()


def test_tail_follow_prints_new_lines_as_they_come(url, tmp_path):
    append(url, "u1", NewLogEntry("s1", "before"))
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1", "MOSAIC_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "mosaic_cli", "logs", "tail", "--user", "u1", "--follow"]
    command += ["--interval", "0.1", "--json", "--url", url]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert json.loads(read_line(proc))["content"] == "before"
        append(url, "u1", NewLogEntry("s1", "after"))
        append(url, "u2", NewLogEntry("s1", "someone else"))
        assert json.loads(read_line(proc))["content"] == "after"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_summarize_now_writes_insights_once(mosaic, url):
    append(
        url,
        "u1",
        NewLogEntry("s1", "I prefer answers in Dutch. Thanks!", created_at=OLD),
        NewLogEntry("s1", "My name is Ada.", created_at=OLD),
    )
    append(url, "u2", NewLogEntry("s1", "I prefer tea.", created_at=OLD))
    out = mosaic("summarize", "--now", "--user", "u1", "--url", url, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["logs_processed"], report["insights_created"]) == (2, 2)
    assert [(u["user_id"], u["status"]) for u in report["users"]] == [("u1", "done")]
    texts = {
        i["text"] for i in json.loads(mosaic("memory", "list", "--user", "u1", "--url", url, "--json").stdout)
    }
    assert texts == {"I prefer answers in Dutch.", "My name is Ada."}

    again = json.loads(mosaic("summarize", "--now", "--url", url, "--json").stdout)
    assert [(u["user_id"], u["logs_processed"]) for u in again["users"]] == [("u2", 1)]
    assert json.loads(mosaic("summarize", "--now", "--url", url, "--json").stdout)["users"] == []
    warm = mosaic("logs", "query", "--user", "u1", "--tier", "warm", "--url", url, "--json")
    assert all(e["summarized_at"] for e in json.loads(warm.stdout)["entries"])


def test_summarize_without_now_shows_the_schedule(mosaic, tmp_path):
    (tmp_path / "mosaic.config.json").write_text(
        json.dumps({"memory": {"summarization": {"schedule": "15 4 * * *"}}})
    )
    out = mosaic("summarize", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schedule"] == "15 4 * * *" and data["kind"] == "memory.summarize"
    assert dt.datetime.fromisoformat(data["next_run"]).strftime("%H:%M") == "04:15"
    (tmp_path / "mosaic.config.json").write_text(json.dumps({"memory": {"summarization": {"schedule": "x"}}}))
    bad = mosaic("summarize")
    assert bad.returncode == 2 and "memory.summarization.schedule" in bad.stderr
