"""`open_queue`: the job queue a config or store names."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from .._config import REDIS_SCHEMES, MosaicConfig, QueueType, url_scheme
from .protocol import Backoff, JobQueue, QueueError

if TYPE_CHECKING:
    from .._store import Store

QUEUE_SCHEMA: Final = "0008"
"""The oldest schema revision the table-backed queue runs on: memory's (its summarization is
scheduled through the queue). The jobs table's columns date from 0001; 0009 and 0010 changed
only its indexes, and the queue's statements work with either (the ON CONFLICT clause that
names 0010's partial dedupe index also matches the full constraint before it)."""


def open_queue(
    target: Store | MosaicConfig | str | os.PathLike[str] | None = None,
    *,
    backoff: Backoff | None = None,
    prefix: str | None = None,
) -> JobQueue:
    """Open the job queue ``config.queue`` names.

    ``target`` is a `Store` (its config picks the queue), a `MosaicConfig`, a URL
    (``redis://`` for Redis streams; a storage URL for its ``jobs`` table) or ``None`` (the
    config `load_config` finds). The ``database`` queue type uses the ``jobs`` table of the
    store (SQLite or PostgreSQL), which must be migrated (``mosaic db upgrade``); ``redis``
    uses Redis/Valkey streams. A store the queue opened itself is closed with the queue.

    Raises:
        QueueError: the jobs table is missing, or Redis is unreachable.
        SchemaError: the schema is older than the queue needs (``mosaic db upgrade``), or
            newer than this SDK knows (upgrade the package).
        ConfigError: the config or URL is malformed.
        MissingExtraError: the ``redis`` or ``postgres`` extra is not installed.
    """
    from .._store import Store, open_store

    if target is None:
        from .._config import load_config

        target = load_config()
    if isinstance(target, Store):
        return _from_store(target, backoff=backoff, prefix=prefix, owned=False)
    if isinstance(target, MosaicConfig):
        if target.queue.type is QueueType.REDIS and target.queue.url:
            return _redis(target.queue.url, backoff=backoff, prefix=prefix)
        return _from_store(open_store(target), backoff=backoff, prefix=prefix, owned=True)
    url = os.fspath(target)
    if url_scheme(url) in REDIS_SCHEMES:
        return _redis(url, backoff=backoff, prefix=prefix)
    store = open_store(url)
    return _from_store(store, backoff=backoff, prefix=prefix, owned=True)


def _redis(url: str, *, backoff: Backoff | None, prefix: str | None) -> JobQueue:
    from .redis import DEFAULT_PREFIX, RedisQueue

    return RedisQueue(url, backoff=backoff, prefix=prefix or DEFAULT_PREFIX)


def _from_store(store: Store, *, backoff: Backoff | None, prefix: str | None, owned: bool) -> JobQueue:
    import sqlalchemy as sa

    from .._store import require_schema

    queue_cfg = store.config.queue
    if queue_cfg.type is QueueType.REDIS and queue_cfg.url:
        if owned:
            store.close()
        return _redis(queue_cfg.url, backoff=backoff, prefix=prefix)
    try:
        has_jobs = sa.inspect(store.engine).has_table("jobs", schema=store.schema)
    except Exception:
        if owned:
            store.close()
        raise
    if not has_jobs:
        if owned:
            store.close()
        raise QueueError(
            f"{store.url} has no jobs table",
            remediation="migrate the database first: `mosaic db upgrade` (or mosaic_storage.upgrade(store))",
        )
    try:
        require_schema(store, at_least=QUEUE_SCHEMA, needed_by="the job queue")
    except BaseException:
        if owned:
            store.close()
        raise
    queue: Any
    if store.dialect == "sqlite":
        from .sqlite import SQLiteQueue

        queue = SQLiteQueue(store, backoff=backoff)
    else:
        from .postgres import PostgresQueue

        queue = PostgresQueue(store, backoff=backoff)
    if owned:
        queue.owns(store)
    result: JobQueue = queue
    return result
