"""Summarization: old hot logs become insights once per batch, also when a run dies halfway and runs again."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

import mosaic_storage as ms
from mosaic_memory import (
    JOB_KIND,
    ExtractiveSummarizer,
    NewInsight,
    NewLogEntry,
    SummarizationError,
    Summarizer,
    next_run,
    next_scheduled_run,
    summarization_jobs,
    summarize_handler,
    summarize_job,
    summarize_logs,
)
from mosaic_storage.schema import TABLES

SRC = Path(__file__).resolve().parents[2] / "src"
OLD = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)


def log(content: str, *, session: str = "s1", level: str = "info", at: dt.datetime = OLD) -> NewLogEntry:
    return NewLogEntry(session, content, level, None, None, at)  # type: ignore[arg-type]


class OnePerBatch:
    """A summarizer whose text differs on every call (as an LLM's would): one insight per batch."""

    def __init__(self, fail_on_call: int | None = None, exc: BaseException | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail_on_call = fail_on_call
        self.exc = exc

    def summarize(self, user_id, logs):
        self.calls.append((user_id, len(logs)))
        if self.fail_on_call == len(self.calls):
            raise self.exc or RuntimeError("model unavailable")
        return [NewInsight(f"{uuid.uuid4().hex} {user_id} said {len(logs)} things", "summary")]


def seed(memory, users=("u1", "u2", "u3"), per_user=25):
    for user in users:
        memory.logs.append_many([log(f"{user} line {i}") for i in range(per_user)], user_id=user)


def insight_texts(memory, user):
    return sorted(i.text for i in memory.insights.list(user_id=user, limit=1000))


# --- the extractive default -------------------------------------------------------------------


def _entries(memory, *contents, level="info"):
    return memory.logs.append_many([log(c, level=level) for c in contents], user_id="u1")


def test_extractive_summarizer_keeps_stated_preferences_and_facts(memory):
    logs = _entries(
        memory,
        "Hi there. I prefer short answers with code examples. What time is it?",
        "My name is Ada and I work at the observatory.\nThe weather is nice.",
        "i prefer  short answers with code examples.",  # the same, said again
        "We use PostgreSQL for everything!",
    )
    logs += _entries(memory, "I prefer debug lines to be ignored.", level="debug")
    insights = ExtractiveSummarizer().summarize("u1", logs)
    assert [(i.text, i.category) for i in insights] == [
        ("I prefer short answers with code examples.", "preference"),
        ("My name is Ada and I work at the observatory.", "fact"),
        ("We use PostgreSQL for everything!", "fact"),
    ]
    assert len(ExtractiveSummarizer(max_insights=1).summarize("u1", logs)) == 1
    assert ExtractiveSummarizer().summarize("u1", _entries(memory, "ok", "Do I prefer tea?")) == []
    assert isinstance(ExtractiveSummarizer(), Summarizer)


# --- the pipeline ------------------------------------------------------------------------------


def test_old_hot_logs_become_insights_and_move_to_warm(memory):
    memory.logs.append_many(
        [
            log("I prefer dark mode in every editor."),
            log("My timezone is Europe/Amsterdam."),
            log("I prefer dark mode in every editor."),
            log("I prefer tabs.", at=dt.datetime.now(dt.UTC)),  # too recent
        ],
        user_id="u1",
    )
    report = summarize_logs(memory)
    assert (report.logs_processed, report.insights_created, report.failed) == (3, 2, ())
    assert insight_texts(memory, "u1") == [
        "I prefer dark mode in every editor.",
        "My timezone is Europe/Amsterdam.",
    ]
    hit = memory.insights.search("dark mode", user_id="u1", limit=1)[0]
    assert hit.metadata["summarized_logs"] == 3 and hit.metadata["summary_batch"]
    old = memory.logs.query(user_id="u1", tier="warm").entries
    assert len(old) == 3 and all(e.summarized_at is not None for e in old)
    [recent] = memory.logs.query(user_id="u1", tier="hot").entries
    assert recent.content == "I prefer tabs." and recent.summarized_at is None
    [job] = summarization_jobs(memory, user_id="u1")
    assert (job.status, job.logs_processed, job.insights_created, job.error) == ("done", 3, 2, None)
    assert job.finished_at >= job.started_at

    again = summarize_logs(memory)
    assert again.users == () and len(insight_texts(memory, "u1")) == 2


def test_each_user_gets_only_insights_from_their_own_logs(memory):
    memory.logs.append("s", "alice", "info", None, "I prefer green tea in the morning.", created_at=OLD)
    memory.logs.append("s", "bob", "info", None, "My name is Bob and I live in Oslo.", created_at=OLD)
    report = summarize_logs(memory)
    assert sorted(u.user_id for u in report.users) == ["alice", "bob"]
    assert insight_texts(memory, "alice") == ["I prefer green tea in the morning."]
    assert insight_texts(memory, "bob") == ["My name is Bob and I live in Oslo."]
    assert summarization_jobs(memory, user_id="carol") == []
    only = summarize_logs(memory, user_id="carol")
    assert [(u.user_id, u.status, u.logs_processed) for u in only.users] == [("carol", "done", 0)]


def test_batches_are_at_most_batch_size_logs(memory):
    seed(memory, users=("u1",), per_user=25)
    summarizer = OnePerBatch()
    report = summarize_logs(memory, summarizer, batch_size=10)
    assert summarizer.calls == [("u1", 10), ("u1", 10), ("u1", 5)]
    assert report.logs_processed == 25 and report.insights_created == 3


def test_an_insight_write_that_fails_halfway_then_a_rerun_duplicates_nothing_and_loses_no_log(memory):
    seed(memory)  # 3 users x 25 logs; batch 10 -> 3 batches per user
    summarizer = OnePerBatch()
    real_add_many = memory.insights.add_many
    writes = []

    def add_many_then_crash(items, **kwargs):
        ids = real_add_many(items, **kwargs)
        writes.append(kwargs["user_id"])
        if len(writes) == 5:  # u2's second batch: its insight is committed, the logs not yet marked
            raise ConnectionError("connection to server at db://u:hunter22@db lost")
        return ids

    memory.insights.add_many = add_many_then_crash
    report = summarize_logs(memory, summarizer, batch_size=10)
    assert [(u.user_id, u.status) for u in report.users] == [("u1", "done"), ("u2", "failed"), ("u3", "done")]
    failed = report.failed[0]
    assert "ConnectionError" in failed.error and "hunter22" not in failed.error
    assert failed.logs_processed == 10  # the first batch was finished
    [job] = summarization_jobs(memory, user_id="u2")
    assert job.status == "failed" and job.error == failed.error and job.logs_processed == 10
    assert memory.logs.count(user_id="u2", summarized=False) == 15
    del memory.insights.add_many

    calls_before = len(summarizer.calls)
    rerun = summarize_logs(memory, summarizer, batch_size=10)
    assert [(u.user_id, u.status, u.logs_processed) for u in rerun.users] == [("u2", "done", 15)]
    # The claimed batch already had its insight: the summarizer ran only for the last batch.
    assert summarizer.calls[calls_before:] == [("u2", 5)]
    for user in ("u1", "u2", "u3"):
        assert len(insight_texts(memory, user)) == 3, user
        assert memory.logs.count(user_id=user, summarized=True, tier="warm") == 25, user
    assert [j.status for j in summarization_jobs(memory, user_id="u2")] == ["done", "failed"]


def test_a_summarizer_that_fails_for_some_users_is_retried_on_the_next_run(memory):
    seed(memory, per_user=5)
    first = summarize_logs(memory, OnePerBatch(fail_on_call=2), batch_size=10)
    assert [u.status for u in first.users] == ["done", "failed", "done"]
    assert "model unavailable" in first.failed[0].error
    assert insight_texts(memory, "u2") == []
    second = summarize_logs(memory, OnePerBatch(), batch_size=10)
    assert [(u.user_id, u.logs_processed, u.insights_created) for u in second.users] == [("u2", 5, 1)]
    assert [len(insight_texts(memory, u)) for u in ("u1", "u2", "u3")] == [1, 1, 1]


def test_an_interrupt_is_recorded_and_reraised_and_the_batch_finished_later(memory):
    seed(memory, users=("u1",), per_user=4)
    with pytest.raises(KeyboardInterrupt):
        summarize_logs(memory, OnePerBatch(fail_on_call=1, exc=KeyboardInterrupt()))
    [job] = summarization_jobs(memory, user_id="u1")
    assert job.status == "failed" and "KeyboardInterrupt" in job.error
    report = summarize_logs(memory, OnePerBatch())
    assert report.logs_processed == 4 and len(insight_texts(memory, "u1")) == 1


KILLED_RUN = textwrap.dedent(
    """
    import os, sys, uuid
    import mosaic_storage as ms
    from mosaic_memory import NewInsight, open_memory, summarize_logs

    class Once:
        def summarize(self, user_id, logs):
            return [NewInsight(uuid.uuid4().hex + " summary")]

    target = ms.load_config(sys.argv[1]) if sys.argv[1].endswith(".json") else sys.argv[1]
    with open_memory(ms.open_store(target)) as memory:
        real = memory.insights.add_many
        def add_many_then_die(items, **kwargs):
            real(items, **kwargs)
            os._exit(9)  # killed after the insight commit, before the logs are finished
        memory.insights.add_many = add_many_then_die
        summarize_logs(memory, Once())
    """
)


def test_a_killed_run_is_taken_over_after_stale_after_without_duplicates(memory, tmp_path):
    seed(memory, users=("u1",), per_user=6)
    # Opened as the fixture opened it: the standalone store by its config, the others by URL.
    target = memory.store.config.storage.url
    if memory.store.tier is ms.StorageTier.STANDALONE:
        target = str(tmp_path / "mosaic.config.json")
        Path(target).write_text(memory.store.config.to_json())
    script = tmp_path / "killed.py"
    script.write_text(KILLED_RUN)
    env = {**os.environ, "PYTHONPATH": str(SRC), "MOSAIC_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(script), target],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 9, done.stderr
    assert len(insight_texts(memory, "u1")) == 1
    [job] = summarization_jobs(memory, user_id="u1")
    assert job.status == "running"
    assert memory.logs.count(user_id="u1", summarized=False) == 6

    busy = summarize_logs(memory, OnePerBatch())
    assert [(u.status, u.job_id) for u in busy.users] == [("skipped", None)]

    summarizer = OnePerBatch()
    report = summarize_logs(memory, summarizer, stale_after=dt.timedelta(0))
    assert [(u.status, u.logs_processed, u.insights_created) for u in report.users] == [("done", 6, 0)]
    assert summarizer.calls == []  # its insight was written by the killed run
    assert len(insight_texts(memory, "u1")) == 1
    assert memory.logs.count(user_id="u1", summarized=True) == 6
    statuses = [(j.status, j.error) for j in summarization_jobs(memory, user_id="u1")]
    assert statuses[0] == ("done", None)
    assert statuses[1][0] == "failed" and "interrupted" in statuses[1][1]


def test_concurrent_runs_never_summarize_a_batch_twice(memory):
    users = ("u1", "u2", "u3", "u4")
    seed(memory, users=users, per_user=12)
    summarizers = [OnePerBatch(), OnePerBatch()]
    reports = []

    def run(summarizer):
        reports.append(summarize_logs(memory, summarizer, batch_size=5))

    threads = [threading.Thread(target=run, args=(s,)) for s in summarizers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    finish = summarize_logs(memory, OnePerBatch(), batch_size=5)  # whatever a busy or failed user left
    assert len(reports) == 2
    for user in users:
        assert len(insight_texts(memory, user)) == 3, user  # 12 logs in batches of 5: 5, 5, 2
        assert memory.logs.count(user_id=user, summarized=True) == 12, user
    # Each log was processed by exactly one run: a batch processed twice would count twice.
    assert sum(report.logs_processed for report in [*reports, finish]) == 48
    assert {u.status for report in reports for u in report.users} <= {"done", "skipped"}


def test_only_one_running_job_per_user(memory):
    jobs = TABLES["summarization_jobs"]
    now = dt.datetime.now(dt.UTC)
    with memory.store.engine.begin() as conn:
        conn.execute(sa.insert(jobs).values(id=ms.new_id(), user_id="u1", status="running", started_at=now))
    with pytest.raises(sa.exc.IntegrityError), memory.store.engine.begin() as conn:
        conn.execute(sa.insert(jobs).values(id=ms.new_id(), user_id="u1", status="running", started_at=now))


def test_bad_arguments_are_refused(memory):
    with pytest.raises(ValueError, match="batch_size"):
        summarize_logs(memory, batch_size=0)
    with pytest.raises(ValueError, match="older_than"):
        summarize_logs(memory, older_than=dt.timedelta(hours=-1))
    with pytest.raises(TypeError, match="not a Summarizer"):
        summarize_logs(memory, object())  # type: ignore[arg-type]
    memory.logs.append("s", "u1", "info", None, "x", created_at=OLD)

    class Bad:
        def summarize(self, user_id, logs):
            return [42]

    report = summarize_logs(memory, Bad())
    assert "texts or NewInsight" in report.failed[0].error
    assert memory.logs.count(user_id="u1", summarized=False) == 1


# --- the worker's entry and the schedule -------------------------------------------------------


def test_summarize_job_runs_once_and_raises_when_a_user_failed(memory):
    seed(memory, users=("u1", "u2"), per_user=3)
    summarize_job(
        {"user_id": "u1", "older_than_hours": 1, "batch_size": 2}, memory=memory, summarizer=OnePerBatch()
    )
    assert memory.logs.count(user_id="u1", summarized=False) == 0
    assert memory.logs.count(user_id="u2", summarized=False) == 3
    with pytest.raises(SummarizationError, match="u2"):
        summarize_job({}, memory=memory, summarizer=OnePerBatch(fail_on_call=1))
    summarize_handler(memory, OnePerBatch())({})
    assert memory.logs.count(user_id="u2", summarized=False) == 0
    with pytest.raises(ValueError, match=r"unknown memory\.summarize payload keys"):
        summarize_job({"users": ["u1"]}, memory=memory)
    with pytest.raises(ValueError, match="older_than_hours"):
        summarize_job({"older_than_hours": "soon"}, memory=memory)


def test_next_run_follows_the_cron_schedule_in_utc():
    at = dt.datetime(2026, 11, 25, 12, 7, 30, tzinfo=dt.UTC)
    assert next_run("*/15 * * * *", at) == dt.datetime(2026, 11, 25, 12, 15, tzinfo=dt.UTC)
    assert next_run("0 3 * * *", at) == dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert next_run("0 * * * *", at.astimezone(plus_two)) == dt.datetime(2026, 11, 25, 13, tzinfo=dt.UTC)
    assert next_run("0 * * * *") > dt.datetime.now(dt.UTC)
    with pytest.raises(ValueError, match="not a cron expression"):
        next_run("every hour")
    config = ms.config_from_dict({"memory": {"summarization": {"schedule": "30 2 * * 1"}}})
    scheduled = next_scheduled_run(config, at)
    assert scheduled.kind == JOB_KIND == "memory.summarize"
    assert scheduled.run_at == dt.datetime(2026, 11, 30, 2, 30, tzinfo=dt.UTC)
    assert scheduled.dedupe_key == next_scheduled_run(config, at + dt.timedelta(hours=1)).dedupe_key


def test_summarization_config_is_validated():
    config = ms.config_from_dict(
        {"memory": {"summarization": {"schedule": "*/5 * * * *", "older_than_hours": 6, "batch_size": 50}}}
    )
    assert config.memory.summarization == ms.SummarizationConfig("*/5 * * * *", 6.0, 50)
    assert ms.config_from_dict(config.to_dict()) == config
    assert ms.MosaicConfig().memory.logs == ms.LogsConfig(7.0, 30.0)
    for bad, field in [
        ({"summarization": {"schedule": "hourly"}}, "memory.summarization.schedule"),
        ({"summarization": {"batch_size": 0}}, "memory.summarization.batch_size"),
        ({"summarization": {"cron": "* * * * *"}}, "memory.summarization.cron"),
        ({"logs": {"warm_after_days": 9, "cold_after_days": 3}}, "memory.logs.cold_after_days"),
    ]:
        with pytest.raises(ms.ConfigError) as err:
            ms.config_from_dict({"memory": bad})
        assert err.value.field == field
