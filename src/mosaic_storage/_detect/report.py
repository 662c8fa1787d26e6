"""The records a probe run produces: `ProbeResult` per service, `TierReport` for the tier."""

from __future__ import annotations

import enum
import json
import time
from typing import Any

import attrs

from .._config import StorageTier
from .._redact import redact
from .remediations import REMEDIATIONS

SERVICES = ("config", "sqlite", "postgres", "pgvector", "redis")


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


def redacted(value: str | None) -> str | None:
    return None if value is None else redact(value)


@attrs.frozen
class ProbeResult:
    """What one probe found about one service; every text is redacted when the record is made."""

    service: str = attrs.field(validator=attrs.validators.in_(SERVICES))
    status: ProbeStatus = attrs.field(converter=ProbeStatus)
    latency_ms: float | None = None
    """Time from the start of the probe to its answer (or to its failure)."""
    version: str | None = attrs.field(default=None, converter=redacted)
    detail: str | None = attrs.field(default=None, converter=redacted)
    """What was found (``ok``), or what needs attention (``warn``)."""
    error: str | None = attrs.field(default=None, converter=redacted)
    """Why the service cannot be used (``fail`` only)."""
    remediation: str | None = attrs.field(default=None, converter=redacted)
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
    queue_url: str | None = attrs.field(default=None, converter=redacted)

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


def skipped(service: str, why: str) -> ProbeResult:
    return ProbeResult(service=service, status=ProbeStatus.SKIPPED, detail=why)


def crashed(service: str, err: BaseException) -> ProbeResult:
    return ProbeResult(
        service=service,
        status=ProbeStatus.FAIL,
        error=f"probe failed: {type(err).__name__}: {err}",
        remediation=REMEDIATIONS["probe_crashed"],
    )


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def no_answer_message(target: str, timeout: float) -> str:
    """The one message for a service that did not answer in time (blackholed, down, firewalled)."""
    return (
        f"no answer from {target} within {timeout:g} s "
        "(the host may be down, or a firewall may drop the packets)"
    )


def no_answer_result(service: str, target: str, timeout: float, waited_ms: float) -> ProbeResult:
    key = {"redis": "redis_no_answer", "sqlite": "sqlite_directory"}.get(service, "postgres_no_answer")
    return ProbeResult(
        service=service,
        status=ProbeStatus.FAIL,
        latency_ms=waited_ms,
        error=no_answer_message(target, timeout),
        remediation=REMEDIATIONS[key],
    )
