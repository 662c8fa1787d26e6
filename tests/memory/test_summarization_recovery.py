"""Summarization recovery: a poison batch is split and its bad log parked; live runs are not taken over."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import sqlalchemy as sa

import mosaic_storage as ms
from mosaic_memory import NewInsight, NewLogEntry, summarization_jobs, summarize_logs
from mosaic_memory import _summarize as summarize_module
from mosaic_memory._summarize import BATCH_KEY, MAX_ATTEMPTS
from mosaic_storage.schema import TABLES

OLD = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)


def seed(memory, contents, user="u1"):
    return memory.logs.append_many(
        [NewLogEntry("s1", t, created_at=OLD + dt.timedelta(seconds=i)) for i, t in enumerate(contents)],
        user_id=user,
    )


class Picky:
    """Fails on every batch holding a POISON log (``fails`` times at most when given); one insight per log."""

    def __init__(self, fails: int | None = None) -> None:
        self.fails = fails
        self.calls: list[list[str]] = []

    def summarize(self, user_id, logs):
        self.calls.append([log.content for log in logs])
        if any("POISON" in log.content for log in logs) and (self.fails is None or self.fails > 0):
            if self.fails is not None:
                self.fails -= 1
            raise RuntimeError("context too long")
        return [NewInsight(f"{uuid.uuid4().hex} from {log.content}") for log in logs]


def test_a_poison_log_is_parked_after_max_attempts_and_the_rest_is_summarized_once(memory):
    written = seed(memory, ["POISON 0", "log 1", "log 2", "log 3", "log 4"])
    summarizer = Picky()
    statuses = []
    for _ in range(MAX_ATTEMPTS):
        [user] = summarize_logs(memory, summarizer, user_id="u1", batch_size=2).users
        statuses.append(user.status)
    assert statuses == ["failed"] * (MAX_ATTEMPTS - 1) + ["done"]
    assert user.logs_processed == 4 and user.logs_parked == 1 and "parked" in user.error
    assert memory.logs.count(user_id="u1", summarized=False) == 0
    [parked] = memory.logs.query(user_id="u1", parked=True).entries
    assert parked.id == written[0].id and "context too long" in parked.summary_error
    assert len(memory.logs.query(user_id="u1", parked=False).entries) == 4
    texts = [i.text for i in memory.insights.list(user_id="u1", limit=100)]
    assert sorted(t.split(" ", 1)[1] for t in texts) == [f"from log {i}" for i in range(1, 5)]
    # The poison batch of two was split: each of its logs was tried alone once.
    assert summarizer.calls.count(["POISON 0"]) == 1 and summarizer.calls.count(["log 1"]) == 1
    [job, *_] = summarization_jobs(memory, user_id="u1")
    assert job.status == "done" and "1 log(s) parked" in job.error
    # Nothing is left for a later run.
    again = Picky()
    assert summarize_logs(memory, again, user_id="u1").logs_processed == 0 and again.calls == []


def test_a_batch_that_fails_once_is_retried_whole_and_nothing_is_parked(memory):
    seed(memory, ["POISON 0", "log 1", "log 2"])
    summarizer = Picky(fails=1)
    first = summarize_logs(memory, summarizer, user_id="u1", batch_size=3)
    assert first.users[0].status == "failed"
    second = summarize_logs(memory, summarizer, user_id="u1", batch_size=3)
    assert [(u.status, u.logs_processed, u.logs_parked) for u in second.users] == [("done", 3, 0)]
    assert memory.logs.query(user_id="u1", parked=True).entries == ()
    assert memory.insights.count(user_id="u1") == 3


def test_a_live_slow_run_taken_over_writes_nothing_and_the_new_run_writes_once(memory):
    seed(memory, [f"I prefer tea number {i}." for i in range(4)])
    entered, release = threading.Event(), threading.Event()
    calls = []

    class Slow:
        def summarize(self, user_id, logs):
            calls.append(len(logs))
            if len(calls) == 1:
                entered.set()
                assert release.wait(60)
            return [NewInsight(f"call {len(calls)} {uuid.uuid4().hex}")]

    reports = {}
    first = threading.Thread(
        target=lambda: reports.setdefault("a", summarize_logs(memory, Slow(), user_id="u1", batch_size=4))
    )
    first.start()
    assert entered.wait(60)
    # stale_after=0: the live run's heartbeat counts as stale and it is taken over.
    reports["b"] = summarize_logs(memory, Slow(), user_id="u1", batch_size=4, stale_after=dt.timedelta(0))
    release.set()
    first.join(60)
    a, b = reports["a"].users[0], reports["b"].users[0]
    assert (b.status, b.logs_processed, b.insights_created) == ("done", 4, 1)
    assert (a.status, a.logs_processed, a.insights_created) == ("failed", 0, 0)
    assert "taken over" in a.error
    assert memory.insights.count(user_id="u1") == 1
    assert memory.logs.count(user_id="u1", summarized=True) == 4
    jobs = {j.id: j for j in summarization_jobs(memory, user_id="u1")}
    assert jobs[a.job_id].status == "failed" and "taken over" in jobs[a.job_id].error
    assert jobs[b.job_id].status == "done" and jobs[b.job_id].logs_processed == 4


def test_a_run_started_long_ago_with_a_fresh_heartbeat_is_not_taken_over(memory):
    seed(memory, ["I prefer tea."])
    now = dt.datetime.now(dt.UTC)
    with memory.store.engine.begin() as conn:
        conn.execute(
            sa.insert(TABLES["summarization_jobs"]).values(
                id=ms.new_id(),
                user_id="u1",
                status="running",
                started_at=now - dt.timedelta(hours=5),
                heartbeat_at=now,
                created_at=now,
            )
        )
    [user] = summarize_logs(memory, user_id="u1").users
    assert user.status == "skipped"
    assert memory.logs.count(user_id="u1", summarized=False) == 1


def test_insights_merged_across_batches_keep_every_batch_tag(memory):
    seed(memory, ["a", "b", "c", "d"])

    class Same:
        def summarize(self, user_id, logs):
            return ["The user likes tea."]

    report = summarize_logs(memory, Same(), user_id="u1", batch_size=2)
    assert report.logs_processed == 4
    [insight] = memory.insights.list(user_id="u1")
    tags = [key for key in insight.metadata if key.startswith(f"{BATCH_KEY}:")]
    assert len(tags) == 2
    # Each batch is found by its own tag, so a rerun of either one writes nothing.
    for tag in tags:
        assert memory.insights.list(user_id="u1", filters={tag: True})


def test_a_database_error_in_a_run_is_recorded_without_statement_or_parameters(memory):
    seed(memory, ["I prefer tea."], user="user-xyzzy")

    class DropsInsights:
        def summarize(self, user_id, logs):
            with memory.store.engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "DROP TABLE insights CASCADE"
                        if conn.dialect.name != "sqlite"
                        else "DROP TABLE insights"
                    )
                )
            return ["The user likes tea."]

    [user] = summarize_logs(memory, DropsInsights(), user_id="user-xyzzy").users
    assert user.status == "failed" and user.error
    [job] = summarization_jobs(memory, user_id="user-xyzzy")
    for text in (user.error, job.error):
        assert "xyzzy" not in text and "parameters" not in text and "SELECT" not in text.upper()


def test_a_run_keeps_its_heartbeat_through_a_summarizer_call_longer_than_stale_after(memory):
    seed(memory, ["I prefer tea."])
    stale = dt.timedelta(seconds=2)
    inner = {}

    class Long:
        def summarize(self, user_id, logs):
            time.sleep(4.5)  # more than twice stale_after, with no step of the run in between
            # A second run now: it must see a live run (fresh heartbeat) and skip the user.
            inner["run"] = summarize_logs(memory, Picky(), user_id="u1", stale_after=stale)
            # A generator: its work runs as the run reads it, which must be under the heartbeat too.
            yield NewInsight("Prefers tea")

    start = time.monotonic()
    [outer] = summarize_logs(memory, Long(), user_id="u1", stale_after=stale).users
    # The heartbeat ends with the call: a thread left beating (for up to 6 x stale_after, 12 s
    # here) would hold the run until it stopped.
    assert time.monotonic() - start < 9
    [second] = inner["run"].users
    assert second.status == "skipped"
    assert (outer.status, outer.logs_processed, outer.insights_created) == ("done", 1, 1)
    assert [i.text for i in memory.insights.list(user_id="u1")] == ["Prefers tea"]
    assert [j.status for j in summarization_jobs(memory, user_id="u1")] == ["done"]


def test_a_hung_summarizer_call_stops_beating_and_its_run_can_be_taken_over(memory, monkeypatch):
    monkeypatch.setattr(summarize_module, "BEAT_CALL_FOR", 1)
    seed(memory, ["I prefer tea."])
    stale = dt.timedelta(seconds=0.5)
    inner = {}

    class Hung:
        def summarize(self, user_id, logs):
            time.sleep(1.6)  # past BEAT_CALL_FOR x stale_after, then past stale_after unbeaten
            inner["run"] = summarize_logs(memory, Picky(), user_id="u1", stale_after=stale)
            return [NewInsight("from the hung run")]

    [outer] = summarize_logs(memory, Hung(), user_id="u1", stale_after=stale).users
    [second] = inner["run"].users
    assert (second.status, second.logs_processed, second.insights_created) == ("done", 1, 1)
    assert (outer.status, outer.insights_created) == ("failed", 0) and "taken over" in outer.error
    [insight] = memory.insights.list(user_id="u1")
    assert insight.text.endswith(" from I prefer tea.")  # the second run's; the hung one wrote nothing
