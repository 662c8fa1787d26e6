"""Running the probes: concurrently in daemon threads, within one deadline; `detect_tier`, `assert_tier`."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from .._config import MosaicConfig, url_scheme
from .._errors import ConfigError, TierDetectionError
from .config import check_urls, config_probe
from .postgres import embedded_probes, postgres_probes, postgres_target
from .redis import redis_probe, redis_target
from .remediations import REMEDIATIONS
from .report import ProbeResult, TierReport, crashed, no_answer_result, skipped
from .schema import head_revision
from .sqlite import sqlite_probe

logger = logging.getLogger("mosaic_storage.detect")


# The report's deadline is the connect timeout plus a tenth of it, at most this much: time for
# the few queries after a connect. Drivers end their own connects at the timeout; the deadline
# is for what they do not bound (libpq waits at least 2 s, DNS, a server that stalls mid-query).
DEADLINE_GRACE_S = 0.5


# Starting an embedded server (initdb on first use) is local work, not a network wait.
EMBEDDED_START_S = 60.0


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
        from .._config import load_config

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


def run_probes(config: MosaicConfig, *, timeout: float | None, storage_url: str | None = None) -> TierReport:
    """Run every probe; ``storage_url`` replaces an ``embedded://`` URL whose server is already up."""
    timeout = config.storage.connect_timeout if timeout is None else timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout):
        raise ConfigError(f"expected a number of seconds, got {timeout!r}", field="timeout")
    if timeout <= 0:
        raise ConfigError(f"expected a positive number of seconds, got {timeout!r}", field="timeout")
    timeout = float(timeout)
    check_urls(config)
    # Probe what will be opened: an embedded server open_store already started is plain PostgreSQL.
    url = storage_url or config.storage.url
    scheme = url_scheme(url)
    # Load alembic before the clock starts, so probe latencies measure the services.
    head_revision()
    started = time.perf_counter()
    deadline = timeout + min(DEADLINE_GRACE_S, timeout / 10)
    if scheme == "embedded":
        deadline += EMBEDDED_START_S

    # Daemon threads: a probe still waiting on a socket (or on DNS) when the deadline passes is
    # left to end on its own timeouts, and never keeps the process from exiting.
    storage = _Job(_storage_probes, config, scheme, url, timeout)
    queue = _Job(redis_probe, config, timeout)
    end = time.monotonic() + deadline
    for job in (storage, queue):
        job.done.wait(max(0.0, end - time.monotonic()))

    waited_ms = (time.perf_counter() - started) * 1000
    storage_results = storage.outcome(
        lambda: _storage_cut_off(scheme, url, timeout, waited_ms),
        lambda err: _storage_crashed(scheme, err),
    )
    queue_results = queue.outcome(
        lambda: (no_answer_result("redis", redis_target(config.queue.url or ""), timeout, waited_ms),),
        lambda err: (crashed("redis", err),),
    )
    by_service = {probe.service: probe for probe in (*storage_results, *queue_results)}
    probes = (
        config_probe(config),
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


def _storage_probes(config: MosaicConfig, scheme: str, url: str, timeout: float) -> tuple[ProbeResult, ...]:
    if scheme == "sqlite":
        return (
            sqlite_probe(url, timeout),
            skipped("postgres", "storage is a SQLite file"),
            skipped("pgvector", "storage is a SQLite file"),
        )
    sqlite_skipped = skipped("sqlite", "storage is PostgreSQL")
    if scheme == "embedded":
        return (sqlite_skipped, *embedded_probes(config, url, timeout))
    return (sqlite_skipped, *postgres_probes(config, url, timeout))


def _storage_cut_off(scheme: str, url: str, timeout: float, waited_ms: float) -> tuple[ProbeResult, ...]:
    if scheme == "sqlite":
        return (
            no_answer_result("sqlite", url, timeout, waited_ms),
            skipped("postgres", "storage is a SQLite file"),
            skipped("pgvector", "storage is a SQLite file"),
        )
    target = postgres_target(url) if scheme != "embedded" else f"embedded PostgreSQL in {url[11:]}"
    return (
        skipped("sqlite", "storage is PostgreSQL"),
        no_answer_result("postgres", target, timeout, waited_ms),
        skipped("pgvector", "not checked: PostgreSQL did not answer"),
    )


def _storage_crashed(scheme: str, err: BaseException) -> tuple[ProbeResult, ...]:
    if scheme == "sqlite":
        return (
            crashed("sqlite", err),
            skipped("postgres", "storage is a SQLite file"),
            skipped("pgvector", "storage is a SQLite file"),
        )
    return (
        skipped("sqlite", "storage is PostgreSQL"),
        crashed("postgres", err),
        skipped("pgvector", "not checked: the PostgreSQL probe failed"),
    )
