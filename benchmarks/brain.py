"""Paged task listing through the brain against hand-written SQL for the same pages, same run.

Loads 1,000,000 tasks (times --scale) over 1,000 projects owned by users and teams, then pages
through them as one user three ways: one project's tasks, one project's tasks with a status
filter, and every task the user may see. Each page is fetched by `Brain.tasks.list` and by the
raw SQL a person would write for the same page with the same access rule, through the same
driver (same rows, checked), interleaved, and the p95 per page is compared. Target: the brain
within 1.5x of raw SQL. The raw SQL runs on a connection held for the whole run (the strict
anchor) and, as an app would per request, on a connection taken from the pool for each page.

Run: python benchmarks/brain.py [--url URL] [--scale 0.1] [--pages 200]
(default URL: an embedded PostgreSQL in a temporary directory; sqlite:///FILE works too)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

import mosaic_storage as ms
from mosaic_storage.brain import Brain

FULL_SIZE = 1_000_000
PROJECTS = 1_000
USERS = 200
TEAMS = 50
STATUSES = ("not_started", "in_progress", "blocked", "done", "cancelled")
TASK_COLUMNS = (
    "id", "project_id", "mission_id", "created_by", "assignee_id", "title", "description", "status",
    "priority", "due_at", "tags", "metadata", "version", "created_at", "updated_at",
)  # fmt: skip


def load(store: ms.Store, n_tasks: int, seed: int) -> dict[str, Any]:
    """Users, teams (the actor in 3 of them), projects and ``n_tasks`` tasks, bulk-loaded."""
    rng = random.Random(seed)
    brain = Brain(store)
    users = [brain.users.create(name=f"user{i}").id for i in range(USERS)]
    actor = users[0]
    team_owners = [users[1 + i % (USERS - 1)] for i in range(TEAMS)]
    teams = [brain.teams.create(owner, name=f"team{i}").id for i, owner in enumerate(team_owners)]
    for i in range(3):
        brain.teams.add_member(team_owners[i], teams[i], actor)
    projects: list[str] = []
    for i in range(PROJECTS):
        if i % 2:
            team = i % TEAMS
            projects.append(brain.projects.create(team_owners[team], name=f"p{i}", team_id=teams[team]).id)
        else:
            projects.append(brain.projects.create(users[i % USERS], name=f"p{i}").id)
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(n_tasks):
            stamp = now + dt.timedelta(microseconds=i)
            yield (
                ms.new_id(), rng.choice(projects), None, users[i % USERS], None, f"task {i}", None,
                rng.choice(STATUSES), "medium", None, "[]", "{}", 1, stamp, stamp,
            )  # fmt: skip

    if store.dialect == "postgresql":
        raw = store.engine.raw_connection()
        try:
            conn = raw.driver_connection
            with conn.cursor() as cur, cur.copy(f"COPY tasks ({', '.join(TASK_COLUMNS)}) FROM STDIN") as copy:
                for row in rows():
                    copy.write_row(row)
            conn.commit()
            with conn.cursor() as cur:
                cur.execute("ANALYZE")
            conn.commit()
        finally:
            raw.close()
    else:
        raw = store.engine.raw_connection()
        try:
            cur = raw.cursor()
            placeholders = ", ".join("?" * len(TASK_COLUMNS))
            sql = f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) VALUES ({placeholders})"
            batch: list[tuple[Any, ...]] = []
            for row in rows():
                batch.append(
                    tuple(
                        v.replace(tzinfo=None).isoformat(" ") if isinstance(v, dt.datetime) else v
                        for v in row
                    )
                )
                if len(batch) == 50_000:
                    cur.executemany(sql, batch)
                    batch.clear()
            cur.executemany(sql, batch)
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
    print(f"loaded {n_tasks:,} tasks in {time.perf_counter() - started:.1f}s")
    visible = list(brain.projects.list(actor, limit=500))
    return {"brain": brain, "actor": actor, "project": visible[len(visible) // 2].id, "visible": len(visible)}


# The access rule written by hand, as the brain applies it: the actor's own projects and their
# teams' projects; a task with no project is its creator's.
ACTOR_TEAMS = "SELECT m.team_id FROM team_members m WHERE m.user_id = :actor"
VISIBLE_TASKS_SQL = f"""
SELECT t.* FROM tasks t
WHERE t.id > :cursor
  AND (t.project_id IN (SELECT p.id FROM projects p WHERE p.owner_id = :actor OR p.team_id IN ({ACTOR_TEAMS}))
       OR (t.project_id IS NULL AND t.created_by = :actor))
ORDER BY t.id LIMIT :n
"""
# One project's page, with the same rule checked once, on that project.
PROJECT_VISIBLE = f"""EXISTS (
    SELECT 1 FROM projects p
    WHERE p.id = :project AND (p.owner_id = :actor OR p.team_id IN ({ACTOR_TEAMS})))"""
PROJECT_TASKS_SQL = f"""
SELECT t.* FROM tasks t
WHERE t.project_id = :project AND {PROJECT_VISIBLE}
  AND t.id > :cursor ORDER BY t.id LIMIT :n
