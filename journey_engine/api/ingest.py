"""Event ingest: JDS `POST /publish/v1/api/event` and native `POST /v1/workspaces/{W}/events`.

Both answer 202 only after the events are committed (group commit through the batcher).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from journey_engine.cloudevents import parse_http
from journey_engine.context import BATCHER, SETTINGS
from journey_engine.errors import BadRequest, Problem
from journey_engine.events import EventRow, Stored
from journey_engine.middleware import access, principal
from journey_engine.responses import json_response

routes = web.RouteTableDef()


async def _ingest(request: web.Request, workspace_id: str) -> tuple[list[EventRow], list[Stored]]:
    settings = request.app[SETTINGS]
    body = await request.read()
    events = parse_http(
        request.content_type if request.headers.get("Content-Type") else None,
        request.headers,
        body,
        default_region=settings.phone_region,
        max_events=settings.max_batch_events,
    )
    received = datetime.now(UTC)
    rows = [EventRow(workspace_id, event, event.time or received) for event in events]
    return rows, await request.app[BATCHER].submit(rows)


@routes.post("/publish/v1/api/event")
@access("events:write")
async def jds_publish(request: web.Request) -> web.Response:
    workspace_id = request.query.get("workspaceId")
    if not workspace_id:
        raise BadRequest("workspaceId is required", [Problem("workspaceId", "required query parameter")])
    await _ingest(request, workspace_id)
    return json_response(
        {
            "meta": {"organizationId": workspace_id, "workspaceId": workspace_id},
            "data": {"message": "Accepted for processing"},
        },
        status=202,
    )


@routes.post("/v1/workspaces/{workspace_id}/events")
@access("events:write")
async def post_events(request: web.Request) -> web.Response:
    rows, stored = await _ingest(request, principal(request).workspace_id)
    duplicates = sum(s.duplicate for s in stored)
    return json_response(
        {
            "accepted": len(stored) - duplicates,
            "duplicates": duplicates,
            "events": [
                {"id": row.event.id, "source": row.event.source, "seq": s.seq, "duplicate": s.duplicate}
                for row, s in zip(rows, stored, strict=True)
            ],
        },
        status=202,
    )
