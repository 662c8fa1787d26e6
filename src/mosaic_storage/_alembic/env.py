"""Alembic environment for Mosaic: runs on the connection handed over by `mosaic_storage.upgrade`."""

from __future__ import annotations

from alembic import context

from mosaic_storage._migrations import VERSION_TABLE, compare_type, include_object
from mosaic_storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Mosaic migrations run through mosaic_storage.upgrade(store) or `mosaic db upgrade`, "
        "not the alembic command line"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=compare_type,
    include_object=include_object,
    version_table=VERSION_TABLE,
    version_table_schema=context.config.attributes.get("mosaic_schema"),
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