"""
PROJECT_STATUS_SQL = f"""
SELECT t.* FROM tasks t
WHERE t.project_id = :project AND t.status = :status AND {PROJECT_VISIBLE}
  AND t.id > :cursor ORDER BY t.id LIMIT :n
"""


def measure(
    store: ms.Store,
    label: str,
    brain_page: Callable[[str | None], Any],
    raw_sql: str,
    params: dict[str, Any],
    pages: int,
    size: int,
) -> dict[str, float]:
    """Interleave brain and raw SQL page by page, walking the keyset; the same ids, or it fails."""
    brain_ms: list[float] = []
    raw_ms: list[float] = []
    pooled_ms: list[float] = []
    statement = sa.text(raw_sql)
    cursor: str | None = None
    walked = 0
    with store.engine.connect() as conn:
        for _ in range(pages + 5):
            t0 = time.perf_counter()
            page = brain_page(cursor)
            t1 = time.perf_counter()
            rows = conn.execute(statement, {**params, "cursor": cursor or "", "n": size + 1}).all()
            t2 = time.perf_counter()
            # The same raw SQL the way an app runs it per request: a pooled connection each time.
            with store.engine.connect() as own:
                own.execute(statement, {**params, "cursor": cursor or "", "n": size + 1}).all()
            t3 = time.perf_counter()
            if [item.id for item in page] != [row.id for row in rows[:size]]:
                raise AssertionError(f"{label}: the brain and raw SQL disagree on page {walked}")
            walked += 1
            if walked > 5:  # the first pages warm caches and statement caches
                brain_ms.append((t1 - t0) * 1000)
                raw_ms.append((t2 - t1) * 1000)
                pooled_ms.append((t3 - t2) * 1000)
            cursor = page.next_cursor  # None after the last page: the walk starts over
    result = {
        "brain_p50": statistics.median(brain_ms),
        "brain_p95": _p95(brain_ms),
        "raw_p50": statistics.median(raw_ms),
        "raw_p95": _p95(raw_ms),
        "pooled_p50": statistics.median(pooled_ms),
        "pooled_p95": _p95(pooled_ms),
    }
    result["ratio_p95"] = result["brain_p95"] / result["raw_p95"]
    print(
        f"{label:<32} brain p50 {result['brain_p50']:7.2f} ms  p95 {result['brain_p95']:7.2f} ms | "
        f"raw p50 {result['raw_p50']:7.2f} ms  p95 {result['raw_p95']:7.2f} ms | "
        f"p95 ratio {result['ratio_p95']:.2f}x | raw with a pooled connection per page: "
        f"p95 {result['pooled_p95']:.2f} ms ({result['brain_p95'] / result['pooled_p95']:.2f}x)"
    )
    return result


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="storage URL (default: embedded PostgreSQL in a temp dir)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 1,000,000 tasks")
    parser.add_argument("--pages", type=int, default=200, help="pages measured per scenario")
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    n_tasks = int(FULL_SIZE * args.scale)
    with tempfile.TemporaryDirectory(prefix="mosaic-bench-") as tmp:
        url = args.url or f"embedded://{tmp}/pg"
        with ms.open_store(url) as store:
            ms.upgrade(store)
            print(f"{store!r}: {n_tasks:,} tasks, {PROJECTS} projects, page size {args.page_size}")
            world = load(store, n_tasks, args.seed)
            brain, actor, project = world["brain"], world["actor"], world["project"]
            size = args.page_size
            print(f"the actor sees {world['visible']} of {PROJECTS} projects")
            results = {
                "project": measure(
                    store,
                    "one project's tasks",
                    lambda c: brain.tasks.list(actor, project_id=project, cursor=c, limit=size),
                    PROJECT_TASKS_SQL,
                    {"project": project, "actor": actor},
                    args.pages,
                    size,
                ),
                "project_status": measure(
                    store,
                    "one project's tasks, one status",
                    lambda c: brain.tasks.list(
                        actor, project_id=project, status="done", cursor=c, limit=size
                    ),
                    PROJECT_STATUS_SQL,
                    {"project": project, "status": "done", "actor": actor},
                    args.pages,
                    size,
                ),
                "visible": measure(
                    store,
                    "every task the actor may see",
                    lambda c: brain.tasks.list(actor, cursor=c, limit=size),
                    VISIBLE_TASKS_SQL,
                    {"actor": actor},
                    args.pages,
                    size,
                ),
            }
    worst = max(r["ratio_p95"] for r in results.values())
    print(f"worst p95 ratio brain/raw: {worst:.2f}x (target <= 1.5x)")
    if args.json:
        print(json.dumps({"tasks": n_tasks, "url": ms.redact(url), "results": results}, indent=2))


if __name__ == "__main__":
    main()
