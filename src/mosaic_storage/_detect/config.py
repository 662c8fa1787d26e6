"""The config probe: do the tier, the storage URL and the queue fit together?"""

from __future__ import annotations

from urllib.parse import urlsplit

from .._config import MosaicConfig, QueueType, StorageTier, check_redis_url, url_scheme
from .._errors import ConfigError
from .._redact import redact
from .postgres import postgres_params
from .remediations import REMEDIATIONS
from .report import ProbeResult, ProbeStatus


def check_urls(config: MosaicConfig) -> None:
    """Raise `ConfigError` for a URL no probe could even try (malformed port, wrong scheme)."""
    source = str(config.source) if config.source else None
    url = config.storage.url
    if url_scheme(url) in ("postgresql", "postgres", "postgresql+psycopg"):
        try:
            ports = str(postgres_params(url).get("port") or "")
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


def config_probe(config: MosaicConfig) -> ProbeResult:
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
