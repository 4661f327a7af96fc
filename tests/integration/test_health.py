from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
from aiohttp.test_utils import TestClient

Client = TestClient  # type: ignore[type-arg]


async def test_healthz_needs_no_key(api_client: Client) -> None:
    response = await api_client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_200_when_database_is_current(api_client: Client) -> None:
    response = await api_client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["status"] == "ready"


async def test_readyz_is_503_when_migrations_are_behind(
    fresh_database: str, make_client: Callable[..., Awaitable[Client]]
) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute(
            "DELETE FROM schema_version WHERE version = (SELECT max(version) FROM schema_version)"
        )
    finally:
        await conn.close()
    response = await (await make_client(fresh_database)).get("/readyz")
    assert response.status == 503
    assert "journey-engine migrate" in (await response.json())["reason"]


async def test_readyz_is_503_when_database_is_unreachable(
    fresh_database: str, make_client: Callable[..., Awaitable[Client]], pg_admin_dsn: str
) -> None:
    client = await make_client(fresh_database)
    assert (await client.get("/readyz")).status == 200
    name = urlsplit(fresh_database).path.lstrip("/")
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["status"] == "unavailable"
        assert (await client.get("/healthz")).status == 200
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
