"""Tier detection: probe every service a configured tier needs, concurrently, within one deadline."""

from __future__ import annotations

import enum
import functools
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

import attrs
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from ._config import MosaicConfig, QueueType, StorageTier, check_redis_url, url_scheme
from ._errors import ConfigError, MissingExtraError, TierDetectionError
from ._redact import redact

logger = logging.getLogger("mosaic_storage.detect")

SERVICES = ("config", "sqlite", "postgres", "pgvector", "redis")

# The report's deadline is the connect timeout plus a tenth of it, at most this much: time for
# the few queries after a connect. Drivers end their own connects at the timeout; the deadline
# is for what they do not bound (libpq waits at least 2 s, DNS, a server that stalls mid-query).
DEADLINE_GRACE_S = 0.5
# Starting an embedded server (initdb on first use) is local work, not a network wait.
EMBEDDED_START_S = 60.0
# libpq counts connect_timeout in whole seconds and raises anything below 2 to 2.
_LIBPQ_MIN_TIMEOUT_S = 2

# Every remediation a probe can give, by name; docs/doctor.md lists each one (a test checks it).
# ``{major}`` is the PostgreSQL major version; ``{service}`` is postgres or redis.
REMEDIATIONS: dict[str, str] = {
    "needs_postgres": "set storage.url to postgresql://..., or use tier 'local'",
    "needs_redis": "set queue.url (or MOSAIC_REDIS_URL) to redis://HOST:6379/0",
    "schema_on_sqlite": "remove storage.schema, or use a postgresql:// URL",
    "embedded_not_shared": (
        "embedded:// runs on this machine only: point storage.url at a PostgreSQL server "
        "every machine can reach, or use tier 'local'"
    ),
    "sqlite_directory": "choose a writable location for storage.url, or create the directory",
    "sqlite_readonly": "make the file and its directory writable by this user",
    "sqlite_not_database": (
        "storage.url names a file that is not a SQLite database: fix the path, or move the file away"
    ),
    "schema_upgrade": "run `mosaic db upgrade` (or mosaic_storage.upgrade(store))",
    "schema_newer": (
        "a newer mosaic-stack migrated this database: upgrade the package (pip install -U mosaic-stack)"
    ),
    "postgres_driver": "pip install 'mosaic-stack[postgres]'",
    "postgres_refused": "start PostgreSQL, or fix the host and port in storage.url",
    "postgres_no_answer": (
        "check the host and port in storage.url, firewall rules, and that the server is up "
        "(or allow more time: --timeout / storage.connect_timeout)"
    ),
    "postgres_host": "fix the host name in storage.url (it does not resolve)",
    "postgres_auth": "check the user name and password in the storage URL",
    "postgres_database": "create the database (createdb NAME) or fix the database name in the URL",
    "postgres_other": "check that PostgreSQL is running and that host and port in the URL are right",
    "vector_create": (
        "run CREATE EXTENSION vector; in the database (`mosaic db upgrade` does it when the role "
        "may create extensions)"
    ),
    "vector_install": (
        "install pgvector for this PostgreSQL {major} server (e.g. apt install "
        "postgresql-{major}-pgvector), then CREATE EXTENSION vector"
    ),
    "vector_bytes": (
        "this database keeps embeddings as bytes (it was made for the standalone tier): use tier "
        "'standalone', or move the data to a pgvector database with `mosaic migrate-tier`"
    ),
    "redis_driver": "pip install 'mosaic-stack[redis]'",
    "redis_refused": "start Redis/Valkey, or fix the host and port in queue.url",
    "redis_no_answer": (
        "check the host and port in queue.url, firewall rules, and that the server is up "
        "(or allow more time: --timeout / storage.connect_timeout)"
    ),
    "redis_silent": (
        "check that queue.url points at a Redis/Valkey server (and TLS: rediss://) and that it is not stuck"
    ),
    "redis_host": "fix the host name in queue.url (it does not resolve)",
    "redis_auth": "check the password (and user name) in queue.url",
    "redis_other": "check that Redis/Valkey is running and the queue URL is right",
    "redis_eviction": (
        "set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf), "
        "so a full Redis refuses writes instead of dropping queued jobs"
    ),
    "probe_crashed": "this is a bug in the probe: please report it, with the message above",
}


