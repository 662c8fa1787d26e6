"""Which tables move between tiers, which stay behind and why, and how source names are normalised."""

from __future__ import annotations

import re

SKIPPED_TABLES: dict[str, str] = {
    "sessions": "login sessions expire (TTL); users sign in again on the new tier",
    "verifications": "one-time verification values (email links, codes) are useless once moved",
    "jobs": "queued background jobs are bound to the deployment that enqueued them",
}
"""Tables migrate-tier never copies, with the reason it gives in the report."""

SEARCH_INDEX_REASON = "search index of the source (SQLite FTS5); the target builds its own"

SEARCH_INDEX_COLUMNS: dict[str, frozenset[str]] = {"insights": frozenset({"search_key"})}
"""Columns never copied: the source's keys into its own keyword index. Copied, they would
collide (unique index) with the keys of rows already in the target, and the conflicting
rows would be skipped; the target keys its own index (or, on PostgreSQL, needs none)."""

# Rows of these tables describe the physical database they live in, not user data: the
# target records its own embedding storage and dimension when its schema is created.
EXCLUDED_ROWS: dict[str, tuple[str, frozenset[str]]] = {
    # migrate_tier.* keys are a run's own bookkeeping (deferred index definitions): never data.
    "store_meta": ("key", frozenset({"embedding_storage", "embedding_dim", "migrate_tier.*"})),
}

# The tables SQLite's FTS5 keeps behind each virtual table.
FTS5_SHADOW_SUFFIXES = ("_data", "_idx", "_content", "_docsize", "_config")

LOCK_NAME = "mosaic-migrate-tier"

_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``userId`` -> ``user_id``, ``HTTPServer`` -> ``http_server``; snake_case names are unchanged."""
    return _BOUNDARY.sub("_", name).lower()
