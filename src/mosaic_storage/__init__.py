"""Mosaic storage: config, tiers, the store, its schema and migrations.

Everything users may touch is listed in ``__all__``; other modules may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import (
    EmbedderConfig,
    MemoryConfig,
    MosaicConfig,
    QueueConfig,
    QueueType,
    StorageConfig,
    StorageTier,
    config_from_dict,
    load_config,
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
from ._redact import redact
from ._store import Capabilities, Store, open_store

if TYPE_CHECKING:
    from ._migrations import current, downgrade, head, schema_diff, upgrade

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "Capabilities",
    "ConfigError",
    "ConflictError",
    "EmbedderConfig",
    "MemoryConfig",
    "MigrationError",
    "MissingExtraError",
    "MosaicConfig",
    "MosaicError",
    "QueueConfig",
    "QueueType",
    "SchemaError",
    "StorageConfig",
    "StorageTier",
    "Store",
    "TierDetectionError",
    "__version__",
    "config_from_dict",
    "current",
    "downgrade",
    "head",
    "load_config",
    "new_id",
    "open_store",
    "redact",
    "schema_diff",
    "upgrade",
]

_LAZY = {"current", "downgrade", "head", "schema_diff", "upgrade"}


def __getattr__(name: str) -> Any:
    # Migrations pull in alembic; load them on first use to keep `import mosaic_storage` fast.
    if name in _LAZY:
        from . import _migrations

        return getattr(_migrations, name)
    raise AttributeError(f"module 'mosaic_storage' has no attribute {name!r}")
