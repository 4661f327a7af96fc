"""The event feed: JDS `GET /v1/api/events/workspace-id/{W}` and native `GET /v1/workspaces/{W}/events`.

Query parameters given empty are as if absent, except ``identity``: an empty identity is a 400, because
answering a flow whose caller variable is unset with the whole workspace's events would show one customer
another's journey.

JDS: ``pageSize`` defaults to its maximum (1000). The agent-desktop widget passes no paging and expects the
whole history, so it gets as much of it as one page holds: the newest 1000 events; a longer history is cut
there (page on with ``page=1``...). ``page * pageSize`` is capped at MAX_OFFSET: deeper history is read
through the native feed's cursor, which costs the same at any depth. Nothing found (including a page past
the end) is 404: JDS flows read it as "no data".
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from multidict import MultiMapping

from journey_engine import feed
from journey_engine.api.bodies import query_int
from journey_engine.context import POOL, SETTINGS
from journey_engine.errors import NotFound
from journey_engine.feed import Cursor, Filters, bad
from journey_engine.middleware import access, principal
from journey_engine.responses import json_response

routes = web.RouteTableDef()

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = MAX_PAGE_SIZE
MAX_OFFSET = 100_000
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _given(query: MultiMapping[str], name: str) -> str | None:
    value = query.get(name)
    return value if value else None


def _descending(query: MultiMapping[str], name: str, default: str = "desc") -> bool:
    text = (_given(query, name) or default).lower()
    if text not in ("asc", "desc"):
        raise bad(name, f"must be 'asc' or 'desc', got {text[:40]!r}")
    return text == "desc"


async def _filters(request: web.Request, conn: asyncpg.Connection) -> Filters:
    query = request.query
    identity = query.get("identity")
    aliases = None
    if identity is not None:
        region = request.app[SETTINGS].phone_region
        aliases = await feed.aliases_of(conn, principal(request).workspace_id, identity, region)
    return Filters(aliases, _given(query, "filter"), _given(query, "data"))


@routes.get("/v1/api/events/workspace-id/{workspace_id}")
@access("read")
async def jds_events(request: web.Request) -> web.Response:
    """JDS's historic events: ``{"meta": {..., "resultCount": n}, "data": [CloudEvents]}``; 404 when none."""
    query = request.query
    workspace_id = principal(request).workspace_id
    page = query_int(query, "page", default=0, low=0, high=MAX_OFFSET)
    size = query_int(query, "pageSize", default=DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    if page * size > MAX_OFFSET:
        raise bad("page", f"page * pageSize must be at most {MAX_OFFSET}; read deeper history by cursor")
    sort_by = _given(query, "sortBy") or "time"
    descending = _descending(query, "sort")
    async with request.app[POOL].acquire() as conn:
        filters = await _filters(request, conn)
        rows = await feed.fetch_page(
            conn, workspace_id, filters, sort_by=sort_by, descending=descending, page=page, page_size=size
        )
    if not rows:
        raise NotFound("No events found")
    meta: dict[str, Any] = {"organizationId": workspace_id, "workspaceId": workspace_id}
    if "identity" in query:
        meta["identity"] = query["identity"]
    meta["resultCount"] = len(rows)
    return json_response({"meta": meta, "data": [feed.cloudevent(row) for row in rows]})


@routes.get("/v1/workspaces/{workspace_id}/events")
@access("read")
async def list_events(request: web.Request) -> web.Response:
    """Native feed: ``{"data": [{"seq", "receivedAt", "event"}], "next": cursor | null}``, newest first."""
    query = request.query
    limit = query_int(query, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    descending = _descending(query, "order")
    cursor_text = _given(query, "cursor")
    cursor = Cursor.decode(cursor_text) if cursor_text else None
    async with request.app[POOL].acquire() as conn:
        filters = await _filters(request, conn)
        rows, following = await feed.fetch_after(
            conn, principal(request).workspace_id, filters, cursor=cursor, descending=descending, limit=limit
        )
    return json_response(
        {"data": [feed.native_event(row) for row in rows], "next": following.encode() if following else None}
    )
