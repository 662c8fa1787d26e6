"""Schema revision of a database against the head revision this SDK ships."""

from __future__ import annotations

import functools

from .remediations import REMEDIATIONS
from .report import ProbeResult, ProbeStatus, elapsed_ms


@functools.cache
def head_revision() -> str:
    import alembic.runtime.migration  # noqa: F401 - imported once here, used by revision_of

    from .._migrations import head

    return head()


def schema_state(revision: str | None) -> tuple[ProbeStatus, str, str | None]:
    """(status, what it says, remediation key) for a database at ``revision``."""
    from .._migrations import is_known_revision

    head = head_revision()
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


def with_schema(
    service: str, started: float, version: str, facts: list[str], revision: str | None
) -> ProbeResult:
    status, schema_text, key = schema_state(revision)
    remediation = REMEDIATIONS[key] if key else None
    if status is ProbeStatus.FAIL:
        return ProbeResult(
            service=service,
            status=status,
            latency_ms=elapsed_ms(started),
            version=version,
            detail="; ".join(facts),
            error=schema_text,
            remediation=remediation,
        )
    return ProbeResult(
        service=service,
        status=status,
        latency_ms=elapsed_ms(started),
        version=version,
        detail="; ".join([*facts, schema_text]),
        remediation=remediation,
    )
