"""``mosaic migrate-tier``: plan, copy, rerun; exit codes 0/1/2; progress on stderr; no secrets."""

from __future__ import annotations

import json

import psycopg
import pytest

import mosaic_storage as ms
from tests.storage.test_migrate import fill


@pytest.fixture
def source(tmp_path):
    url = f"sqlite:///{tmp_path}/local.db"
    with ms.open_store(url) as store:
        ms.upgrade(store)
        fill(store, messages=25)
    return url


def test_dry_run_then_migrate_then_rerun(mosaic, source, password_pg):
    target = password_pg.good_url

    plan = mosaic("migrate-tier", "--from", source, "--to", target, "--dry-run", "--init-target", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert planned["dry_run"] is True and planned["schema"] == f"would be created at {ms.head()}"
    assert {t["table"]: t["source_rows"] for t in planned["tables"]}["messages"] == 25
    with ms.open_store(target) as store:
        assert ms.current(store) is None

    out = mosaic("migrate-tier", "--from", source, "--to", target, "--init-target", "--yes", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True and report["rows_written"] == report["source_rows"] > 25
    with ms.open_store(target) as store:
        # A role that may not create pgvector gets the standalone tier: embeddings as bytes.
        assert store.capabilities.vector is False
    assert {s["table"] for s in report["skipped"]} >= {"sessions", "verifications", "jobs"}

    with psycopg.connect(target) as conn:
        conn.execute("UPDATE preferences SET value = '\"light\"' WHERE key = 'theme'")
    again = mosaic("migrate-tier", "--from", source, "--to", target, "--batch-size", "7", "--yes")
    assert again.returncode == 1
    assert "conflicts in preferences" in again.stdout
    assert "1 rows exist on the target with other content" in again.stderr
    for output in (plan, out, again):
        assert password_pg.password not in output.stdout + output.stderr
        assert "Traceback" not in output.stderr


def test_human_plan_names_skipped_tables_and_why(mosaic, source, pgvector_url):
    out = mosaic("migrate-tier", "--from", source, "--to", pgvector_url, "--dry-run", "--init-target")
    assert out.returncode == 0, out.stderr
    assert "plan (dry run: nothing written)" in out.stdout
    assert "skipped sessions (1 rows): login sessions expire" in out.stdout
    assert "would be created" in out.stdout


def test_progress_goes_to_stderr_and_the_summary_to_stdout(mosaic, source, pgvector_url):
    out = mosaic("migrate-tier", "--from", source, "--to", pgvector_url, "--init-target", "--yes")
    assert out.returncode == 0, out.stderr
    assert "messages" in out.stderr  # the progress bar of the table
    assert "rows written in" in out.stdout


def test_failures_exit_1_and_usage_errors_exit_2(mosaic, source, pgvector_url, tmp_path):
    no_schema = mosaic("migrate-tier", "--from", source, "--to", pgvector_url, "--yes")
    assert no_schema.returncode == 1
    assert "--init-target" in no_schema.stderr and "Traceback" not in no_schema.stderr

    missing = mosaic("migrate-tier", "--from", f"sqlite:///{tmp_path}/nope.db", "--to", pgvector_url)
    assert missing.returncode == 1 and "does not exist" in missing.stderr

    no_answer = mosaic("migrate-tier", "--from", source, "--to", pgvector_url, "--init-target")
    assert no_answer.returncode == 1, "without --yes and nobody to confirm, nothing happens"
    with ms.open_store(pgvector_url) as store:
        assert ms.current(store) is None

    assert mosaic("migrate-tier", "--from", source).returncode == 2
    assert mosaic("migrate-tier", "--from", source, "--to", pgvector_url, "--batch-size", "0").returncode == 2
