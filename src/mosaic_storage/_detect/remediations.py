"""Every remediation line a probe can give; docs/doctor.md lists each one (a test checks it)."""

from __future__ import annotations

# Every remediation a probe can give, by name; docs/doctor.md lists each one (a test checks it).
# ``{major}`` is the PostgreSQL major version; ``{service}`` is postgres or redis.
REMEDIATIONS: dict[str, str] = {
    "needs_postgres": "set storage.url to postgresql://..., or use tier 'local'",
    "needs_redis": "set queue.url (or MOSAIC_REDIS_URL) to redis://HOST:6379/0",
    "schema_on_sqlite": "remove storage.schema, or use a postgresql:// URL",
    "embedded_not_shared": (
        "embedded:// runs on this machine only: point storage.url at a PostgreSQL server "
        "every machine can reach, or use tier 'local'"
    ),
    "sqlite_directory": "choose a writable location for storage.url, or create the directory",
    "sqlite_readonly": "make the file and its directory writable by this user",
    "sqlite_not_database": (
        "storage.url names a file that is not a SQLite database: fix the path, or move the file away"
    ),
    "schema_upgrade": "run `mosaic db upgrade` (or mosaic_storage.upgrade(store))",
    "keyword_index": (
        "run `mosaic memory reindex` (or mosaic_memory.rebuild_keyword_index(store)) to rebuild "
        "the keyword index of insights"
    ),
    "schema_newer": (
        "a newer mosaic-stack migrated this database: upgrade the package (pip install -U mosaic-stack)"
    ),
    "postgres_driver": "pip install 'mosaic-stack[postgres]'",
    "postgres_refused": "start PostgreSQL, or fix the host and port in storage.url",
    "postgres_no_answer": (
        "check the host and port in storage.url, firewall rules, and that the server is up "
        "(or allow more time: --timeout / storage.connect_timeout)"
    ),
    "postgres_host": "fix the host name in storage.url (it does not resolve)",
    "postgres_auth": "check the user name and password in the storage URL",
    "postgres_database": "create the database (createdb NAME) or fix the database name in the URL",
    "postgres_other": "check that PostgreSQL is running and that host and port in the URL are right",
    "vector_create": (
        "run CREATE EXTENSION vector; in the database (`mosaic db upgrade` does it when the role "
        "may create extensions)"
    ),
    "vector_install": (
        "install pgvector for this PostgreSQL {major} server (e.g. apt install "
        "postgresql-{major}-pgvector), then CREATE EXTENSION vector"
    ),
    "vector_bytes": (
        "this database keeps embeddings as bytes (it was made for the standalone tier): use tier "
        "'standalone', or move the data to a pgvector database with `mosaic migrate-tier`"
    ),
    "redis_driver": "pip install 'mosaic-stack[redis]'",
    "redis_refused": "start Redis/Valkey, or fix the host and port in queue.url",
    "redis_no_answer": (
        "check the host and port in queue.url, firewall rules, and that the server is up "
        "(or allow more time: --timeout / storage.connect_timeout)"
    ),
    "redis_silent": (
        "check that queue.url points at a Redis/Valkey server (and TLS: rediss://) and that it is not stuck"
    ),
    "redis_host": "fix the host name in queue.url (it does not resolve)",
    "redis_auth": "check the password (and user name) in queue.url",
    "redis_other": "check that Redis/Valkey is running and the queue URL is right",
    "redis_eviction": (
        "set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf), "
        "so a full Redis refuses writes instead of dropping queued jobs"
    ),
    "probe_crashed": "this is a bug in the probe: please report it, with the message above",
}
