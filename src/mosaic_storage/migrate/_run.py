"""`migrate_tier`: plan, preflight, lock, copy table by table in foreign-key order, verify."""

from __future__ import annotations

import contextlib
import functools
import math
import queue
import threading
import time
from collections.abc import Callable, Generator, Sequence

import attrs

from .._errors import MigrationError
from ._names import EXCLUDED_ROWS, SEARCH_INDEX_COLUMNS, SEARCH_INDEX_REASON, SKIPPED_TABLES
from ._protocols import MigrationSource, MigrationTarget, Row, RowFilter
from ._report import MAX_LISTED_CONFLICTS, MigrationReport, SkippedTable, TableReport, WriteMode

DEFAULT_BATCH_SIZE = 20_000
"""Rows per write transaction."""

ProgressCallback = Callable[[str, int, int], None]
"""``progress(table, rows_done, rows_total)``: called when a table starts and after each batch."""

DEFAULT_EMBEDDING_DIM = 384
_QUEUE_DEPTH = 2
# Below this many rows, keeping indexes up to date costs less than dropping and building them.
_DEFER_INDEXES_FROM = 1_000
_NOT_MOSAIC = "not part of the Mosaic schema"


@attrs.frozen
class _TablePlan:
    table: str
    columns: tuple[str, ...]
    source_rows: int
    target_rows: int | None
    exclude: RowFilter | None


@attrs.frozen
class _Plan:
    tables: tuple[_TablePlan, ...]
    skipped: tuple[SkippedTable, ...]
    target_revision: str | None
    embedding_dim: int


