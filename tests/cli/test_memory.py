"""``mosaic memory`` and ``mosaic pref``: the library's calls from the shell, JSON for scripts."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def url(tmp_path, mosaic):
    url = f"sqlite:///{tmp_path}/brain.db"
    assert mosaic("db", "upgrade", "--url", url).returncode == 0
    return url


def test_add_search_list_history_forget(mosaic, url):
    added = mosaic(
        "memory", "add", "Enjoys hiking in the Alps", "--user", "u1", "--url", url, "--meta", "n=3", "--json"
    )
    assert added.returncode == 0, added.stderr
    insight = json.loads(added.stdout)
    assert insight["text"] == "Enjoys hiking in the Alps" and insight["metadata"] == {"n": 3}
    other = mosaic("memory", "add", "Drinks green tea", "--user", "u1", "--url", url)
    assert other.returncode == 0 and other.stdout.strip()

    hits = json.loads(mosaic("memory", "search", "hiking", "--user", "u1", "--url", url, "--json").stdout)
    assert hits[0]["id"] == insight["id"] and hits[0]["keyword_score"] > 0
    filtered = mosaic("memory", "search", "tea", "--user", "u1", "--url", url, "--filter", "n=3", "--json")
    assert [h["id"] for h in json.loads(filtered.stdout)] == [insight["id"]]
    assert (
        json.loads(mosaic("memory", "search", "hiking", "--user", "u2", "--url", url, "--json").stdout) == []
    )
    assert "Enjoys hiking" in mosaic("memory", "search", "hiking", "--user", "u1", "--url", url).stdout

    listed = json.loads(mosaic("memory", "list", "--user", "u1", "--url", url, "--json").stdout)
    assert {i["text"] for i in listed} == {"Enjoys hiking in the Alps", "Drinks green tea"}

    forgot = mosaic("memory", "forget", insight["id"], "--user", "u1", "--url", url, "--json")
    assert json.loads(forgot.stdout) == {"id": insight["id"], "deleted": True}
    history = json.loads(
        mosaic("memory", "history", insight["id"], "--user", "u1", "--url", url, "--json").stdout
    )
    assert [(h["action"], h["actor"]) for h in history] == [("add", "agent"), ("delete", "user")]


def test_bad_search_mode_is_a_usage_error(mosaic, url):
    out = mosaic("memory", "search", "x", "--user", "u1", "--url", url, "--mode", "fuzzy")
    assert out.returncode == 2
    assert "mode" in out.stderr and "Traceback" not in out.stderr


def test_pref_set_get_list_delete(mosaic, url):
    out = mosaic(
        "pref", "set", "theme", '{"color": "dark"}', "--user", "u1", "--url", url, "--immutable", "--json"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["mutable"] is False
    assert json.loads(mosaic("pref", "get", "theme", "--user", "u1", "--url", url).stdout) == {
        "color": "dark"
    }
    assert mosaic("pref", "set", "name", "Ada", "--user", "u1", "--url", url).stdout.strip() == 'name = "Ada"'
    listed = json.loads(mosaic("pref", "list", "--user", "u1", "--url", url, "--json").stdout)
    assert [(p["key"], p["value"]) for p in listed] == [("name", "Ada"), ("theme", {"color": "dark"})]
    assert mosaic("pref", "delete", "theme", "--user", "u1", "--url", url).returncode == 0
    missing = mosaic("pref", "get", "theme", "--user", "u1", "--url", url)
    assert missing.returncode == 1 and "no preference" in missing.stderr


def test_quickstart_adds_and_searches_memories(mosaic, tmp_path):
    out = mosaic("quickstart", "--json", env={"MOSAIC_HOME": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    actions = [step["action"] for step in report["steps"]]
    assert actions[-2:] == ["memory", "search"]
    assert report["memory"]["hits"][0]["text"] == "Prefers short answers with code examples"


def test_a_store_of_another_dimension_says_how_to_reembed(mosaic, url):
    assert mosaic("memory", "add", "Speaks Dutch", "--user", "u1", "--url", url).returncode == 0
    assert mosaic("memory", "reembed", "--dim", "64", "--url", url, "--yes").returncode == 0
    out = mosaic("memory", "list", "--user", "u1", "--url", url)
    assert out.returncode == 1
    assert "dimension 64" in out.stderr and "reembed" in out.stderr


def test_reindex_checks_and_rebuilds_the_keyword_index(mosaic, url):
    import sqlite3

    assert mosaic("memory", "add", "Enjoys hiking in the Alps", "--user", "u1", "--url", url).returncode == 0
    healthy = mosaic("memory", "reindex", "--check", "--url", url, "--json")
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout)["ok"] is True
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM insights_fts")
    broken = mosaic("memory", "reindex", "--check", "--url", url)
    assert broken.returncode == 1 and "missing from the keyword index" in broken.stdout
    assert "mosaic memory reindex" in broken.stdout
    rebuilt = mosaic("memory", "reindex", "--url", url, "--json")
    assert rebuilt.returncode == 0 and json.loads(rebuilt.stdout)["indexed"] == 1
    hits = json.loads(mosaic("memory", "search", "hiking", "--user", "u1", "--url", url, "--json").stdout)
    assert hits and hits[0]["keyword_score"] > 0
