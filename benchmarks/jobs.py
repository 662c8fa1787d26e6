"""Job queue benchmark: enqueue and reserve+ack rates per backend, against raw anchors in the same run.

Run:  PYTHONPATH=src python benchmarks/jobs.py [--n 100000] [--single-n 20000] [--rounds 5]
      [--backends sqlite,postgres,redis] [--redis-url redis://...] [--pg-url postgresql://...]

Backends: SQLite (a file in a temp dir), embedded PostgreSQL 18 (``embedded://`` in a temp dir,
or --pg-url) and Redis streams (a redis-server started here, or --redis-url). Jobs are no-ops
with a small JSON payload.

Per backend, through the public API:
  * enqueue:            `enqueue_many`, batches of 1000, N jobs;
  * batch reserve+ack:  `reserve(count=100)` + `ack_many`, N jobs;
  * worker, one by one: `Worker(prefetch=1)` running a no-op handler, --single-n jobs (each job:
                        one reserve, one ack: the way a worker runs slow handlers).
Anchors, same run, same servers:
  * Redis:      XADD pipelined (1000 a pipeline); XREADGROUP COUNT 100 + XACK; one job per
                round trip (XREADGROUP COUNT 1, then XACK). The batch loops json-encode and decode
                the payload, as any raw code must;
  * PostgreSQL: a raw psycopg loop, one job per transaction (SELECT .. FOR UPDATE SKIP LOCKED
                LIMIT 1; UPDATE; COMMIT) on the same jobs table. Printed for reference,
                without a target: the same loop 100 jobs a transaction (one row write a job,
                at the server's durability), against the XREADGROUP anchor and the API;
  * SQLite:     a raw sqlite3 loop, one job per transaction (BEGIN IMMEDIATE; SELECT; UPDATE; COMMIT).
                Printed for reference, without a target: the same loop with leases (each
                transaction marks the last job done and leases the next: two row writes a job,
                as any queue whose jobs run outside the write lock), and the queue's own
                statements (with the delivery fence) in a bare loop: the Worker's floor.
Each API figure is measured right after its anchor, --rounds times; printed are medians, and the
verdict is on the median of the per-round ratios (this machine's load moves a lot between rounds).
Targets: enqueue and batch reserve+ack >= 0.5x the raw Redis figures (XADD pipelined; XREADGROUP
100 + XACK); the one-by-one worker >= 0.7x the one-job-at-a-time anchor of its backend.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import mosaic_storage as ms
from mosaic_storage.queue import Job, JobQueue, NewJob, Worker, open_queue

KIND = "bench.noop"
BATCH = 100


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def payload(i: int) -> dict[str, Any]:
    return {"i": i, "user": "u1"}


# --- servers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("needs redis-server on PATH, or --redis-url")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="mosaic-bench-redis-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


# --- anchors -----------------------------------------------------------------------------------


class RedisAnchors:
    """Raw redis-py loops on their own keys of the same server."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.round = 0
        self.stream = ""

    def xadd(self, n: int) -> float:
        """XADD n entries, pipelined 1000 at a time; leaves them for `read_batch`."""
        self.round += 1
        client = self.client
        self.stream = stream = f"anchor:{self.round}"
        body = [payload(i) for i in range(n)]

        def xadd() -> None:
            # Serialising the payload is part of the loop: raw code has to do it too.
            pipe = client.pipeline(transaction=False)
            for i, data in enumerate(body):
                pipe.xadd(stream, {"i": str(i), "p": json.dumps(data, separators=(",", ":"))})
                if len(pipe) >= 1000:
                    pipe.execute()
            pipe.execute()

        seconds = timed(xadd)
        client.xgroup_create(stream, "g", id="0")
        return rate(n, seconds)

    def read_batch(self, n: int) -> float:
        """XREADGROUP COUNT 100 + XACK over what `xadd` added."""
        client, stream = self.client, self.stream

        def read() -> None:
            done = 0
            while done < n:
                answer = client.xreadgroup("g", "c", {stream: ">"}, count=BATCH)
                # Decoding the payload is part of the loop: raw code has to do it too.
                ids = [
                    entry_id
                    for _, entries in answer
                    for entry_id, fields in entries
                    if json.loads(fields[b"p"])
                ]
                client.xack(stream, "g", *ids)
                done += len(ids)

        seconds = timed(read)
        client.delete(stream)
        return rate(n, seconds)

    def one_by_one(self, n: int) -> float:
        """XREADGROUP COUNT 1, then XACK: one job at a time."""
        client, stream = self.client, f"anchor:one:{self.round}"
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.xadd(stream, {"i": str(i), "p": json.dumps(payload(i), separators=(",", ":"))})
        pipe.execute()
        client.xgroup_create(stream, "g", id="0")

        def one() -> None:
            for _ in range(n):
                [(_, [(entry_id, _)])] = client.xreadgroup("g", "c", {stream: ">"}, count=1)
                client.xack(stream, "g", entry_id)

        seconds = timed(one)
        client.delete(stream)
        return rate(n, seconds)


