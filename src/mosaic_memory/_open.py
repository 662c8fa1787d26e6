"""`open_memory`: the memory store that fits a store, checked against the embedder it was built with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import sqlalchemy as sa

import mosaic_storage as ms
from mosaic_storage.schema import TABLES

from ._embedders import Embedder, HashingEmbedder
from ._errors import EmbedderMismatchError
from ._memory import Memory

if TYPE_CHECKING:
    from mosaic_storage import Store

META = TABLES["store_meta"]
MEMORY_SCHEMA: Final = "0008"
"""The oldest schema revision memory runs on: the newest that changed what its code relies on
(0008, the SQLite keyword index's insert trigger). Raise it with any such migration."""
EMBEDDER_KEY = "embedder"
DIM_KEY = "embedding_dim"


def embedder_from_config(config: ms.MosaicConfig) -> Embedder:
    """The embedder ``memory.embedder`` in the config names.

    ``openai`` reads its key from ``MOSAIC_EMBEDDER_API_KEY`` (else, for api.openai.com only,
    ``OPENAI_API_KEY``);
    ``MOSAIC_EMBEDDER_ALLOW_INSECURE_HTTP=1`` lets it send that key over plain http://;
    ``MOSAIC_EMBEDDER_PROXY`` names a proxy (``HTTP_PROXY`` and friends are ignored).
    """
    import os

    settings = config.memory.embedder
    source = str(config.source) if config.source else None
    if settings.type == "hashing":
        return HashingEmbedder(settings.dim)
    if settings.type == "minilm":
        from ._minilm import MINILM_DIM, MiniLMEmbedder

        if settings.dim != MINILM_DIM:
            raise ms.ConfigError(
                f"the minilm embedder makes {MINILM_DIM}-dimensional vectors, but memory.embedder.dim "
                f"is {settings.dim}; set it to {MINILM_DIM}",
                source=source,
                field="memory.embedder.dim",
            )
        return MiniLMEmbedder()
    if settings.type == "openai" and settings.base_url and settings.model:
        # OPENAI_API_KEY is OpenAI's: it goes to api.openai.com only, never to another server.
        import urllib.parse

        from ._openai import EmbedderError, OpenAICompatibleEmbedder

        openai_host = urllib.parse.urlsplit(settings.base_url).hostname == "api.openai.com"
        key_var = "MOSAIC_EMBEDDER_API_KEY"
        if not os.environ.get(key_var) and openai_host:
            key_var = "OPENAI_API_KEY"
        api_key = os.environ.get(key_var)
        insecure = os.environ.get("MOSAIC_EMBEDDER_ALLOW_INSECURE_HTTP", "").lower() in {"1", "true", "yes"}
        try:
            return OpenAICompatibleEmbedder(
                settings.base_url,
                settings.model,
                settings.dim,
                api_key=api_key,
                allow_insecure_http=insecure,
                proxy=os.environ.get("MOSAIC_EMBEDDER_PROXY") or None,
            )
        except EmbedderError as err:  # the key: the message never quotes it
            raise ms.ConfigError(
                f"{err.message} (from the environment variable {key_var})",
                source=source,
                field=key_var,
                remediation=err.remediation,
            ) from None
        except ValueError as err:
            raise ms.ConfigError(str(err), source=source, field="memory.embedder.base_url") from None
    raise ms.ConfigError(
        f"unknown or incomplete embedder {settings.type!r}; allowed values: hashing, minilm, "
        "openai (with base_url and model)",
        source=source,
        field="memory.embedder.type",
    )


def backend_for(store: Store) -> type[Memory]:
    """The memory class for what the store can do: pgvector, PostgreSQL, or SQLite."""
    from ._pgvector import PgvectorMemory
    from ._postgres import PostgresMemory
    from ._sqlite import SQLiteMemory

    if store.dialect == "sqlite":
        return SQLiteMemory
    return PgvectorMemory if store.capabilities.vector else PostgresMemory


def open_memory(
    store: Store | None = None,
    embedder: Embedder | None = None,
    *,
    dedupe_threshold: float | None = None,
) -> Memory:
    """Memory on ``store`` (default: `mosaic_storage.open_store()` from the config, closed with the memory).

    Picks the backend by what the store can do: pgvector when the store uses it (an
    embedded PostgreSQL on the local tier too), else PostgreSQL, else SQLite. ``embedder``
    defaults to the config's (`HashingEmbedder`, dim 384). The first open records the
    embedder's name in the store; later opens must use the same name and dimension.

    An added insight merges into a stored one with the same text, or (with a semantic
    embedder) one whose vector has a cosine >= ``dedupe_threshold``. Its default depends on
    the embedder (`default_dedupe_threshold`): 0.95 for semantic embedders, same text only
    for lexical ones such as `HashingEmbedder`, where a shared-words cosine would merge
    "allergic" into "not allergic". Pass a cosine to choose.

    Raises:
        SchemaError: the store's schema is older than memory needs (run `mosaic db upgrade`),
            or newer than this SDK knows (upgrade the package).
        EmbedderMismatchError: the store's vectors come from another embedder or dimension.
    """
    from mosaic_storage._store import require_schema

    owns = store is None
    store = store if store is not None else ms.open_store()
    try:
        require_schema(store, at_least=MEMORY_SCHEMA, needed_by="memory")
        embedder = embedder if embedder is not None else embedder_from_config(store.config)
        check_embedder(store, embedder)
        return backend_for(store)(store, embedder, dedupe_threshold=dedupe_threshold, owns_store=owns)
    except BaseException:
        if owns:
            store.close()
        raise


def _facts(conn: sa.Connection) -> dict[str, str]:
    return {str(key): str(value) for key, value in conn.execute(sa.select(META.c.key, META.c.value))}


def check_embedder(store: Store, embedder: Embedder) -> None:
    """Record the embedder's name on first use; fail when the store was built for another one."""
    from mosaic_storage._types import utcnow

    with store.engine.begin() as conn:
        facts = _facts(conn)
        stored_dim = int(facts.get(DIM_KEY, store.capabilities.embedding_dim))
        stored_name = facts.get(EMBEDDER_KEY)
        if stored_name is None and stored_dim == embedder.dim:
            statement: sa.Insert = (
                sa.insert(META)
                .values(key=EMBEDDER_KEY, value=embedder.name, updated_at=utcnow())
                .prefix_with("OR IGNORE", dialect="sqlite")
            )
            if store.dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                statement = (
                    pg_insert(META)
                    .values(key=EMBEDDER_KEY, value=embedder.name, updated_at=utcnow())
                    .on_conflict_do_nothing()
                )
            conn.execute(statement)
            stored_name = _facts(conn).get(EMBEDDER_KEY)
    if stored_dim != embedder.dim or stored_name != embedder.name:
        what = "dimension" if stored_dim != embedder.dim else "embedder"
        raise EmbedderMismatchError(
            f"this store's vectors were made by {stored_name or 'an unrecorded embedder'} with dimension "
            f"{stored_dim}, but the memory was opened with {embedder.name} (dimension {embedder.dim}): "
            f"{what} mismatch",
            stored_name=stored_name,
            stored_dim=stored_dim,
            name=embedder.name,
            dim=embedder.dim,
        )