class ProbeStatus(enum.StrEnum):
    """How a probe ended: the tier cannot run when any probe has status ``fail``."""

    OK = "ok"
    WARN = "warn"
    """The service works, but something needs attention (the remediation says what)."""
    FAIL = "fail"
    SKIPPED = "skipped"
    """The configured tier does not use this service, or it could not be checked."""

    def __str__(self) -> str:
        return self.value


def _redacted(value: str | None) -> str | None:
    return None if value is None else redact(value)


@attrs.frozen
class ProbeResult:
    """What one probe found about one service; every text is redacted when the record is made."""

    service: str = attrs.field(validator=attrs.validators.in_(SERVICES))
    status: ProbeStatus = attrs.field(converter=ProbeStatus)
    latency_ms: float | None = None
    """Time from the start of the probe to its answer (or to its failure)."""
    version: str | None = attrs.field(default=None, converter=_redacted)
    detail: str | None = attrs.field(default=None, converter=_redacted)
    """What was found (``ok``), or what needs attention (``warn``)."""
    error: str | None = attrs.field(default=None, converter=_redacted)
    """Why the service cannot be used (``fail`` only)."""
    remediation: str | None = attrs.field(default=None, converter=_redacted)
    """One line a person can act on (``warn`` and ``fail``)."""

    def __attrs_post_init__(self) -> None:
        if self.status in (ProbeStatus.WARN, ProbeStatus.FAIL) and not self.remediation:
            raise ValueError(f"a {self.status} probe result needs a remediation")
        if (self.status is ProbeStatus.FAIL) != (self.error is not None):
            raise ValueError("a probe result has an error exactly when its status is fail")

    @property
    def ok(self) -> bool:
        """Whether the tier can use this service (``ok``, ``warn`` or ``skipped``)."""
        return self.status is not ProbeStatus.FAIL

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of this result (see docs/doctor.md)."""
        return {
            "service": self.service,
            "status": self.status.value,
            "ok": self.ok,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "version": self.version,
            "detail": self.detail,
            "error": self.error,
            "remediation": self.remediation,
        }


@attrs.frozen
class TierReport:
    """One `ProbeResult` per service (config, sqlite, postgres, pgvector, redis), in that order."""

    tier: StorageTier
    probes: tuple[ProbeResult, ...]
    timeout_s: float
    """The connect timeout each probe had."""
    elapsed_ms: float
    """Wall time of the whole report."""
    storage_url: str = attrs.field(converter=redact)
    queue_url: str | None = attrs.field(default=None, converter=_redacted)

    @property
    def ok(self) -> bool:
        """Whether the configured tier can run: no probe failed."""
        return all(probe.ok for probe in self.probes)

    @property
    def failures(self) -> tuple[ProbeResult, ...]:
        """The probes that failed, in report order."""
        return tuple(probe for probe in self.probes if not probe.ok)

    def probe(self, service: str) -> ProbeResult:
        """The result for ``service``."""
        for probe in self.probes:
            if probe.service == service:
                return probe
        raise KeyError(service)

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON object (docs/doctor.md); secrets are already masked."""
        return {
            "tier": self.tier.value,
            "ok": self.ok,
            "timeout_s": self.timeout_s,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "storage_url": self.storage_url,
            "queue_url": self.queue_url,
            "probes": [probe.to_dict() for probe in self.probes],
        }

    def to_json(self) -> str:
        """`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


@runtime_checkable
class TierDetector(Protocol):
    """Finds out whether the services a configured tier needs are there and usable."""

    def detect(self, config: MosaicConfig, *, timeout: float | None = None) -> TierReport:
        """Probe every service ``config`` names; never raises for an unreachable service."""
        ...


class DefaultTierDetector:
    """Probes SQLite or PostgreSQL (+ pgvector) and Redis/Valkey concurrently, within one deadline."""

    def detect(self, config: MosaicConfig, *, timeout: float | None = None) -> TierReport:
        """See `detect_tier`."""
        return run_probes(config, timeout=timeout)


def detect_tier(config: MosaicConfig | None = None, *, timeout: float | None = None) -> TierReport:
    """Probe the services of ``config``'s tier (default: `load_config`) and report on each.

    Probes run concurrently; each connect waits at most ``timeout`` seconds (default:
    ``storage.connect_timeout``), and the whole report returns within about that long even
    when every service is down or does not answer.

    Raises:
        ConfigError: a URL in the config is malformed, or ``timeout`` is not positive.
    """
    if config is None:
        from ._config import load_config

        config = load_config()
    return DefaultTierDetector().detect(config, timeout=timeout)


def assert_tier(config: MosaicConfig | None = None, *, timeout: float | None = None) -> TierReport:
    """`detect_tier`, raising for the first failed probe; returns the report when the tier can run.

    Raises:
        TierDetectionError: with ``.service`` and ``.remediation`` of the first failure.
        ConfigError: a URL in the config is malformed.
    """
    report = detect_tier(config, timeout=timeout)
    raise_for_failure(report)
    return report


def raise_for_failure(report: TierReport) -> None:
    """Raise `TierDetectionError` for the first failed probe of ``report``, if any."""
    for probe in report.failures:
        raise TierDetectionError(
            probe.error or "failed",
            service=probe.service,
            remediation=probe.remediation or REMEDIATIONS["probe_crashed"],
        )


# --- running the probes ------------------------------------------------------------------------


def run_probes(config: MosaicConfig, *, timeout: float | None, storage_url: str | None = None) -> TierReport:
    """Run every probe; ``storage_url`` replaces an ``embedded://`` URL whose server is already up."""
    timeout = config.storage.connect_timeout if timeout is None else timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout):
        raise ConfigError(f"expected a number of seconds, got {timeout!r}", field="timeout")
    if timeout <= 0:
        raise ConfigError(f"expected a positive number of seconds, got {timeout!r}", field="timeout")
    timeout = float(timeout)
    _check_urls(config)
    scheme = url_scheme(config.storage.url)
    # Load alembic before the clock starts, so probe latencies measure the services.
    _head()
    started = time.perf_counter()
    url = storage_url or config.storage.url
    deadline = timeout + min(DEADLINE_GRACE_S, timeout / 10)
    if scheme == "embedded" and storage_url is None:
        deadline += EMBEDDED_START_S

    # Daemon threads: a probe still waiting on a socket (or on DNS) when the deadline passes is
    # left to end on its own timeouts, and never keeps the process from exiting.
    storage = _Job(_storage_probes, config, scheme, url, timeout)
    queue = _Job(_redis_probe, config, timeout)
    end = time.monotonic() + deadline
    for job in (storage, queue):
        job.done.wait(max(0.0, end - time.monotonic()))

    waited_ms = (time.perf_counter() - started) * 1000
    storage_results = storage.outcome(
        lambda: _storage_cut_off(scheme, url, timeout, waited_ms),
        lambda err: _storage_crashed(scheme, err),
    )
    queue_results = queue.outcome(
        lambda: (_no_answer_result("redis", _redis_target(config.queue.url or ""), timeout, waited_ms),),
        lambda err: (_crashed("redis", err),),
    )
    by_service = {probe.service: probe for probe in (*storage_results, *queue_results)}
    probes = (
        _config_probe(config),
        by_service["sqlite"],
        by_service["postgres"],
        by_service["pgvector"],
        by_service["redis"],
    )
    report = TierReport(
        tier=config.tier,
        probes=probes,
        timeout_s=timeout,
        elapsed_ms=(time.perf_counter() - started) * 1000,
        storage_url=config.storage.url,
        queue_url=config.queue.url,
    )
    for probe in report.probes:
        logger.debug("probe %s: %s %s", probe.service, probe.status, probe.error or probe.detail or "")
    logger.info(
        "tier %s %s (%.0f ms; storage %s)",
        report.tier.value,
        "can run" if report.ok else "cannot run: " + ", ".join(p.service for p in report.failures),
        report.elapsed_ms,
        report.storage_url,
    )
    return report