def enqueue(store: ms.Store, kind: str, n: int) -> None:
    """Add n jobs of ``kind`` through the API (not timed: setup of a raw loop)."""
    with contextlib.closing(open_queue(store)) as queue:
        for start in range(0, n, 1000):
            queue.enqueue_many(NewJob(kind, payload(i)) for i in range(start, min(n, start + 1000)))


def raw_psycopg(store: ms.Store) -> Any:
    """A psycopg connection of the store's server, outside the pool, in transaction mode."""
    raw = store.engine.raw_connection()
    conn = raw.driver_connection
    raw.detach()
    assert conn is not None
    conn.autocommit = False
    return conn


def raw_sqlite(store: ms.Store) -> Any:
    """A sqlite3 connection to the store's file in autocommit mode (transactions are explicit)."""
    import sqlite3

    conn = sqlite3.connect(store.engine.url.database or "", isolation_level=None, timeout=30)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def postgres_anchor(store: ms.Store, single_n: int) -> float:
    enqueue(store, "anchor", single_n)
    conn = raw_psycopg(store)

    def loop() -> None:
        for _ in range(single_n):
            row = conn.execute(
                "SELECT id, payload FROM jobs WHERE status = 'queued' AND kind = 'anchor'"
                " ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                prepare=True,
            ).fetchone()
            conn.execute("UPDATE jobs SET status = 'done' WHERE id = %s", (row[0],), prepare=True)
            conn.commit()

    seconds = timed(loop)
    conn.close()
    return rate(single_n, seconds)


def postgres_batch_loop(store: ms.Store, n: int) -> float:
    """For reference, not a target: a raw batch loop on the same table, at the server's durability.

    SELECT .. LIMIT 100 FOR UPDATE SKIP LOCKED, one UPDATE of those rows to done, COMMIT: one
    durable commit and one row write a job, where the API's reserve and ack write each job twice
    (reserved with a lease, then done) because its handlers run outside the transaction.
    """
    enqueue(store, "anchor.batch", n)
    conn = raw_psycopg(store)

    def loop() -> None:
        done = 0
        while done < n:
            rows = conn.execute(
                "SELECT id, payload FROM jobs WHERE status = 'queued' AND kind = 'anchor.batch'"
                " ORDER BY run_at LIMIT %s FOR UPDATE SKIP LOCKED",
                (BATCH,),
                prepare=True,
            ).fetchall()
            if not rows:
                raise RuntimeError(f"raw batch loop ran dry after {done} of {n} jobs")
            ids = [row[0] for row in rows]
            conn.execute("UPDATE jobs SET status = 'done' WHERE id = ANY(%s)", (ids,), prepare=True)
            conn.commit()
            done += len(rows)

    seconds = timed(loop)
    conn.close()
    return rate(n, seconds)


def sqlite_anchor(store: ms.Store, single_n: int) -> float:
    enqueue(store, "anchor", single_n)
    conn = raw_sqlite(store)

    def loop() -> None:
        for _ in range(single_n):
            conn.execute("BEGIN IMMEDIATE")
            # `status <> 'done'` is the condition of the jobs table's partial index (0008):
            # without it SQLite cannot use that index and scans the table.
            row = conn.execute(
                "SELECT id, payload FROM jobs WHERE status = 'queued' AND status <> 'done'"
                " AND kind = 'anchor' ORDER BY run_at LIMIT 1"
            ).fetchone()
            conn.execute("UPDATE jobs SET status = 'done' WHERE id = ?", (row[0],))
            conn.execute("COMMIT")

    seconds = timed(loop)
    conn.close()
    return rate(single_n, seconds)


def sqlite_leased_loop(store: ms.Store, single_n: int) -> float:
    """For reference, not a target: the raw loop of a queue with leases, as the API's design.

    Each transaction marks the last job done and leases the next (status running, lease_until):
    two row writes a job where the anchor writes one, because a job that runs outside the
    write lock must be held by something a dead worker gives back.
    """
    import datetime as dt

    enqueue(store, "leased", single_n)
    conn = raw_sqlite(store)

    def loop() -> None:
        last = None
        for _ in range(single_n):
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            conn.execute("BEGIN IMMEDIATE")
            if last is not None:
                conn.execute("UPDATE jobs SET status = 'done', lease_until = NULL WHERE id = ?", (last,))
            row = conn.execute(
                "SELECT id, payload FROM jobs WHERE status = 'queued' AND status <> 'done'"
                " AND run_at <= ? AND kind = 'leased' ORDER BY run_at LIMIT 1",
                (now.isoformat(" "),),
            ).fetchone()
            conn.execute(
                "UPDATE jobs SET status = 'running', lease_until = ? WHERE id = ?",
                ((now + dt.timedelta(seconds=60)).isoformat(" "), row[0]),
            )
            conn.execute("COMMIT")
            last = row[0]
        conn.execute("UPDATE jobs SET status = 'done', lease_until = NULL WHERE id = ?", (last,))

    seconds = timed(loop)
    conn.close()
    return rate(single_n, seconds)


