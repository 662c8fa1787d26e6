"""The pgvector verdict: installed, installable or absent, and whether the tier needs it."""

from __future__ import annotations

from .._config import StorageTier
from .remediations import REMEDIATIONS
from .report import ProbeResult, ProbeStatus


def pgvector_result(
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
