"""The embedded PostgreSQL server (the `pgserver` package), used when no DATABASE_URL is set.

The server listens on a Unix socket inside its data folder only (no TCP port), so two engines on one
machine never collide. Several processes may open the same folder: `pgserver` counts the handles and
stops the server when the last one closes.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

log = logging.getLogger(__name__)

DATABASE_NAME = "journey"


class EmbeddedPostgres:
    """A handle on an embedded PostgreSQL server in `data_dir`; `stop()` releases it."""

    def __init__(self, data_dir: Path, *, cleanup: str = "stop") -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._cleanup = cleanup
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return the DSN of the engine's database, creating it if needed."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it takes is fine here.
        os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver import postgres_server

            self._server = postgres_server.get_server(self.data_dir, cleanup_mode=self._cleanup)
        admin_uri: str = self._server.get_uri()
        self._server.psql(
            f"SELECT 'CREATE DATABASE {DATABASE_NAME}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE_NAME}')\\gexec\n"
        )
        return with_database(admin_uri, DATABASE_NAME)

    def admin_dsn(self) -> str:
        """DSN of the server's `postgres` database (for tests that create databases)."""
        assert self._server is not None, "start() first"
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _runtime_dir() -> str:
    path = Path(f"/tmp/journey-engine-runtime-{os.getuid()}")
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


def with_database(dsn: str, database: str) -> str:
    """The same DSN pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database)))