class _Job:
    """One probe running in a daemon thread; `outcome` reads its results, or says it was cut off."""

    def __init__(self, probe: Callable[..., tuple[ProbeResult, ...]], *args: Any) -> None:
        self.done = threading.Event()
        self._results: tuple[ProbeResult, ...] = ()
        self._error: BaseException | None = None
        self._probe = probe
        threading.Thread(target=self._run, args=args, daemon=True, name="mosaic-probe").start()

    def _run(self, *args: Any) -> None:
        try:
            self._results = self._probe(*args)
        except BaseException as err:  # reported as a failed probe, never lost
            self._error = err
        finally:
            self.done.set()

    def outcome(
        self,
        cut_off: Callable[[], tuple[ProbeResult, ...]],
        crashed: Callable[[BaseException], tuple[ProbeResult, ...]],
    ) -> tuple[ProbeResult, ...]:
        if not self.done.is_set():
            return cut_off()
        if self._error is not None:
            return crashed(self._error)
        return self._results


def _storage_cut_off(scheme: str, url: str, timeout: float, waited_ms: float) -> tuple[ProbeResult, ...]:
    if scheme == "sqlite":
        return (
            _no_answer_result("sqlite", url, timeout, waited_ms),
            _skipped("postgres", "storage is a SQLite file"),
            _skipped("pgvector", "storage is a SQLite file"),
        )
    target = _postgres_target(url) if scheme != "embedded" else f"embedded PostgreSQL in {url[11:]}"
    return (
        _skipped("sqlite", "storage is PostgreSQL"),
        _no_answer_result("postgres", target, timeout, waited_ms),
        _skipped("pgvector", "not checked: PostgreSQL did not answer"),
    )


