"""The PostgreSQL probe: connect, version, schema revision; pgvector facts from the same connection."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from .._config import MosaicConfig
from .._errors import MissingExtraError, TierDetectionError
from .._redact import redact
from .pgvector import pgvector_result
from .remediations import REMEDIATIONS
from .report import ProbeResult, ProbeStatus, elapsed_ms, no_answer_message, skipped
from .schema import with_schema

# libpq counts connect_timeout in whole seconds and raises anything below 2 to 2.
LIBPQ_MIN_TIMEOUT_S = 2


def postgres_params(url: str) -> dict[str, Any]:
    """libpq's view of a URL (host, port, dbname, ...); empty when psycopg is not installed.

    Raises:
        ValueError: libpq cannot parse the URL.
    """
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return {}
    try:
        return dict(conninfo_to_dict("postgresql://" + url.partition("://")[2]))
    except Exception as err:
        raise ValueError("not a libpq URL") from err


def postgres_target(url: str) -> str:
    """Where a PostgreSQL URL points, for messages: host:port/db or socket dir/db; never secrets."""
    try:
        params = postgres_params(url)
    except ValueError:
        params = {}
    host = str(params.get("host") or "")
    port = str(params.get("port") or "5432")
    dbname = str(params.get("dbname") or params.get("user") or "")
    if not host or host.startswith("/"):
        where = f"socket {host or 'default'} port {port}"
    else:
        where = f"{host}:{port}"
    return f"{where}/{dbname}" if dbname else where


def embedded_probes(config: MosaicConfig, url: str, timeout: float) -> tuple[ProbeResult, ProbeResult]:
    from .._embedded import EmbeddedPostgres

    started = time.perf_counter()
    data_dir = Path(url.partition("://")[2]).expanduser().resolve()
    try:
        server = EmbeddedPostgres(data_dir)
    except (MissingExtraError, TierDetectionError) as err:
        return (
            ProbeResult(
                service="postgres",
                status=ProbeStatus.FAIL,
                latency_ms=elapsed_ms(started),
                error=err.message.removeprefix("postgres: "),
                remediation=err.remediation or REMEDIATIONS["postgres_other"],
            ),
            skipped("pgvector", "not checked: PostgreSQL did not start"),
        )
    try:
        return postgres_probes(config, server.url, timeout)
    finally:
        server.stop()


def postgres_probes(config: MosaicConfig, url: str, timeout: float) -> tuple[ProbeResult, ProbeResult]:
    try:
        from .._extras import require

        require("psycopg", extra="postgres", purpose="PostgreSQL storage")
    except MissingExtraError as err:
        return (
            ProbeResult(
                service="postgres",
                status=ProbeStatus.FAIL,
                error=err.message,
                remediation=REMEDIATIONS["postgres_driver"],
            ),
            skipped("pgvector", "not checked: no PostgreSQL driver"),
        )
    from .._migrations import revision_of
    from .._store import read_meta

    started = time.perf_counter()

    options = f"-c statement_timeout={max(1, round(timeout * 1000))}"
    if config.storage.schema:
        options += f" -c search_path={config.storage.schema},public"
    engine = sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"),
        poolclass=NullPool,
        connect_args={
            "connect_timeout": max(LIBPQ_MIN_TIMEOUT_S, math.ceil(timeout)),
            "options": options,
        },
    )
    try:
        with engine.connect() as conn:
            version = str(conn.exec_driver_sql("show server_version").scalar())
            major = int(str(conn.exec_driver_sql("show server_version_num").scalar())) // 10000
            revision = revision_of(conn, config.storage.schema)
            postgres_ms = elapsed_ms(started)
            vector_started = time.perf_counter()
            installed = conn.exec_driver_sql(
                "select extversion from pg_extension where extname = 'vector'"
            ).scalar()
            available = conn.exec_driver_sql(
                "select default_version from pg_available_extensions where name = 'vector'"
            ).scalar()
            storage_kind = read_meta(conn, config.storage.schema).get("embedding_storage")
    except Exception as err:
        # Driver errors arrive wrapped by SQLAlchemy (DBAPIError) or, for a connection string
        # libpq rejects, straight from psycopg: both are the server's or libpq's words.
        cause = err.orig if isinstance(err, sa.exc.DBAPIError) and err.orig is not None else err
        error, key = classify_postgres_error(cause, postgres_target(url), timeout)
        return (
            ProbeResult(
                service="postgres",
                status=ProbeStatus.FAIL,
                latency_ms=elapsed_ms(started),
                error=error,
                remediation=REMEDIATIONS[key],
            ),
            skipped("pgvector", "not checked: cannot connect to PostgreSQL"),
        )
    finally:
        engine.dispose()
    postgres = with_schema("postgres", started, version, [f"connected to {postgres_target(url)}"], revision)
    postgres = attrs.evolve(postgres, latency_ms=postgres_ms)
    vector = pgvector_result(
        config.tier,
        installed=None if installed is None else str(installed),
        available=None if available is None else str(available),
        storage_kind=None if storage_kind is None else str(storage_kind),
        major=major,
        latency_ms=elapsed_ms(vector_started),
    )
    return postgres, vector


def _fatal_text(text: str) -> str:
    """The server's own words from a libpq error ("FATAL:  database "x" does not exist")."""
    for line in text.splitlines():
        if "FATAL:" in line:
            return line.split("FATAL:", 1)[1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else text


def classify_postgres_error(err: object, target: str, timeout: float) -> tuple[str, str]:
    """(message, remediation key) for a failed PostgreSQL connect: refused, no answer, auth, ..."""
    text = redact(err)
    lower = text.lower()
    if "connection refused" in lower:
        return f"cannot connect to {target}: connection refused (nothing listens there)", "postgres_refused"
    if "timeout expired" in lower or "timed out" in lower:
        return no_answer_message(target, max(timeout, LIBPQ_MIN_TIMEOUT_S)), "postgres_no_answer"
    if "password authentication failed" in lower or "no password supplied" in lower:
        return f"{target} refused the login: {_fatal_text(text)}", "postgres_auth"
    if "role" in lower and "does not exist" in lower:
        return f"{target} refused the login: {_fatal_text(text)}", "postgres_auth"
    if "database" in lower and "does not exist" in lower:
        return f"cannot connect to {target}: {_fatal_text(text)}", "postgres_database"
    if "resolve host" in lower or "translate host name" in lower or "name or service not known" in lower:
        return f"cannot connect to {target}: {_fatal_text(text)}", "postgres_host"
    return f"cannot connect to {target}: {_fatal_text(text)}", "postgres_other"


def postgres_connect_error(err: object, url: str, timeout: float) -> TierDetectionError:
    """The `TierDetectionError` for a failed PostgreSQL connect: the same words as the probe's."""
    message, key = classify_postgres_error(err, postgres_target(url), timeout)
    return TierDetectionError(message, service="postgres", remediation=REMEDIATIONS[key])
