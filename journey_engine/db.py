"""The database: the connection pool, its codecs, and schema migrations."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg

from journey_engine.errors import JourneyError
from journey_engine.sql import LATEST_VERSION, QUERIES, migrations, schema
from profiles import jsonb

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key held while migrating, so two engines starting together migrate once.
_MIGRATION_LOCK = 0x4A45_0001


class SchemaTooNew(JourneyError):
    """The database was migrated by a newer engine than this one."""


class ServerTooOld(JourneyError):
    """The PostgreSQL server is older than the engine supports."""


MIN_SERVER_MAJOR = 14


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode json/jsonb to Python objects (asyncpg hands back `str` otherwise)."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=_dumps, decoder=jsonb.loads, format="text"
        )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pool's (for the CLI and start-up work)."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release. asyncpg still rolls back an open transaction and drops listeners
    itself; its default reset query (RESET ALL, UNLISTEN *, CLOSE ALL, advisory unlock) would cost a round
    trip per request for state the engine never leaves behind: it sets no session settings (isolation
    levels are per transaction), takes only transaction-scoped advisory locks, and LISTENs and holds
    cursors only on connections of its own, outside the pool."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_keep_session,
        command_timeout=60,
    )
    return pool


async def schema_version(conn: asyncpg.Connection) -> int | None:
    """The version the database is at, or None for an empty database."""
    if not await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
        return None
    version: int | None = await conn.fetchval(QUERIES["schema_version"])
    return version


async def migrate(conn: asyncpg.Connection, *, fresh_from_schema: bool = True) -> list[int]:
    """Bring the database to LATEST_VERSION; return the versions applied.

    An empty database gets `schema.sql` in one go (or, with `fresh_from_schema=False`, every migration:
    the schema test builds a database both ways and compares them); an existing one gets each missing
    migration in its own transaction. Refuses a database newer than this engine, and a server older
    than PostgreSQL 14 (`extract(epoch ...)` is a double there: event times read back would be off by
    up to a microsecond).
    """
    version = conn.get_server_version()
    if version.major < MIN_SERVER_MAJOR:
        raise ServerTooOld(
            f"PostgreSQL {MIN_SERVER_MAJOR} or later is needed; the server is {version.major}.{version.minor}"
        )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        current = await schema_version(conn)
        if current is None and fresh_from_schema:
            await conn.execute(schema())
            log.info("created schema at version %d", LATEST_VERSION)
            return list(range(1, LATEST_VERSION + 1))
        if current is not None and current > LATEST_VERSION:
            raise SchemaTooNew(
                f"the database is at schema version {current}, newer than this engine's {LATEST_VERSION}"
            )
    applied: list[int] = []
    for version, name, sql in migrations():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            if (await schema_version(conn) or 0) >= version:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
        log.info("applied migration %s", name)
        applied.append(version)
    return applied