def _storage_crashed(scheme: str, err: BaseException) -> tuple[ProbeResult, ...]:
    if scheme == "sqlite":
        return (
            _crashed("sqlite", err),
            _skipped("postgres", "storage is a SQLite file"),
            _skipped("pgvector", "storage is a SQLite file"),
        )
    return (
        _skipped("sqlite", "storage is PostgreSQL"),
        _crashed("postgres", err),
        _skipped("pgvector", "not checked: the PostgreSQL probe failed"),
    )


def _crashed(service: str, err: BaseException) -> ProbeResult:
    return ProbeResult(
        service=service,
        status=ProbeStatus.FAIL,
        error=f"probe failed: {type(err).__name__}: {err}",
        remediation=REMEDIATIONS["probe_crashed"],
    )


def _skipped(service: str, why: str) -> ProbeResult:
    return ProbeResult(service=service, status=ProbeStatus.SKIPPED, detail=why)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def no_answer_message(target: str, timeout: float) -> str:
    """The one message for a service that did not answer in time (blackholed, down, firewalled)."""
    return (
        f"no answer from {target} within {timeout:g} s "
        "(the host may be down, or a firewall may drop the packets)"
    )


def _no_answer_result(service: str, target: str, timeout: float, waited_ms: float) -> ProbeResult:
    key = {"redis": "redis_no_answer", "sqlite": "sqlite_directory"}.get(service, "postgres_no_answer")
    return ProbeResult(
        service=service,
        status=ProbeStatus.FAIL,
        latency_ms=waited_ms,
        error=no_answer_message(target, timeout),
        remediation=REMEDIATIONS[key],
    )


# --- config ------------------------------------------------------------------------------------


def _check_urls(config: MosaicConfig) -> None:
    """Raise `ConfigError` for a URL no probe could even try (malformed port, wrong scheme)."""
    source = str(config.source) if config.source else None
    url = config.storage.url
    if url_scheme(url) in ("postgresql", "postgres", "postgresql+psycopg"):
        try:
            ports = str(_postgres_params(url).get("port") or "")
        except ValueError:
            ports = "?"
        if not all(part.isdigit() and 0 < int(part) < 65536 for part in ports.split(",") if part):
            raise ConfigError(
                f"{redact(url)!r} is not a valid PostgreSQL URL (host, port or options)",
                field="storage.url",
                source=source,
                remediation="write it as postgresql://USER@HOST:PORT/DBNAME",
            )
    queue_url = config.queue.url
    if queue_url is not None:
        check_redis_url(queue_url, source=source)
        try:
            if url_scheme(queue_url) != "unix":
                urlsplit(queue_url).port  # noqa: B018 - parsing is the check
        except ValueError:
            raise ConfigError(
                f"the port in {redact(queue_url)!r} is not a number from 1 to 65535",
                field="queue.url",
                source=source,
                remediation="use redis://HOST:6379/0 (or rediss://, valkey://)",
            ) from None


