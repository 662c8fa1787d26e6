"""Memory search benchmark: ingest rate, search latency and recall per backend, against anchors.

Run:  PYTHONPATH=src python benchmarks/memory_search.py [--n 100000] [--queries 200] [--backends ...]

Data: N clustered vectors (points around --centres centres; uniform random vectors defeat
every ANN index and measure nothing), owned by three users: "u1" holds 1% of the rows,
"u30" 30%, "u69" the rest. Every API search carries its user_id filter, as in production.

Per backend (sqlite, postgres without pgvector, pgvector; embedded PostgreSQL 18 + pgvector):
  * ingest rate through `insights.add_many` (dedupe on, batches of 1000); and the same with
    the hashing embedder on generated texts (--text-n rows);
  * search p50 / p95 and recall@10 against exact search, per user.
Anchors measured in the same run: numpy brute force over the same vectors, and raw pgvector
SQL: unfiltered HNSW (m=16, ef_construction=64, ef_search=40, raised until recall@10 >= 0.98),
and for the filtered queries the planner's default plan, exact search through the user_id
btree, and iterative HNSW scans.

The end of the output lists every issue-5 target with its measured ratio and PASS or MISS.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

import mosaic_storage as ms
from mosaic_memory import NewInsight, open_memory
from mosaic_storage._types import VECTOR_FLAG

USERS = (("u1", 0.01), ("u30", 0.30), ("u69", 0.69))
K = 10
INGEST_TARGETS = {"sqlite": 5000.0, "pgvector": 2000.0}
LOCAL_FACTOR = 1.5
PGVECTOR_FACTOR = 2.0
MIN_RECALL = 0.98

TARGETS: list[str] = []


def target(label: str, ok: bool, detail: str) -> None:
    """Record one issue-5 target for the closing summary."""
    TARGETS.append(f"  {'PASS' if ok else 'MISS'}  {label}: {detail}")


def clustered(n: int, dim: int, centres: int, rng: np.random.Generator) -> np.ndarray:
    means = rng.normal(size=(centres, dim)).astype(np.float32)
    points = means[rng.integers(0, centres, n)] + rng.normal(scale=0.45, size=(n, dim)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def timed(fn: Callable[[], object], repeat: list[float]) -> object:
    start = time.perf_counter()
    out = fn()
    repeat.append(time.perf_counter() - start)
    return out


def exact_top(matrix: np.ndarray, ids: list[str], q: np.ndarray, *, blas: bool = True) -> list[str]:
    scores = matrix @ q if blas else np.einsum("ij,j->i", matrix, q)
    best = np.argpartition(-scores, K)[:K]
    return [ids[i] for i in best[np.argsort(-scores[best])]]


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True)) / (K * len(truth))


def line(label: str, times: list[float], rec: float | None = None, extra: str = "") -> None:
    r = f"  recall@10 {rec:.3f}" if rec is not None else ""
    print(f"    {label:<52} p50 {pct(times, 50):7.2f} ms  p95 {pct(times, 95):7.2f} ms{r}{extra}")


@attrs.define
class Data:
    vectors: np.ndarray
    owner: list[str]
    queries: np.ndarray


def make_data(args: argparse.Namespace) -> Data:
    rng = np.random.default_rng(42)
    vectors = clustered(args.n, args.dim, args.centres, rng)
    owner: list[str] = []
    for user, share in USERS:
        owner += [user] * round(args.n * share)
    owner = (owner + ["u69"] * args.n)[: args.n]
    rng.shuffle(owner)
    queries = clustered(args.queries, args.dim, args.centres, np.random.default_rng(42))
    # Queries from the same centres as the data (the first draw of the same generator).
    return Data(vectors, owner, queries)


def open_backend(kind: str, workdir: Path, pg_url: str | None) -> ms.Store:
    if kind == "sqlite":
        return ms.open_store(f"sqlite:///{workdir}/bench.db")
    assert pg_url is not None
    store = ms.open_store(pg_url)
    if kind == "postgres":
        # The standalone tier on the same server: embeddings as bytes, pgvector unused.
        store.capabilities = attrs.evolve(store.capabilities, vector=False)
        setattr(store.engine.dialect, VECTOR_FLAG, False)
    return store


def fresh_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.replace("/postgres?", f"/{name}?", 1)


def bench_backend(
    kind: str, data: Data, args: argparse.Namespace, workdir: Path, admin_url: str | None
) -> dict[str, tuple[float, float, float]]:
    pg_url = fresh_database(admin_url, f"bench_{kind}") if admin_url and kind != "sqlite" else None
    store = open_backend(kind, workdir, pg_url)
    ms.upgrade(store)
    # The hashing embedder dedupes only the same text by default; 0.95 keeps the cosine probe measured.
    mem = open_memory(store, dedupe_threshold=0.95)
    print(f"\n== {kind} ({type(mem).__name__}) ==")
    ids: dict[str, list[str]] = {}
    rows: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    for user, _ in USERS:
        mask = np.asarray([o == user for o in data.owner])
        rows[user] = data.vectors[mask]
        items = [NewInsight(f"{user} insight {i}", embedding=v) for i, v in enumerate(rows[user])]
        ids[user] = mem.insights.add_many(items, user_id=user)
    elapsed = time.perf_counter() - start
    n = sum(len(v) for v in ids.values())
    print(
        f"  ingest add_many, given vectors, dedupe on: {n / elapsed:,.0f} insights/s "
        f"({n} rows, {elapsed:.1f} s)"
    )
    for user_ids in ids.values():
        assert len(set(user_ids)) == len(user_ids), "clustered data must not trigger dedupe"
    raw_ingest_anchor(kind, store, data.vectors[: max(1000, args.n // 10)])

    if args.text_n:
        words = [f"w{i}" for i in range(5000)]
        rng = np.random.default_rng(7)
        texts = [" ".join(rng.choice(words, 8)) for _ in range(args.text_n)]
        # The hashing embedder's own dedupe (the default: the same text, since its vectors are
        # lexical), and the cosine probe at 0.95 as semantic embedders dedupe (each batch is
        # compared with every stored vector of the user: it grows with the user's rows).
        with open_memory(store) as default_mem:
            start = time.perf_counter()
            default_mem.insights.add_many(texts, user_id="texts")
            elapsed = time.perf_counter() - start
        rate = args.text_n / elapsed
        print(
            f"  ingest add_many, hashing embedder, dedupe on (its default, same text): "
            f"{rate:,.0f} insights/s "
            f"({args.text_n} rows)"
        )
        start = time.perf_counter()
        mem.insights.add_many(texts, user_id="texts-cosine")
        cosine_rate = args.text_n / (time.perf_counter() - start)
        print(
            f"  ingest add_many, hashing embedder, dedupe on with the cosine probe (>= 0.95): "
            f"{cosine_rate:,.0f} insights/s ({args.text_n} rows)"
        )
        goal = INGEST_TARGETS.get(kind)
        if goal:
            index = " (HNSW maintained)" if kind == "pgvector" else ""
            target(
                f"{kind} ingest, hashing embedder, dedupe on{index} >= {goal:,.0f}/s",
                rate >= goal,
                f"{rate:,.0f}/s = {rate / goal:.2f}x the target "
                f"(with the cosine probe at 0.95: {cosine_rate:,.0f}/s)",
            )

    if kind == "pgvector":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE insights")
    results: dict[str, tuple[float, float, float]] = {}
    for user, share in USERS:
        truth = [exact_top(rows[user], ids[user], q) for q in data.queries]
        times: list[float] = []
        found = []
        mem.insights.search("", user_id=user, mode="vector", vector=data.queries[0])  # warm the cache
        for q in data.queries:
            hits = timed(
                lambda q=q, user=user: mem.insights.search(
                    "", user_id=user, mode="vector", vector=q, limit=K
                ),
                times,
            )
            found.append([h.id for h in hits])  # type: ignore[attr-defined]
        rec = recall(found, truth)
        line(f"API search, user {user} ({share:.0%} of rows)", times, rec)
        results[user] = (pct(times, 50), pct(times, 95), rec)
        if kind != "pgvector":
            mine = NUMPY_P95[user]
            whole = NUMPY_P95["all"]
            p95 = results[user][1]
            target(
                f"{kind} search p95 within {LOCAL_FACTOR}x numpy brute force over all rows, user {user}",
                p95 <= LOCAL_FACTOR * whole and rec == 1.0,
                f"{p95:.2f} ms vs {whole:.2f} ms = {p95 / whole:.2f}x, recall {rec:.3f}",
            )
            target(
                f"{kind} search p95 within {LOCAL_FACTOR}x numpy over that user's own rows, user {user}",
                p95 <= LOCAL_FACTOR * mine and rec == 1.0,
                f"{p95:.2f} ms vs {mine:.2f} ms = {p95 / mine:.2f}x (fixed cost per call: SQL for the "
                "generation check and the hits' rows)",
            )
    if kind == "pgvector":
        raw_pgvector(store, data, ids, rows, results)
    mem.close()
    store.close()
    return results


def raw_ingest_anchor(kind: str, store: ms.Store, vectors: np.ndarray) -> None:
    """Raw executemany INSERT of (id, user_id, vector) in batches of 1000, no API, no dedupe."""
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        dim = vectors.shape[1]
        if kind == "pgvector":
            from pgvector.psycopg import register_vector

            register_vector(raw.driver_connection)
            cur.execute(
                f"CREATE TABLE raw_ingest (id text primary key, user_id text, embedding vector({dim}))"
            )
            cur.execute("CREATE INDEX ON raw_ingest USING hnsw (embedding vector_cosine_ops)")
            rows = [(f"r{i}", "u", v) for i, v in enumerate(vectors)]
            sql = "INSERT INTO raw_ingest VALUES (%s, %s, %s)"
        else:
            cur.execute("CREATE TABLE raw_ingest (id text primary key, user_id text, embedding bytea)")
            rows = [(f"r{i}", "u", v.tobytes()) for i, v in enumerate(vectors)]
            sql = (
                "INSERT INTO raw_ingest VALUES (%s, %s, %s)"
                if kind != "sqlite"
                else ("INSERT INTO raw_ingest VALUES (?, ?, ?)")
            )
        raw.commit()
        start = time.perf_counter()
        for i in range(0, len(rows), 1000):
            cur.executemany(sql, rows[i : i + 1000])
            raw.commit()
        elapsed = time.perf_counter() - start
        label = "with HNSW maintained" if kind == "pgvector" else "plain table"
        print(
            f"  anchor: raw executemany INSERT ({label}): {len(rows) / elapsed:,.0f} rows/s "
            f"({len(rows)} rows)"
        )
        cur.execute("DROP TABLE raw_ingest")
        raw.commit()
    finally:
        raw.close()


def raw_pgvector(
    store: ms.Store,
    data: Data,
    ids: dict[str, list[str]],
    rows: dict[str, np.ndarray],
    api: dict[str, tuple[float, float, float]],
) -> None:
    """Raw SQL anchors on the same table: no API, one statement per query."""
    print("  raw pgvector SQL anchors (same table, HNSW m=16 ef_construction=64):")
    from pgvector.psycopg import register_vector

    raw = store.engine.raw_connection()
    conn = raw.driver_connection
    conn.autocommit = True
    register_vector(conn)  # vectors go over the wire in binary, as the API sends them

    def literal(q: np.ndarray) -> np.ndarray:
        return q

    def run(sql: str, params: tuple, setup: tuple[str, ...] = ()) -> tuple[list[float], list[list[str]]]:
        times: list[float] = []
        found = []
        for q in data.queries:
            start = time.perf_counter()
            with conn.transaction():
                for statement in setup:
                    conn.execute(statement)
                got = [r[0] for r in conn.execute(sql, (literal(q), *params)).fetchall()]
            times.append(time.perf_counter() - start)
            found.append(got)
        return times, found

    all_ids = [i for user in ids for i in ids[user]]
    all_rows = np.concatenate([rows[user] for user in ids])
    truth_all = [exact_top(all_rows, all_ids, q) for q in data.queries]
    # The anchor is the raw HNSW query at recall@10 >= MIN_RECALL: ef_search 40 first (the
    # issue's setting), raised until the recall is reached (an index grown insert by insert
    # over clustered vectors needs more than one built in one go).
    anchor: tuple[int, float, float] | None = None
    for ef in (40, 64, 100, 200, 400):
        times, found = run(
            "SELECT id FROM insights ORDER BY embedding <=> %s::vector LIMIT 10",
            (),
            (f"SET LOCAL hnsw.ef_search = {ef}",),
        )
        unfiltered_recall = recall(found, truth_all)
        line(f"unfiltered HNSW ef_search={ef} (all rows)", times, unfiltered_recall)
        if unfiltered_recall >= MIN_RECALL:
            anchor = (ef, pct(times, 95), unfiltered_recall)
            break
    big = USERS[-1][0]
    p95, rec = api[big][1], api[big][2]
    label = (
        f"pgvector API search p95 within {PGVECTOR_FACTOR}x raw unfiltered HNSW at recall@10 >= "
        f"{MIN_RECALL} (user {big}, the largest; every API search carries its user filter)"
    )
    if anchor is None:
        target(label, False, "no ef_search up to 400 reached the recall on the raw query")
    else:
        ef, unfiltered_p95, unfiltered_recall = anchor
        target(
            label,
            p95 <= PGVECTOR_FACTOR * unfiltered_p95 and rec >= MIN_RECALL,
            f"{p95:.2f} ms vs {unfiltered_p95:.2f} ms (ef_search={ef}, recall {unfiltered_recall:.3f})"
            f" = {p95 / unfiltered_p95:.2f}x, API recall {rec:.3f}",
        )
    times_np = []
    for q in data.queries:
        timed(lambda q=q: exact_top(all_rows, all_ids, q), times_np)
    line("numpy brute force (all rows)", times_np)

    filtered = "SELECT id FROM insights WHERE user_id = %s ORDER BY embedding <=> %s::vector LIMIT 10"
    plans = {
        "planner default (HNSW, post-filter) ef=40": (filtered, ("SET LOCAL hnsw.ef_search = 40",)),
        "exact via user_id btree": (
            "SELECT id FROM insights WHERE user_id = %s ORDER BY (embedding <=> %s::vector) + 0 LIMIT 10",
            (),
        ),
        "iterative HNSW relaxed ef=40": (
            filtered,
            ("SET LOCAL hnsw.ef_search = 40", "SET LOCAL hnsw.iterative_scan = relaxed_order"),
        ),
        "iterative HNSW relaxed ef=100": (
            filtered,
            ("SET LOCAL hnsw.ef_search = 100", "SET LOCAL hnsw.iterative_scan = relaxed_order"),
        ),
        "iterative HNSW relaxed ef=200": (
            filtered,
            ("SET LOCAL hnsw.ef_search = 200", "SET LOCAL hnsw.iterative_scan = relaxed_order"),
        ),
        "iterative HNSW strict ef=40": (
            filtered,
            ("SET LOCAL hnsw.ef_search = 40", "SET LOCAL hnsw.iterative_scan = strict_order"),
        ),
    }
    for user, share in USERS:
        truth = [exact_top(rows[user], ids[user], q) for q in data.queries]
        print(
            f"   filtered to user {user} ({share:.0%} of rows); "
            f"API p50 {api[user][0]:.2f} p95 {api[user][1]:.2f} ms"
        )
        best: tuple[float, str] | None = None
        for label, (sql, setup) in plans.items():
            # Parameters: the user first in SQL text order, then the vector.
            sql_ordered = sql.replace("user_id = %s", "user_id = %(u)s").replace(
                "%s::vector", "%(q)s::vector"
            )
            times = []
            found = []
            for q in data.queries:
                start = time.perf_counter()
                with conn.transaction():
                    for statement in setup:
                        conn.execute(statement)
                    got = [r[0] for r in conn.execute(sql_ordered, {"u": user, "q": literal(q)}).fetchall()]
                times.append(time.perf_counter() - start)
                found.append(got)
            rec = recall(found, truth)
            line(label, times, rec)
            if rec >= 0.98 and (best is None or pct(times, 95) < best[0]):
                best = (pct(times, 95), label)
        if best:
            print(
                f"    -> best raw plan at recall >= 0.98: {best[1]} (p95 {best[0]:.2f} ms); API/best p95 = "
                f"{api[user][1] / best[0]:.2f}x"
            )
        if user == big:
            continue
        p95, rec = api[user][1], api[user][2]
        label = (
            f"pgvector filtered search p95 within {PGVECTOR_FACTOR}x the best raw plan "
            f"at recall@10 >= {MIN_RECALL}, user {user} ({share:.0%})"
        )
        if best is None:
            target(label, False, "no raw plan reached the recall")
        else:
            target(
                label,
                p95 <= PGVECTOR_FACTOR * best[0] and rec >= MIN_RECALL,
                f"{p95:.2f} ms vs {best[0]:.2f} ms ({best[1]}) = {p95 / best[0]:.2f}x, API recall {rec:.3f}",
            )
    raw.close()


NUMPY_P95: dict[str, float] = {}
"""numpy brute-force p95 (ms) per user and over all rows ("all"), the faster kernel of the two."""


def numpy_anchor(data: Data) -> None:
    print("\n== numpy brute force over the same vectors (anchor) ==")
    for user, share in (*USERS, ("all", 1.0)):
        mask = np.asarray([o == user or user == "all" for o in data.owner])
        matrix = np.ascontiguousarray(data.vectors[mask])
        ids = [str(i) for i in range(len(matrix))]
        for blas in (True, False):
            times: list[float] = []
            for q in data.queries:
                timed(
                    lambda q=q, matrix=matrix, ids=ids, blas=blas: exact_top(matrix, ids, q, blas=blas), times
                )
            kernel = "matmul (BLAS)" if blas else "einsum"
            line(f"user {user} ({share:.0%}, {len(matrix)} vectors), {kernel}", times)
            NUMPY_P95[user] = min(NUMPY_P95.get(user, float("inf")), pct(times, 95))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--centres", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--text-n", type=int, default=20_000, help="rows for the hashing-embedder ingest")
    parser.add_argument("--backends", default="sqlite,postgres,pgvector")
    args = parser.parse_args()
    if args.dim != 384:
        print("note: the store's dimension follows the config (384); use --dim 384")
    data = make_data(args)
    print(f"{args.n} insights, dim {args.dim}, {args.centres} centres, {args.queries} queries, k={K}")
    numpy_anchor(data)
    workdir = Path(tempfile.mkdtemp(prefix="mosaic-bench-"))
    admin_url = None
    server = None
    try:
        kinds = args.backends.split(",")
        if any(k != "sqlite" for k in kinds):
            from mosaic_storage._embedded import EmbeddedPostgres

            server = EmbeddedPostgres(workdir / "pg")
            admin_url = server.url.replace("/mosaic?", "/postgres?", 1)
        summary = {kind: bench_backend(kind, data, args, workdir, admin_url) for kind in kinds}
        print("\n== summary: API search p95 (ms) / recall@10 ==")
        for kind, results in summary.items():
            cells = "  ".join(f"{u}: {r[1]:.2f} / {r[2]:.3f}" for u, r in results.items())
            print(f"  {kind:<9} {cells}")
        print(f"\n== issue-5 targets ({len(TARGETS)}) ==")
        print("\n".join(TARGETS))
        print(f"  load average at the end of the run: {Path('/proc/loadavg').read_text().split()[:3]}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