def sqlite_statements_loop(store: ms.Store, single_n: int) -> float:
    """For reference, not a target: the SQLite queue's own statements in a bare loop.

    What `ack_and_reserve` runs for a one-at-a-time worker (ack the last job with its
    delivery fence, pick the next, lease it), without the API's Python around them: the
    floor of the Worker on this backend.
    """
    import datetime as dt

    from mosaic_storage.queue import sqlite as queue_sql

    enqueue(store, "statements", single_n)
    conn = raw_sqlite(store)
    pick, lease = queue_sql._pick(1), queue_sql._reserve_many(1)

    def stamp(when: dt.datetime) -> str:
        return when.replace(tzinfo=None).isoformat(" ", "microseconds")

    acked = [0]

    def loop() -> None:
        last = None
        for _ in range(single_n):
            now = dt.datetime.now(dt.UTC)
            now_ts = stamp(now)
            conn.execute("BEGIN IMMEDIATE")
            if last is not None:
                acked[0] += conn.execute(queue_sql._ACK, (now_ts, *last)).rowcount
            row = conn.execute(pick, (now_ts, "statements", 1)).fetchone()
            conn.execute(lease, (stamp(now + dt.timedelta(seconds=60)), now_ts, row[0]))
            conn.execute("COMMIT")
            last = (row[0], row[3], now_ts)
        acked[0] += conn.execute(queue_sql._ACK, (stamp(dt.datetime.now(dt.UTC)), *last)).rowcount

    try:
        seconds = timed(loop)
    finally:
        conn.close()
    if acked[0] != single_n:  # a fence that no longer matches would make the loop look cheap
        raise RuntimeError(f"the statements loop acked {acked[0]} of {single_n} jobs")
    return rate(single_n, seconds)


# --- the API -----------------------------------------------------------------------------------


def api_enqueue(queue: JobQueue, n: int) -> float:
    def enqueue() -> None:
        for start in range(0, n, 1000):
            queue.enqueue_many(NewJob(KIND, payload(i)) for i in range(start, min(n, start + 1000)))

    return rate(n, timed(enqueue))


def api_batch(queue: JobQueue, n: int) -> float:
    def reserve_ack() -> None:
        done = 0
        while done < n:
            jobs = queue.reserve([KIND], lease=60, count=BATCH)
            if not jobs:
                raise RuntimeError(f"queue ran dry after {done} of {n} jobs")
            done += queue.ack_many(jobs)

    return rate(n, timed(reserve_ack))


def api_worker(queue: JobQueue, n: int) -> float:
    queue.enqueue_many(NewJob(KIND, payload(i)) for i in range(n))

    def noop(job: Job) -> None:
        return None

    worker = Worker(queue, {KIND: noop}, lease=60, prefetch=1, poll=0.0)
    report: list[Any] = []
    seconds = timed(lambda: report.append(worker.run(max_jobs=n, install_signals=False)))
    if report[0].succeeded != n:
        raise RuntimeError(f"worker ran {report[0].succeeded} of {n} jobs")
    return rate(n, seconds)


def median(values: list[float]) -> float:
    return statistics.median(values)