def _config_probe(config: MosaicConfig) -> ProbeResult:
    tier = config.tier
    scheme = url_scheme(config.storage.url)
    queue_is_redis = config.queue.type is QueueType.REDIS and bool(config.queue.url)
    failures: list[tuple[str, str]] = []
    if tier is not StorageTier.LOCAL and scheme == "sqlite":
        failures.append(
            (
                f"the {tier.value} tier needs PostgreSQL, but storage.url is a SQLite file",
                REMEDIATIONS["needs_postgres"],
            )
        )
    if tier is not StorageTier.LOCAL and not queue_is_redis:
        failures.append(
            (
                f"the {tier.value} tier needs a Redis/Valkey queue, but the queue is "
                f"{config.queue.type.value}{'' if config.queue.url else ' without a url'}",
                REMEDIATIONS["needs_redis"],
            )
        )
    elif config.queue.type is QueueType.REDIS and not config.queue.url:
        failures.append(("queue type 'redis' needs a url", REMEDIATIONS["needs_redis"]))
    if scheme == "sqlite" and config.storage.schema is not None:
        failures.append(
            ("a schema is a PostgreSQL setting; SQLite has none", REMEDIATIONS["schema_on_sqlite"])
        )
    storage_kind = {"sqlite": "SQLite", "embedded": "embedded PostgreSQL"}.get(scheme, "PostgreSQL")
    summary = f"tier {tier.value}: storage {storage_kind}, queue {config.queue.type.value}"
    if failures:
        return ProbeResult(
            service="config",
            status=ProbeStatus.FAIL,
            detail=summary,
            error="; ".join(message for message, _ in failures),
            remediation="; ".join(remediation for _, remediation in failures),
        )
    if tier is not StorageTier.LOCAL and scheme == "embedded":
        return ProbeResult(
            service="config",
            status=ProbeStatus.WARN,
            detail=f"{summary}; the {tier.value} tier on embedded:// cannot be shared between machines",
            remediation=REMEDIATIONS["embedded_not_shared"],
        )
    return ProbeResult(service="config", status=ProbeStatus.OK, detail=summary)


# --- schema ------------------------------------------------------------------------------------


@functools.cache
def _head() -> str:
    import alembic.runtime.migration  # noqa: F401 - imported once here, used by revision_of

    from ._migrations import head

    return head()


def _schema_state(revision: str | None) -> tuple[ProbeStatus, str, str | None]:
    """(status, what it says, remediation key) for a database at ``revision``."""
    from ._migrations import is_known_revision

    head = _head()
    if revision == head:
        return ProbeStatus.OK, f"schema at head ({head})", None
    if revision is None:
        return ProbeStatus.WARN, f"schema empty: no Mosaic tables yet (head {head})", "schema_upgrade"
    if is_known_revision(revision):
        return ProbeStatus.WARN, f"schema at {revision}, behind head {head}", "schema_upgrade"
    return (
        ProbeStatus.FAIL,
        f"schema at {revision}, a revision this SDK does not know (its head is {head})",
        "schema_newer",
    )


def _with_schema(
    service: str, started: float, version: str, facts: list[str], revision: str | None
) -> ProbeResult:
    status, schema_text, key = _schema_state(revision)
    remediation = REMEDIATIONS[key] if key else None
    if status is ProbeStatus.FAIL:
        return ProbeResult(
            service=service,
            status=status,
            latency_ms=_elapsed_ms(started),
            version=version,
            detail="; ".join(facts),
            error=schema_text,
            remediation=remediation,
        )
    return ProbeResult(
        service=service,
        status=status,
        latency_ms=_elapsed_ms(started),
        version=version,
        detail="; ".join([*facts, schema_text]),
        remediation=remediation,
    )


