"""The `TierDetector` protocol: what any tier detector offers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._config import MosaicConfig
    from .report import TierReport


@runtime_checkable
class TierDetector(Protocol):
    """Finds out whether the services a configured tier needs are there and usable."""

    def detect(self, config: MosaicConfig, *, timeout: float | None = None) -> TierReport:
        """Probe every service ``config`` names; never raises for an unreachable service."""
        ...
