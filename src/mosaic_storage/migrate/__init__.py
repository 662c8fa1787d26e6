"""Move a Mosaic store up a tier: SQLite or embedded PostgreSQL into PostgreSQL (+ pgvector).

```python
from mosaic_storage.migrate import PostgresTarget, SqlAlchemySource, migrate_tier

with SqlAlchemySource("sqlite:///brain.db") as source, PostgresTarget("postgresql://db/mosaic") as target:
    plan = migrate_tier(source, target, dry_run=True, init_target=True)
    report = migrate_tier(source, target, init_target=True)
    assert report.ok
```
"""

from __future__ import annotations

from ._names import SKIPPED_TABLES, snake_case
from ._postgres import PostgresTarget
from ._protocols import BatchResult, MigrationSource, MigrationTarget, TargetColumn
from ._report import MigrationReport, SkippedTable, TableReport
from ._run import DEFAULT_BATCH_SIZE, ProgressCallback, migrate_tier
from ._source import SqlAlchemySource

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SKIPPED_TABLES",
    "BatchResult",
    "MigrationReport",
    "MigrationSource",
    "MigrationTarget",
    "PostgresTarget",
    "ProgressCallback",
    "SkippedTable",
    "SqlAlchemySource",
    "TableReport",
    "TargetColumn",
    "migrate_tier",
    "snake_case",
]