# --- storage -----------------------------------------------------------------------------------


def _storage_probes(config: MosaicConfig, scheme: str, url: str, timeout: float) -> tuple[ProbeResult, ...]:
    if scheme == "sqlite":
        return (
            _sqlite_probe(url, timeout),
            _skipped("postgres", "storage is a SQLite file"),
            _skipped("pgvector", "storage is a SQLite file"),
        )
    sqlite_skipped = _skipped("sqlite", "storage is PostgreSQL")
    if scheme == "embedded":
        return (sqlite_skipped, *_embedded_probes(config, url, timeout))
    return (sqlite_skipped, *_postgres_probes(config, url, timeout))


def _sqlite_probe(url: str, timeout: float) -> ProbeResult:
    started = time.perf_counter()
    version = sqlite3.sqlite_version
    database = sa.make_url(url).database
    if not database or database == ":memory:":
        return ProbeResult(
            service="sqlite",
            status=ProbeStatus.OK,
            latency_ms=_elapsed_ms(started),
            version=version,
            detail="in-memory database: nothing is kept after the process ends",
        )
    path = Path(database).expanduser()

    def fail(error: str, key: str) -> ProbeResult:
        return ProbeResult(
            service="sqlite",
            status=ProbeStatus.FAIL,
            latency_ms=_elapsed_ms(started),
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
        return _with_schema("sqlite", started, version, [f"{path} is created on first open"], None)
    if path.is_dir():
        return fail(f"{path} is a directory, not a SQLite file", "sqlite_not_database")
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        return fail(f"{path} or its directory is not writable", "sqlite_readonly")

    def connect() -> sqlite3.Connection:
        # mode=rw: probing never creates a file.
        return sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=timeout)

    from ._migrations import revision_of

    engine = sa.create_engine("sqlite+pysqlite://", creator=connect, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            journal = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
            revision = revision_of(conn)
    except sa.exc.DBAPIError as err:
        text = redact(err.orig)
        if "not a database" in text:
            return fail(f"{path} is not a SQLite database ({text})", "sqlite_not_database")
        if "readonly" in text or "unable to open" in text:
            return fail(f"cannot open {path} for writing ({text})", "sqlite_readonly")
        return fail(f"cannot read {path}: {text}", "sqlite_not_database")
    finally:
        engine.dispose()
    return _with_schema("sqlite", started, version, [f"journal_mode {journal}"], revision)


def _postgres_params(url: str) -> dict[str, Any]:
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


def _postgres_target(url: str) -> str:
    """Where a PostgreSQL URL points, for messages: host:port/db or socket dir/db; never secrets."""
    try:
        params = _postgres_params(url)
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


def _embedded_probes(config: MosaicConfig, url: str, timeout: float) -> tuple[ProbeResult, ProbeResult]:
    from ._embedded import EmbeddedPostgres

    started = time.perf_counter()
    data_dir = Path(url.partition("://")[2]).expanduser().resolve()
    try:
        server = EmbeddedPostgres(data_dir)
    except (MissingExtraError, TierDetectionError) as err:
        return (
            ProbeResult(
                service="postgres",
                status=ProbeStatus.FAIL,
                latency_ms=_elapsed_ms(started),
                error=err.message,
                remediation=err.remediation or REMEDIATIONS["postgres_other"],
            ),
            _skipped("pgvector", "not checked: PostgreSQL did not start"),
        )
    try:
        return _postgres_probes(config, server.url, timeout)
    finally:
        server.stop()


def _postgres_probes(config: MosaicConfig, url: str, timeout: float) -> tuple[ProbeResult, ProbeResult]:
    try:
        from ._extras import require

        require("psycopg", extra="postgres", purpose="PostgreSQL storage")
    except MissingExtraError as err:
        return (
            ProbeResult(
                service="postgres",
                status=ProbeStatus.FAIL,
                error=err.message,
                remediation=REMEDIATIONS["postgres_driver"],
            ),
            _skipped("pgvector", "not checked: no PostgreSQL driver"),
        )
    from ._migrations import revision_of
    from ._store import META_TABLE

    started = time.perf_counter()

    options = f"-c statement_timeout={max(1, round(timeout * 1000))}"
    if config.storage.schema:
        options += f" -c search_path={config.storage.schema},public"
    engine = sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"),
        poolclass=NullPool,
        connect_args={
            "connect_timeout": max(_LIBPQ_MIN_TIMEOUT_S, math.ceil(timeout)),
            "options": options,
        },
    )
    try:
        with engine.connect() as conn:
            version = str(conn.exec_driver_sql("show server_version").scalar())
            major = int(str(conn.exec_driver_sql("show server_version_num").scalar())) // 10000
            revision = revision_of(conn)
            postgres_ms = _elapsed_ms(started)
            vector_started = time.perf_counter()
            installed = conn.exec_driver_sql(
                "select extversion from pg_extension where extname = 'vector'"
            ).scalar()
            available = conn.exec_driver_sql(
                "select default_version from pg_available_extensions where name = 'vector'"
            ).scalar()
            storage_kind = None
            if sa.inspect(conn).has_table(META_TABLE):
                storage_kind = conn.execute(
                    sa.text(f"select value from {META_TABLE} where key = 'embedding_storage'")
                ).scalar()
    except sa.exc.DBAPIError as err:
        error, key = classify_postgres_error(err.orig or err, _postgres_target(url), timeout)
        return (
            ProbeResult(
                service="postgres",
                status=ProbeStatus.FAIL,
                latency_ms=_elapsed_ms(started),
                error=error,
                remediation=REMEDIATIONS[key],
            ),
            _skipped("pgvector", "not checked: cannot connect to PostgreSQL"),
        )
    finally:
        engine.dispose()
    postgres = _with_schema("postgres", started, version, [f"connected to {_postgres_target(url)}"], revision)
    postgres = attrs.evolve(postgres, latency_ms=postgres_ms)
    vector = _vector_result(
        config.tier,
        installed=None if installed is None else str(installed),
        available=None if available is None else str(available),
        storage_kind=None if storage_kind is None else str(storage_kind),
        major=major,
        latency_ms=_elapsed_ms(vector_started),
    )
    return postgres, vector