def run_backend(
    backend: str, args: argparse.Namespace, tmp: str, redis_url: str, anchors: RedisAnchors
) -> None:
    n, single_n = args.n // args.rounds, min(args.single_n, args.n) // args.rounds
    store = None
    if backend == "redis":
        queue = open_queue(redis_url)
        one_label = "raw XREADGROUP 1 + XACK"
    else:
        url = f"sqlite:///{tmp}/bench.db" if backend == "sqlite" else args.pg_url or f"embedded://{tmp}/pg"
        store = ms.open_store(url)
        ms.upgrade(store)
        queue = open_queue(store)
        one_label = "raw sqlite3 loop" if backend == "sqlite" else "raw psycopg SKIP LOCKED"
    print(f"{backend}:  ({args.rounds} rounds of {n} jobs and {single_n} one by one; medians)")
    # Each API figure is measured right after its anchor, and judged by the median of the
    # per-round ratios: this machine's load moves a lot between rounds.
    results: dict[str, list[tuple[float, float]]] = {"enqueue": [], "batch": [], "one": [], "leased": []}
    raw_batch: list[tuple[float, float, float]] = []  # (raw loop, Redis anchor, API) per round
    statements: list[tuple[float, float, float]] = []  # (statements loop, sqlite3 anchor, API)
    try:
        if store is not None and store.dialect == "postgresql":
            with store.engine.connect() as conn:
                fsync, sync = (
                    conn.exec_driver_sql(f"SHOW {k}").scalar() for k in ("fsync", "synchronous_commit")
                )
            print(f"  (server: fsync {fsync}, synchronous_commit {sync})")
        for _ in range(args.rounds):
            results["enqueue"].append((anchors.xadd(n), api_enqueue(queue, n)))
            results["batch"].append((anchors.read_batch(n), api_batch(queue, n)))
            if backend == "postgres":
                raw_batch.append((postgres_batch_loop(store, n), *results["batch"][-1]))  # type: ignore[arg-type]
            if backend == "redis":
                one = anchors.one_by_one(single_n)
            elif backend == "sqlite":
                one = sqlite_anchor(store, single_n)  # type: ignore[arg-type]
            else:
                one = postgres_anchor(store, single_n)  # type: ignore[arg-type]
            results["one"].append((one, api_worker(queue, single_n)))
            if backend == "sqlite":
                results["leased"].append((sqlite_leased_loop(store, single_n), results["one"][-1][1]))  # type: ignore[arg-type]
                statements.append((sqlite_statements_loop(store, single_n), *results["one"][-1]))  # type: ignore[arg-type]
    finally:
        queue.close()
        if store is not None:
            store.close()
    rows = [
        ("enqueue", "enqueue_many", "XADD pipelined", 0.5),
        ("batch", "reserve(100) + ack_many", "XREADGROUP 100 + XACK", 0.5),
        ("one", "Worker, one job at a time", one_label, 0.7),
    ]
    for key, label, anchor_label, target in rows:
        pairs = results[key]
        ratio = median([api / raw for raw, api in pairs])
        verdict = "PASS" if ratio >= target else "MISS"
        print(f"  anchor {anchor_label:<23} {median([raw for raw, _ in pairs]):>10,.0f} jobs/s")
        print(
            f"  {label:<30} {median([api for _, api in pairs]):>10,.0f} jobs/s"
            f"  {ratio:5.2f}x  {verdict} (target {target}x)"
        )
    if raw_batch:
        raw_rate = median([r for r, _, _ in raw_batch])
        print(
            f"  (no target: raw psycopg SKIP LOCKED 100 loop {raw_rate:>8,.0f} jobs/s,"
            f" {median([r / redis_rate for r, redis_rate, _ in raw_batch]):.2f}x the XREADGROUP anchor;"
            f" reserve(100) + ack_many is {median([api / r for r, _, api in raw_batch]):.2f}x of it)"
        )
    if results["leased"]:
        pairs = results["leased"]
        print(
            f"  (no target: raw sqlite3 loop with leases {median([raw for raw, _ in pairs]):>8,.0f} jobs/s;"
            f" the Worker is {median([api / raw for raw, api in pairs]):.2f}x of it)"
        )
    if statements:
        floor = median([loop / anchor for loop, anchor, _ in statements])
        loop_rate = median([loop for loop, _, _ in statements])
        print(
            f"  (no target: the queue's own statements in a bare loop"
            f" {loop_rate:>8,.0f} jobs/s, {floor:.2f}x the raw sqlite3 loop;"
            f" the Worker is {median([api / loop for loop, _, api in statements]):.2f}x of it)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="jobs for enqueue and batch reserve+ack")
    parser.add_argument("--single-n", type=int, default=20_000, help="jobs for the one-by-one loops")
    parser.add_argument("--rounds", type=int, default=5, help="anchor and API take turns this many times")
    parser.add_argument("--backends", default="sqlite,postgres,redis")
    parser.add_argument("--redis-url", help="Redis to use (default: a redis-server started here)")
    parser.add_argument("--pg-url", help="PostgreSQL to use (default: embedded, in a temp dir)")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    with (
        tempfile.TemporaryDirectory(prefix="mosaic-bench-jobs-") as tmp,
        redis_server(args.redis_url) as redis_url,
    ):
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        anchors = RedisAnchors(redis_url)
        print(f"job queue benchmark: n={args.n}, one-by-one n={min(args.single_n, args.n)}, batch {BATCH}")
        for backend in backends:
            run_backend(backend, args, tmp, redis_url, anchors)


if __name__ == "__main__":
    main()