def migrate_tier(
    source: MigrationSource,
    target: MigrationTarget,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tables: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    init_target: bool = False,
) -> MigrationReport:
    """Copy every durable table of ``source`` into ``target``, safely and at near-COPY speed.

    Tables go in foreign-key order. ``sessions``, ``verifications`` and ``jobs`` are skipped
    (see `SKIPPED_TABLES`), and so are the source's full-text index tables. Each batch is one
    transaction; tables that were empty when the run took the lock get a straight COPY, others
    a staging table and ``INSERT ... ON CONFLICT (pk) DO NOTHING``, so running it again after any
    failure completes the job without duplicates. Rows whose key the target already holds with
    other content are reported as conflicts and left alone.

    Args:
        source: where rows come from (`SqlAlchemySource`).
        target: where they go (`PostgresTarget`).
        dry_run: plan only: count rows and batches, check everything, write nothing.
        batch_size: rows per write transaction.
        tables: migrate only these tables (still in foreign-key order).
        progress: called as ``progress(table, rows_done, rows_total)``.
        init_target: create or upgrade the target schema to head (under the lock) if it is not there.

    Raises:
        MigrationError: preflight failed (nothing written), another run holds the lock, or a batch
            failed (that batch rolled back; earlier ones are kept and a rerun resumes).
        TierDetectionError: the target lacks what its tier needs (pgvector).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.monotonic()
    plan = _plan(source, target, tables, init_target=init_target, dry_run=dry_run)
    if dry_run:
        if plan.target_revision == _head():
            schema = "at head"
        elif plan.target_revision is None:
            schema = f"would be created at {_head()}"
        else:
            schema = f"would be upgraded from {plan.target_revision} to {_head()}"
        reports = tuple(
            TableReport(
                table=item.table,
                source_rows=item.source_rows,
                target_rows_before=item.target_rows,
                target_rows=item.target_rows,
                batches=math.ceil(item.source_rows / batch_size),
                mode="staged" if item.target_rows else "copy",
            )
            for item in plan.tables
        )
        return _report(source, target, True, schema, reports, plan.skipped, started)

    with target.lock():
        schema = "at head"
        if plan.target_revision != _head():
            target.initialize(plan.embedding_dim)
            target.check_ready()
            before = plan.target_revision
            schema = f"upgraded from {before} to {_head()}" if before else f"created at {_head()}"
            plan = _plan(source, target, tables, init_target=False, dry_run=False)
        # Decided once, under the lock: COPY straight into tables that are empty now.
        staged = {item.table: target.has_rows(item.table) for item in plan.tables}
        migrated: list[TableReport] = []
        for item in plan.tables:
            if not staged[item.table] and item.source_rows >= _DEFER_INDEXES_FROM:
                target.defer_indexes(item.table)
            report = _migrate_table(source, target, item, staged[item.table], batch_size, progress)
            migrated.append(attrs.evolve(report, indexes_rebuilt=target.restore_indexes(item.table)))
        # Indexes an earlier, crashed run deferred on tables this run did not touch.
        target.restore_indexes()
    return _report(source, target, False, schema, tuple(migrated), plan.skipped, started)


def _report(
    source: MigrationSource,
    target: MigrationTarget,
    dry_run: bool,
    schema: str,
    tables: tuple[TableReport, ...],
    skipped: tuple[SkippedTable, ...],
    started: float,
) -> MigrationReport:
    return MigrationReport(
        source=source.description,
        target=target.description,
        dry_run=dry_run,
        schema=schema,
        tables=tables,
        skipped=skipped,
        seconds=time.monotonic() - started,
    )


# --- preflight ---------------------------------------------------------------------------------


@functools.cache
def _head() -> str:
    from .._migrations import head

    return head()


@functools.cache
def _known_revisions() -> frozenset[str]:
    from .._migrations import _scripts

    return frozenset(script.revision for script in _scripts().walk_revisions())


def _plan(
    source: MigrationSource,
    target: MigrationTarget,
    only: Sequence[str] | None,
    *,
    init_target: bool,
    dry_run: bool,
) -> _Plan:
    """Everything checked before the first write: schemas, tables, columns, counts, dimensions."""
    from .._types import Embedding
    from ..schema import metadata

    target_revision = target.schema_revision()
    target_ready = target_revision == _head()
    if not target_ready:
        if target_revision is not None and target_revision not in _known_revisions():
            raise MigrationError(
                f"the target schema is at revision {target_revision}, which this SDK does not know",
                remediation="upgrade mosaic-stack to the version that wrote the target",
            )
        if not init_target:
            raise MigrationError(
                f"the target schema is at {target_revision or 'nothing (empty database)'}, "
                f"migrate-tier needs {_head()}",
                remediation="pass --init-target (init_target=True) to create it, or run "
                "`mosaic db upgrade --url TARGET` first",
            )
    else:
        target.check_ready()

    source_revision = source.schema_revision()
    if source_revision is not None and source_revision not in _known_revisions():
        raise MigrationError(
            f"the source schema is at revision {source_revision}, which this SDK does not know",
            remediation="upgrade mosaic-stack to the version that wrote the source",
        )
    present = set(source.tables())
    model = [table.name for table in metadata.sorted_tables]
    if not present & set(model):
        raise MigrationError(
            f"the source {source.description} is not a Mosaic store: it has none of the tables "
            f"{', '.join(sorted(set(model) - set(SKIPPED_TABLES)))}",
            remediation="check --from; `mosaic db current --url SOURCE` shows what a Mosaic store holds",
        )
    if source_revision == _head():
        missing = [name for name in model if name not in present and name not in SKIPPED_TABLES]
        if missing:
            raise MigrationError(
                f"the source is at schema {source_revision} but lacks the tables {', '.join(missing)}",
                remediation="the source is damaged: restore it from a backup, or migrate with "
                "tables=... leaving those out",
            )
    if only is not None:
        unknown = sorted(set(only) - set(model))
        if unknown:
            raise MigrationError(
                f"unknown tables {', '.join(unknown)}",
                remediation=f"choose among {', '.join(model)}",
            )

    skipped: list[SkippedTable] = []
    for name in source.search_index_tables():
        skipped.append(SkippedTable(name, SEARCH_INDEX_REASON))
    for name in sorted(present - set(model)):
        if name != "mosaic_alembic_version":
            skipped.append(SkippedTable(name, _NOT_MOSAIC))

    source_dim = source.embedding_dim() or DEFAULT_EMBEDDING_DIM
    embedding_dim = target.embedding_dim if target_ready else source_dim
    plans: list[_TablePlan] = []
    for table in metadata.sorted_tables:
        name = table.name
        if name not in present or (only is not None and name not in only):
            continue
        if name in SKIPPED_TABLES:
            skipped.append(SkippedTable(name, SKIPPED_TABLES[name], source.count(name)))
            continue
        source_columns = source.columns(name)
        generated: set[str] = set()
        vector_dims: dict[str, int] = {}
        if target_ready:
            catalog = target.columns(name)
            writable_names = [column.name for column in catalog if not column.generated]
            generated = {column.name for column in catalog if column.generated}
            required = {column.name for column in catalog if column.required and not column.generated}
            vector_dims = {
                column.name: column.vector_dim for column in catalog if column.vector_dim is not None
            }
        else:
            writable_names = [column.name for column in table.columns]
            required = {
                column.name
                for column in table.columns
                if not column.nullable and column.server_default is None
            }
        unknown = [
            column for column in source_columns if column not in writable_names and column not in generated
        ]
        if unknown:
            raise MigrationError(
                f"source table {name} has columns the target does not: {', '.join(unknown)}",
                remediation="migrating would lose them: upgrade mosaic-stack (and the target schema) to a "
                "version that has them",
            )
        lacking = sorted(required - set(source_columns))
        if lacking:
            raise MigrationError(
                f"source table {name} lacks the required columns {', '.join(lacking)}",
                remediation="add them to the source (or bring it to the current schema), then run again",
            )
        left_behind = SEARCH_INDEX_COLUMNS.get(name, frozenset())
        columns = tuple(
            column for column in writable_names if column in source_columns and column not in left_behind
        )
        for column in table.columns:
            if isinstance(column.type, Embedding) and column.name in columns:
                dim = vector_dims.get(column.name) or embedding_dim
                mismatch = source.embedding_mismatch(name, column.name, dim)
                if mismatch is not None:
                    from ._encode import dimension_error

                    raise dimension_error(name, column.name, mismatch[0], mismatch[1], dim)
        exclude = EXCLUDED_ROWS.get(name)
        plans.append(
            _TablePlan(
                table=name,
                columns=columns,
                source_rows=source.count(name, exclude=exclude),
                target_rows=target.count(name) if target_ready else None,
                exclude=exclude,
            )
        )
    return _Plan(
        tables=tuple(plans),
        skipped=tuple(skipped),
        target_revision=target_revision,
        embedding_dim=embedding_dim,
    )


# --- copying -----------------------------------------------------------------------------------


class _Done:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _read_ahead(
    source: MigrationSource,
    item: _TablePlan,
    encode: Callable[[list[Row]], list[Row]] | None,
    batch_size: int,
) -> Generator[list[Row], None, None]:
    """The table's batches, read and converted on a thread of their own while the caller writes.

    At most a few batches wait in the queue, so memory stays bounded whatever the table size.
    """
    batches: queue.Queue[list[Row] | _Done | _Failed] = queue.Queue(maxsize=_QUEUE_DEPTH)
    stop = threading.Event()

    def offer(entry: list[Row] | _Done | _Failed) -> bool:
        while not stop.is_set():
            try:
                batches.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        reader = source.batches(item.table, item.columns, batch_size, exclude=item.exclude)
        try:
            for rows in reader:
                if not offer(encode(rows) if encode is not None else rows):
                    return
            offer(_Done())
        except BaseException as err:
            offer(_Failed(err))
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=read, name=f"mosaic-migrate-read-{item.table}", daemon=True)
    thread.start()
    try:
        while True:
            entry = batches.get()
            if isinstance(entry, _Done):
                return
            if isinstance(entry, _Failed):
                raise entry.error
            yield entry
    finally:
        stop.set()
        thread.join()


def _migrate_table(
    source: MigrationSource,
    target: MigrationTarget,
    item: _TablePlan,
    staged: bool,
    batch_size: int,
    progress: ProgressCallback | None,
) -> TableReport:
    if progress is not None:
        progress(item.table, 0, item.source_rows)
    done = written = existing = conflicts = batches = 0
    conflict_keys: list[str] = []
    mode: WriteMode = "staged" if staged else "copy"
    encode = target.encoder(item.table, item.columns)
    with contextlib.closing(_read_ahead(source, item, encode, batch_size)) as batches_read:
        for rows in batches_read:
            result = target.write_batch(item.table, item.columns, rows, staged=staged)
            if result.staged and not staged:
                staged, mode = True, "staged"
            batches += 1
            done += len(rows)
            written += result.inserted
            existing += result.existing
            conflicts += len(result.conflict_keys)
            room = MAX_LISTED_CONFLICTS - len(conflict_keys)
            if room > 0:
                conflict_keys.extend(result.conflict_keys[:room])
            if progress is not None:
                progress(item.table, done, item.source_rows)
    return TableReport(
        table=item.table,
        source_rows=item.source_rows,
        target_rows_before=item.target_rows,
        target_rows=target.count(item.table),
        batches=batches,
        mode=mode,
        written=written,
        existing=existing,
        conflicts=conflicts,
        conflict_keys=tuple(conflict_keys),
    )
