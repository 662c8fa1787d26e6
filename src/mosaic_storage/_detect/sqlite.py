"""The SQLite probe: file (or directory) writable, journal mode, version, schema revision, keyword index."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import attrs
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from .._redact import redact
from .remediations import REMEDIATIONS
from .report import ProbeResult, ProbeStatus, elapsed_ms
from .schema import head_revision, with_schema


def sqlite_probe(url: str, timeout: float) -> ProbeResult:
    started = time.perf_counter()
    version = sqlite3.sqlite_version
    database = sa.make_url(url).database
    if not database or database == ":memory:":
        return ProbeResult(
            service="sqlite",
            status=ProbeStatus.OK,
            latency_ms=elapsed_ms(started),
            version=version,
            detail="in-memory database: nothing is kept after the process ends",
        )
    path = Path(database).expanduser()

    def fail(error: str, key: str) -> ProbeResult:
        return ProbeResult(
            service="sqlite",
            status=ProbeStatus.FAIL,
            latency_ms=elapsed_ms(started),
            version=version,
            error=error,
            remediation=REMEDIATIONS[key],
        )

    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return fail(f"cannot create {path}: {parent} is not a writable directory", "sqlite_directory")
        return with_schema("sqlite", started, version, [f"{path} is created on first open"], None)
    if path.is_dir():
        return fail(f"{path} is a directory, not a SQLite file", "sqlite_not_database")
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        return fail(f"{path} or its directory is not writable", "sqlite_readonly")

    def connect() -> sqlite3.Connection:
        # mode=rw: probing never creates a file.
        return sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=timeout)

    from .._migrations import revision_of

    engine = sa.create_engine("sqlite+pysqlite://", creator=connect, poolclass=NullPool)
    index_problems: tuple[str, ...] = ()
    try:
        with engine.connect() as conn:
            journal = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
            revision = revision_of(conn)
            if revision == head_revision():
                from .._keyword_index import keyword_index_report

                index_problems = keyword_index_report(conn).problems
    except sa.exc.DBAPIError as err:
        text = redact(err.orig)
        if "not a database" in text:
            return fail(f"{path} is not a SQLite database ({text})", "sqlite_not_database")
        if "readonly" in text or "unable to open" in text:
            return fail(f"cannot open {path} for writing ({text})", "sqlite_readonly")
        return fail(f"cannot read {path}: {text}", "sqlite_not_database")
    finally:
        engine.dispose()
    result = with_schema("sqlite", started, version, [f"journal_mode {journal}"], revision)
    if index_problems and result.status is ProbeStatus.OK:
        # Storage works; keyword search of memory does not see every insight as stored.
        return attrs.evolve(
            result,
            status=ProbeStatus.WARN,
            detail=f"{result.detail}; keyword index: {'; '.join(index_problems)}",
            remediation=REMEDIATIONS["keyword_index"],
        )
    return result
