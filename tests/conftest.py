"""Fixtures on real parts: one PostgreSQL per test session, a fresh database per test, the app on a real
socket, and a real webhook receiver on 127.0.0.1.

PostgreSQL is the embedded server (`pgserver`) unless DATABASE_URL names another; each test gets
`CREATE DATABASE ... TEMPLATE` of a database migrated once per session.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from journey_engine import workspaces
from journey_engine.app import RUNNER_OPTIONS, create_app
from journey_engine.db import connect, migrate
from journey_engine.embedded import EmbeddedPostgres, with_database
from journey_engine.settings import Settings
from tests.helpers import WebhookReceiver, WorkspaceKey


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a maintenance database on the session's PostgreSQL server."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", cleanup="delete")
    server.start()
    try:
        yield server.admin_dsn()
    finally:
        server.stop()


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_database(pg_admin_dsn: str) -> Iterator[str]:
    """Name of a database migrated once per session: the template of `fresh_database`."""
    name = f"je_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def build() -> None:
        await _admin(pg_admin_dsn, f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(pg_admin_dsn, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    try:
        yield name
    finally:
        asyncio.run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def shared_database(pg_admin_dsn: str, template_database: str) -> Iterator[str]:
    """DSN of the session's working database; `database` empties it before each test."""
    name = f"je_shared_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    try:
        yield with_database(pg_admin_dsn, name)
    finally:
        asyncio.run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def make_database(pg_admin_dsn: str) -> Iterator[Callable[..., Awaitable[str]]]:
    """Create empty (or templated) databases for a test; all are dropped after it."""
    made: list[str] = []

    async def make(template: str | None = None) -> str:
        name = f"je_test_{uuid.uuid4().hex[:12]}"
        clause = f' TEMPLATE "{template}"' if template else ""
        await _admin(pg_admin_dsn, f'CREATE DATABASE "{name}"{clause}')
        made.append(name)
        return with_database(pg_admin_dsn, name)

    yield make
    if made:
        asyncio.run(_admin(pg_admin_dsn, *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in made)))


@pytest.fixture
async def fresh_database(make_database: Callable[..., Awaitable[str]], template_database: str) -> str:
    """A migrated database of this test's own (~0.3 s): for tests that change the schema itself."""
    return await make_database(template_database)


@pytest.fixture
async def database(shared_database: str) -> str:
    """DSN of a migrated database holding no rows but the schema version (emptied in milliseconds)."""
    conn = await asyncpg.connect(shared_database)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'schema_version'"
        )
        await conn.execute(f"TRUNCATE {', '.join(r['t'] for r in tables)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    return shared_database


@pytest.fixture
async def db(database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, for arranging and checking state directly."""
    conn = await connect(database)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def settings(database: str, tmp_path: Path) -> Settings:
    return Settings.from_env({}, database_url=database, data_dir=tmp_path / "unused-data")


@pytest.fixture
async def make_client(settings: Settings) -> AsyncIterator[Callable[..., Awaitable[TestClient]]]:  # type: ignore[type-arg]
    """Serve an app built by `create_app` on a real socket on 127.0.0.1 (optionally on another database)."""
    clients: list[TestClient] = []  # type: ignore[type-arg]

    async def make(database_url: str | None = None, **overrides: object) -> TestClient:  # type: ignore[type-arg]
        if database_url is not None:
            overrides["database_url"] = database_url
        app_settings = settings.model_copy(update=overrides)
        server = TestServer(create_app(app_settings), host="127.0.0.1")
        await server.start_server(**RUNNER_OPTIONS)
        client = TestClient(server)
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def api_client(make_client: Callable[..., Awaitable[TestClient]]) -> TestClient:  # type: ignore[type-arg]
    """The app on the test's database, served on a real socket on 127.0.0.1."""
    return await make_client()


@pytest.fixture
async def workspace(db: asyncpg.Connection) -> WorkspaceKey:
    """A workspace and a key holding every scope."""
    created = await workspaces.create_workspace(db, f"ws-{uuid.uuid4().hex[:8]}")
    key = await workspaces.create_key(db, created.workspace_id, workspaces.SCOPES)
    return WorkspaceKey(created.workspace_id, key.key_id, key.token)


@pytest.fixture
def key_for(db: asyncpg.Connection) -> Callable[..., Awaitable[WorkspaceKey]]:
    """Make another key for a workspace with the given scopes."""

    async def make(workspace: WorkspaceKey, *scopes: str) -> WorkspaceKey:
        key = await workspaces.create_key(db, workspace.workspace_id, scopes)
        return WorkspaceKey(workspace.workspace_id, key.key_id, key.token)

    return make


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    """A real HTTP server on 127.0.0.1 that records each request and answers as told."""
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
