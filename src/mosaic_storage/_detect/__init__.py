"""Tier detection: probe every service a configured tier needs, concurrently, within one deadline.

One module per backend (`sqlite`, `postgres`, `pgvector`, `redis`) plus the `config` probe; `run`
runs them and `report` holds the records. Users import the public names from `mosaic_storage`.
"""

from __future__ import annotations

from .postgres import postgres_connect_error
from .protocol import TierDetector
from .remediations import REMEDIATIONS
from .report import ProbeResult, ProbeStatus, TierReport
from .run import (
    DEADLINE_GRACE_S,
    EMBEDDED_START_S,
    DefaultTierDetector,
    assert_tier,
    detect_tier,
    raise_for_failure,
    run_probes,
)

__all__ = [
    "DEADLINE_GRACE_S",
    "EMBEDDED_START_S",
    "REMEDIATIONS",
    "DefaultTierDetector",
    "ProbeResult",
    "ProbeStatus",
    "TierDetector",
    "TierReport",
    "assert_tier",
    "detect_tier",
    "postgres_connect_error",
    "raise_for_failure",
    "run_probes",
]
