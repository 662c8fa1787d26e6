"""Agent logs and summarization against hand-written SQL in the same run, per backend.

1. ingest: `mem.logs.append_many` (batches of 1000, validated) vs a raw SQLAlchemy executemany
   INSERT of the same rows, same batch size (the anchor). Target: within 1.5x.
2. paging: walking one user's logs by `mem.logs.query` keyset pages (200 rows) vs the raw
   keyset SELECT for the same pages. Target: within 1.5x.
3. summarization: `summarize_logs` with the extractive summarizer over every log: logs/s,
   reported as a number (no raw anchor: the cost is the summarizer and the insight writes).

Run: python benchmarks/logs.py [--n 100000] [--users 100] [--backends sqlite,pgvector]
(pgvector: an embedded PostgreSQL 18 + pgvector in a temporary directory)
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import mosaic_storage as ms
from mosaic_memory import NewLogEntry, open_memory, summarize_logs
from mosaic_storage.schema import TABLES

LOGS = TABLES["agent_logs"]
SENTENCES = (
    "I prefer short answers with code examples.",
    "What is the weather like today?",
    "The search tool returned 12 results.",
    "My name is Ada and I work at the observatory.",
    "Calling the calendar API.",
    "We use PostgreSQL for everything.",
)


def entries(n: int, users: int, when: dt.datetime) -> list[tuple[str, NewLogEntry]]:
    out = []
    for i in range(n):
        text = f"{SENTENCES[i % len(SENTENCES)]} (turn {i})"
        out.append((f"user{i % users}", NewLogEntry(f"s{i % 7}", text, "info", "chat", {"i": i}, when)))
    return out


def raw_rows(items: list[tuple[str, NewLogEntry]]) -> list[dict[str, Any]]:
    return [
        {
            "id": ms.new_id(),
            "session_id": e.session_id,
            "user_id": user,
            "level": e.level,
            "category": e.category,
            "content": e.content,
            "metadata": e.metadata,
            "tier": "hot",
            "created_at": e.created_at,
        }
        for user, e in items
    ]


def bench(kind: str, url: str, args: argparse.Namespace) -> None:
    print(f"\n== {kind} ==")
    with ms.open_store(url) as store:
        ms.upgrade(store)
        mem = open_memory(store)
        when = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
        items = entries(args.n, args.users, when)
        by_user: dict[str, list[NewLogEntry]] = {}
        for user, entry in items:
            by_user.setdefault(user, []).append(entry)

        # Ingest: raw anchor first into a scratch copy of the table's rows, then deleted.
        rows = raw_rows(items)
        start = time.perf_counter()
        for i in range(0, len(rows), 1000):
            with store.engine.begin() as conn:
                conn.execute(sa.insert(LOGS), rows[i : i + 1000])
        raw_s = time.perf_counter() - start
        with store.engine.begin() as conn:
            conn.execute(sa.delete(LOGS))
        start = time.perf_counter()
        for user, user_entries in by_user.items():
            mem.logs.append_many(user_entries, user_id=user, batch_size=1000)
        api_s = time.perf_counter() - start
        print(
            f"ingest    raw {args.n / raw_s:>9,.0f} rows/s   append_many {args.n / api_s:>9,.0f} rows/s"
            f"   ratio {api_s / raw_s:.2f}x"
        )

        # Paging one user's logs, keyset pages of 200.
        user = "user0"
        raw_sql = (
            sa.select(LOGS)
            .where(LOGS.c.user_id == user)
            .order_by(LOGS.c.created_at, LOGS.c.id)
            .limit(201)  # one more than a page, to know whether another follows (as the API does)
        )
        raw_t = api_t = 0.0
        for _ in range(args.repeat):
            start = time.perf_counter()
            with store.engine.connect() as conn:
                page = conn.execute(raw_sql).all()
                raw_pages = 1
                while len(page) > 200:
                    last = page[199]
                    position = sa.tuple_(LOGS.c.created_at, LOGS.c.id)
                    page = conn.execute(raw_sql.where(position > (last.created_at, last.id))).all()
                    raw_pages += 1
            raw_t += time.perf_counter() - start
            start = time.perf_counter()
            cursor, api_pages = None, 0
            while True:
                result = mem.logs.query(user_id=user, limit=200, cursor=cursor)
                api_pages += 1
                if result.next_cursor is None:
                    break
                cursor = result.next_cursor
            api_t += time.perf_counter() - start
        n_user = len(by_user[user])
        print(
            f"paging    raw {raw_t / args.repeat * 1000:>7.1f} ms ({raw_pages} pages)   "
            f"query {api_t / args.repeat * 1000:>7.1f} ms ({api_pages} pages, {n_user} rows)"
            f"   ratio {api_t / raw_t:.2f}x"
        )

        start = time.perf_counter()
        report = summarize_logs(mem, batch_size=args.batch)
        took = time.perf_counter() - start
        print(
            f"summarize {report.logs_processed:,} logs of {len(report.users)} users in {took:.1f} s: "
            f"{report.logs_processed / took:,.0f} logs/s, {report.insights_created} new insights"
        )
        start = time.perf_counter()
        again = summarize_logs(mem, batch_size=args.batch)
        print(f"rerun     nothing left: {len(again.users)} users, {time.perf_counter() - start:.3f} s")
        mem.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,pgvector")
    args = parser.parse_args()
    print(f"{args.n:,} logs over {args.users} users; summarization batch {args.batch}")
    workdir = Path(tempfile.mkdtemp(prefix="mosaic-bench-logs-"))
    server = None
    try:
        for kind in args.backends.split(","):
            if kind == "sqlite":
                bench(kind, f"sqlite:///{workdir}/logs.db", args)
            else:
                from mosaic_storage._embedded import EmbeddedPostgres

                server = EmbeddedPostgres(workdir / "pg")
                bench(kind, server.url, args)
        print(f"\nload average during the run: {Path('/proc/loadavg').read_text().split()[:3]}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
