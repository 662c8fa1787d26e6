"""What a migration did (or, in a dry run, would do): frozen records, turned into JSON in one place."""

from __future__ import annotations

from typing import Any, Literal

import attrs

WriteMode = Literal["copy", "staged"]

MAX_LISTED_CONFLICTS = 100


@attrs.frozen
class TableReport:
    """One migrated table: its counts on both sides and what the run did to it."""

    table: str
    source_rows: int
    """Rows the source holds (its snapshot at the start of the run)."""
    target_rows_before: int | None
    """Rows the target held before the run (``None``: the target schema does not exist yet)."""
    target_rows: int | None
    """Rows the target holds after the run (in a dry run: before it)."""
    batches: int
    """Write transactions: done, or planned in a dry run."""
    mode: WriteMode | None = None
    """``copy``: straight into a table that was empty; ``staged``: staging table + ``ON CONFLICT``."""
    written: int = 0
    """Rows this run inserted."""
    existing: int = 0
    """Source rows the target already held with the same content (left alone)."""
    conflicts: int = 0
    """Source rows whose key the target already held with different content (left alone)."""
    conflict_keys: tuple[str, ...] = ()
    """Keys of the first conflicting rows (at most 100)."""
    indexes_rebuilt: tuple[str, ...] = ()
    """Indexes dropped for the bulk load (or left dropped by a crashed run) and built after it."""

    @property
    def short(self) -> bool:
        """The target holds fewer rows than the source: the migration is incomplete."""
        return self.target_rows is not None and self.target_rows < self.source_rows

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            **attrs.asdict(self, recurse=False),
            "conflict_keys": list(self.conflict_keys),
            "indexes_rebuilt": list(self.indexes_rebuilt),
        }


@attrs.frozen
class SkippedTable:
    """A source table that is not migrated, and why."""

    table: str
    reason: str
    rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return attrs.asdict(self)


@attrs.frozen
class MigrationReport:
    """The outcome of `migrate_tier`: per-table counts, skipped tables, and whether it is complete."""

    source: str
    """The source, credentials masked."""
    target: str
    """The target, credentials masked."""
    dry_run: bool
    schema: str
    """What happened to the target schema: ``at head``, ``upgraded from X``, ``would be created``..."""
    tables: tuple[TableReport, ...]
    skipped: tuple[SkippedTable, ...]
    seconds: float

    @property
    def rows_written(self) -> int:
        """Rows inserted into the target by this run."""
        return sum(table.written for table in self.tables)

    @property
    def source_rows(self) -> int:
        """Rows of the migrated tables in the source."""
        return sum(table.source_rows for table in self.tables)

    @property
    def conflicts(self) -> int:
        """Rows left alone because the target held the key with different content."""
        return sum(table.conflicts for table in self.tables)

    @property
    def short_tables(self) -> tuple[str, ...]:
        """Tables where the target holds fewer rows than the source."""
        return tuple(table.table for table in self.tables if table.short)

    @property
    def ok(self) -> bool:
        """Complete: every migrated table has all its rows on the target and nothing conflicted."""
        return not self.short_tables and not self.conflicts

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``mosaic migrate-tier --json`` prints)."""
        return {
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "schema": self.schema,
            "seconds": round(self.seconds, 3),
            "source_rows": self.source_rows,
            "rows_written": self.rows_written,
            "conflicts": self.conflicts,
            "short_tables": list(self.short_tables),
            "tables": [table.to_dict() for table in self.tables],
            "skipped": [table.to_dict() for table in self.skipped],
        }