def _vector_result(
    tier: StorageTier,
    *,
    installed: str | None,
    available: str | None,
    storage_kind: str | None,
    major: int,
    latency_ms: float,
) -> ProbeResult:
    needed = tier is StorageTier.FEDERATED
    if needed and storage_kind == "bytes":
        return ProbeResult(
            service="pgvector",
            status=ProbeStatus.FAIL,
            latency_ms=latency_ms,
            version=installed,
            error="the federated tier needs pgvector, which this database does not use "
            "(its embeddings are stored as bytes)",
            remediation=REMEDIATIONS["vector_bytes"],
        )
    if installed is not None:
        used = "" if needed or storage_kind == "vector" else f"; the {tier.value} tier does not use it"
        return ProbeResult(
            service="pgvector",
            status=ProbeStatus.OK,
            latency_ms=latency_ms,
            version=installed,
            detail=f"installed in this database{used}",
        )
    if available is not None:
        if not needed:
            return ProbeResult(
                service="pgvector",
                status=ProbeStatus.SKIPPED,
                latency_ms=latency_ms,
                detail=f"available ({available}), not installed; the {tier.value} tier does not need it",
            )
        return ProbeResult(
            service="pgvector",
            status=ProbeStatus.WARN,
            latency_ms=latency_ms,
            detail=f"available on the server ({available}) but not installed in this database",
            remediation=REMEDIATIONS["vector_create"],
        )
    if not needed:
        return ProbeResult(
            service="pgvector",
            status=ProbeStatus.SKIPPED,
            latency_ms=latency_ms,
            detail=f"not available on this server; the {tier.value} tier does not need it",
        )
    return ProbeResult(
        service="pgvector",
        status=ProbeStatus.FAIL,
        latency_ms=latency_ms,
        error=f"the federated tier needs pgvector, which this PostgreSQL {major} server does not have",
        remediation=REMEDIATIONS["vector_install"].format(major=major),
    )


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
        return no_answer_message(target, max(timeout, _LIBPQ_MIN_TIMEOUT_S)), "postgres_no_answer"
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
    message, key = classify_postgres_error(err, _postgres_target(url), timeout)
    return TierDetectionError(message, service="postgres", remediation=REMEDIATIONS[key])


