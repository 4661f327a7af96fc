"""Liveness and readiness probes: public, cheap, and never touching workspace data."""

from __future__ import annotations

import asyncio

from aiohttp import web

from journey_engine.context import POOL
from journey_engine.db import schema_version
from journey_engine.middleware import access
from journey_engine.responses import json_response
from journey_engine.sql import LATEST_VERSION

routes = web.RouteTableDef()


@routes.get("/healthz")
@access(None)
async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving HTTP."""
    return json_response({"status": "ok"})


@routes.get("/readyz")
@access(None)
async def readyz(request: web.Request) -> web.Response:
    """The database answers and its schema is the one this engine expects."""
    try:
        async with asyncio.timeout(2):
            async with request.app[POOL].acquire() as conn:
                version = await schema_version(conn)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return json_response({"status": "unavailable", "reason": f"database: {exc}"}, status=503)
    if version != LATEST_VERSION:
        reason = f"schema version {version}, expected {LATEST_VERSION}: run 'journey-engine migrate'"
        return json_response({"status": "unavailable", "reason": reason}, status=503)
    return json_response({"status": "ready", "schemaVersion": version})
