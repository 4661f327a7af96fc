"""The application factory: `create_app(settings)` builds the aiohttp app; tests call the same factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from journey_engine import workers
from journey_engine.api import ROUTE_TABLES
from journey_engine.context import BACKGROUND, BATCHER, KEY_VERIFIER, POOL, SETTINGS
from journey_engine.db import create_pool
from journey_engine.ingest import Batcher
from journey_engine.middleware import authenticate, check_routes, request_context
from journey_engine.pipeline import IngestPipeline
from journey_engine.settings import Settings
from journey_engine.workspaces import KeyVerifier

# How every runner of the app is set up (serve and the tests alike). aiohttp's own access log prints the
# request line with its query string, where a stream client's token may ride: ours logs the path only.
RUNNER_OPTIONS: dict[str, Any] = {"access_log": None}


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.database_url is not None, "resolve the database (embedded or DATABASE_URL) first"
    pool = await create_pool(
        settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
    )
    app[POOL] = pool
    try:
        yield
    finally:
        await pool.close()


async def _ingest(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    write = IngestPipeline(settings.phone_region)
    batcher = Batcher(
        app[POOL], write, max_in_flight=settings.ingest_writers, max_pending=settings.ingest_max_pending
    )
    app[BACKGROUND].append(batcher.start())
    app[BATCHER] = batcher
    try:
        yield
    finally:
        await batcher.stop()


async def _workers(app: web.Application) -> AsyncIterator[None]:
    async with workers.running(app[POOL], app[SETTINGS]) as tasks:
        app[BACKGROUND].extend(tasks)
        yield


def create_app(settings: Settings) -> web.Application:
    """Build the app. `settings.database_url` must name a migrated database."""
    app = web.Application(
        middlewares=[request_context, authenticate], client_max_size=settings.max_body_bytes
    )
    app[SETTINGS] = settings
    app[KEY_VERIFIER] = KeyVerifier()
    app[BACKGROUND] = []
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_ingest)
    app.cleanup_ctx.append(_workers)
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    check_routes(app)
    return app
