"""Mosaic storage: config, tiers, the store, its schema and migrations.

Everything users may touch is listed in ``__all__``; other modules may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import (
    EmbedderConfig,
    LogsConfig,
    MemoryConfig,
    MosaicConfig,
    QueueConfig,
    QueueType,
    StorageConfig,
    StorageTier,
    SummarizationConfig,
    config_from_dict,
    load_config,
)
from ._detect import (
    DefaultTierDetector,
    ProbeResult,
    ProbeStatus,
    TierDetector,
    TierReport,
    assert_tier,
    detect_tier,
)
from ._errors import (
    AccessDenied,
    ConfigError,
    ConflictError,
    MigrationError,
    MissingExtraError,
    MosaicError,
    SchemaError,
    TierDetectionError,
)
from ._ids import new_id
from ._redact import redact, redact_data

if TYPE_CHECKING:
    from ._migrations import current, downgrade, head, schema_diff, upgrade
    from ._quickstart import QuickstartReport, QuickstartStep, quickstart
    from ._store import Capabilities, Store, open_store

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "Capabilities",
    "ConfigError",
    "ConflictError",
    "DefaultTierDetector",
    "EmbedderConfig",
    "LogsConfig",
    "MemoryConfig",
    "MigrationError",
    "MissingExtraError",
    "MosaicConfig",
    "MosaicError",
    "ProbeResult",
    "ProbeStatus",
    "QueueConfig",
    "QueueType",
    "QuickstartReport",
    "QuickstartStep",
    "SchemaError",
    "StorageConfig",
    "StorageTier",
    "Store",
    "SummarizationConfig",
    "TierDetectionError",
    "TierDetector",
    "TierReport",
    "__version__",
    "assert_tier",
    "config_from_dict",
    "current",
    "detect_tier",
    "downgrade",
    "head",
    "load_config",
    "new_id",
    "open_store",
    "quickstart",
    "redact",
    "redact_data",
    "schema_diff",
    "upgrade",
]

# SQLAlchemy, alembic and the ORM load on first use, so `import mosaic_storage` stays fast.
_LAZY = {
    "Capabilities": "_store",
    "Store": "_store",
    "open_store": "_store",
    "current": "_migrations",
    "downgrade": "_migrations",
    "head": "_migrations",
    "schema_diff": "_migrations",
    "upgrade": "_migrations",
    "quickstart": "_quickstart",
    "QuickstartReport": "_quickstart",
    "QuickstartStep": "_quickstart",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mosaic_storage' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