# --- redis -------------------------------------------------------------------------------------


def _redis_target(url: str) -> str:
    """Where a Redis URL points, for messages: host:port/db or the socket path; never secrets."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"socket {parts.path}"
        port = parts.port or 6379
    except ValueError:
        return "the queue URL"
    db = parts.path.lstrip("/") or "0"
    return f"{parts.hostname or 'localhost'}:{port}/{db}"


def _redis_probe(config: MosaicConfig, timeout: float) -> tuple[ProbeResult, ...]:
    url = config.queue.url
    if config.queue.type is not QueueType.REDIS or not url:
        return (_skipped("redis", f"the queue is a table in the store ({config.queue.type.value})"),)
    try:
        from ._extras import require

        redis = require("redis", extra="redis", purpose="the Redis queue")
    except MissingExtraError as err:
        return (
            ProbeResult(
                service="redis",
                status=ProbeStatus.FAIL,
                error=err.message,
                remediation=REMEDIATIONS["redis_driver"],
            ),
        )
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    started = time.perf_counter()
    target = _redis_target(url)
    scheme = url_scheme(url)
    if scheme in ("valkey", "valkeys"):
        url = {"valkey": "redis", "valkeys": "rediss"}[scheme] + url[len(scheme) :]
    # No retries: the probe's timeout is the whole wait (redis-py would retry 3 times).
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )

    def fail(error: str, key: str) -> tuple[ProbeResult, ...]:
        return (
            ProbeResult(
                service="redis",
                status=ProbeStatus.FAIL,
                latency_ms=_elapsed_ms(started),
                error=error,
                remediation=REMEDIATIONS[key],
            ),
        )

    try:
        client.ping()
        latency = _elapsed_ms(started)
        try:
            info = client.info()
        except redis.ResponseError:
            info = {}
    except redis.AuthenticationError as err:
        return fail(f"{target} refused the login: {redact(err)}", "redis_auth")
    except redis.TimeoutError as err:
        if "connecting" in str(err).lower():
            return fail(no_answer_message(target, timeout), "redis_no_answer")
        return fail(
            f"connected to {target}, but it sent no reply within {timeout:g} s "
            "(not a Redis server, a TLS mismatch, or a stuck server)",
            "redis_silent",
        )
    except redis.ConnectionError as err:
        text = redact(err)
        lower = text.lower()
        if "refused" in lower:
            return fail(
                f"cannot connect to {target}: connection refused (nothing listens there)", "redis_refused"
            )
        if "name or service not known" in lower or "resolve" in lower or "nodename" in lower:
            return fail(f"cannot connect to {target}: {text}", "redis_host")
        return fail(f"cannot connect to {target}: {text}", "redis_other")
    except redis.ResponseError as err:
        text = redact(err)
        if any(word in text.upper() for word in ("NOAUTH", "WRONGPASS", "AUTH")):
            return fail(f"{target} refused the login: {text}", "redis_auth")
        return fail(f"{target} answered with an error: {text}", "redis_other")
    finally:
        client.close()
    flavour = "valkey" if "valkey_version" in info else "redis"
    version = info.get("valkey_version") or info.get("redis_version")
    policy = info.get("maxmemory_policy")
    facts = f"{flavour} at {target}"
    if policy and policy != "noeviction":
        return (
            ProbeResult(
                service="redis",
                status=ProbeStatus.WARN,
                latency_ms=latency,
                version=None if version is None else str(version),
                detail=f"{facts}; maxmemory-policy {policy} may evict queued jobs when memory is full",
                remediation=REMEDIATIONS["redis_eviction"],
            ),
        )
    return (
        ProbeResult(
            service="redis",
            status=ProbeStatus.OK,
            latency_ms=latency,
            version=None if version is None else str(version),
            detail=f"{facts}; maxmemory-policy {policy or 'unknown'}",
        ),
    )
