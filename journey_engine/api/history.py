"""Rich Customer History: the history widget's service under `/rch/{token}/`, and its tokens.

The widget's paths and shapes, unchanged, under a base URL per workspace: `/rch/<history token>`, so
pointing the widget's SERVICE_HOME at `https://<engine>/rch/<token>` is the only change it needs.

- `GET  getuserdata?ani=A` or `?email=E` -> `{"username": ...}`
- `GET  history?username=U` -> `[{"id", "username", "parent", "level", "channel", "source", "note", "link",
  "time"}, ...]`, oldest first, each entry's children right after it
- `POST history` `{"username", "parent", "level", "channel", "source", "note", "link"}` -> `{"id": ...}`,
  answered once the entry is committed
- `DELETE history` `{"username"}` (or `?username=`) -> `{"username", "deleted": n}`

The path token is the credential: these routes are public to the bearer-token middleware and check the
token themselves; an unknown or revoked token answers 404 like any unknown path. The access log records
the route's pattern, never the path (`secret_path`). Pages of any origin may call them (`cors`): the
token, not the origin, is what grants access, and no cookie is involved.

Tokens are managed by admins: `POST|GET /v1/workspaces/{W}/history-tokens`,
`DELETE /v1/workspaces/{W}/history-tokens/{tokenId}`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from journey_engine import history
from journey_engine.api.bodies import parse_model, read_json
from journey_engine.context import BATCHER, POOL, SETTINGS
from journey_engine.errors import NotFound
from journey_engine.events import EventRow
from journey_engine.middleware import PRINCIPAL, access, principal
from journey_engine.responses import json_response
from journey_engine.workspaces import Principal

routes = web.RouteTableDef()

_METHODS = {"getuserdata": ("GET", "OPTIONS"), "history": ("GET", "POST", "DELETE", "OPTIONS")}
_PREFLIGHT_MAX_AGE = "600"


# A route of the widget's service: public to the bearer middleware, path kept out of the log, CORS.
_widget = access(None, secret_path=True, cors=True)


async def _workspace(request: web.Request) -> str:
    """The workspace of the path's history token; 404 (saying nothing of the token) for a bad one."""
    found = await history.verify_token(request.app[POOL], request.match_info["token"])
    if found is None:
        raise NotFound("Not found")
    workspace_id, token_id = found
    request[PRINCIPAL] = Principal(workspace_id, token_id, frozenset())
    return workspace_id


def _param(request: web.Request, name: str) -> str | None:
    return request.query.get(name) or None


@routes.get("/rch/{token}/getuserdata")
@_widget
async def get_user_data(request: web.Request) -> web.Response:
    workspace_id = await _workspace(request)
    async with request.app[POOL].acquire() as conn:
        username = await history.username_of(
            conn,
            workspace_id,
            ani=_param(request, "ani"),
            email=_param(request, "email"),
            region=request.app[SETTINGS].phone_region,
        )
    return json_response({"username": username})


@routes.route("OPTIONS", "/rch/{token}/getuserdata")
@_widget
async def preflight_user_data(request: web.Request) -> web.Response:
    return _preflight(request, "getuserdata")


@routes.get("/rch/{token}/history")
@_widget
async def get_history(request: web.Request) -> web.Response:
    workspace_id = await _workspace(request)
    username = _param(request, "username")
    if username is None:
        raise history.bad("username", "required query parameter")
    async with request.app[POOL].acquire() as conn:
        entries = await history.read(conn, workspace_id, username)
    return json_response(entries)


@routes.post("/rch/{token}/history")
@_widget
async def post_history(request: web.Request) -> web.Response:
    workspace_id = await _workspace(request)
    entry = parse_model(history.EntryBody, await read_json(request))
    event = history.entry_event(entry, request.app[SETTINGS].phone_region)
    parent = event.data["parent"]
    if parent is not None:
        async with request.app[POOL].acquire() as conn:
            await history.check_parent(conn, workspace_id, parent, event.identity_normalised)
    (stored,) = await request.app[BATCHER].submit([EventRow(workspace_id, event, datetime.now(UTC))])
    return json_response({"id": str(stored.seq)})


class ResetBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)

    username: history.Text


@routes.delete("/rch/{token}/history")
@_widget
async def delete_history(request: web.Request) -> web.Response:
    workspace_id = await _workspace(request)
    given: Any = await read_json(request) if (await request.read()).strip() else {}
    if isinstance(given, dict) and "username" not in given and _param(request, "username"):
        given = {**given, "username": _param(request, "username")}
    body = parse_model(ResetBody, given)
    async with request.app[POOL].acquire() as conn:
        erased = await history.erase(conn, workspace_id, body.username)
    return json_response({"username": body.username, "deleted": erased})


@routes.route("OPTIONS", "/rch/{token}/history")
@_widget
async def preflight_history(request: web.Request) -> web.Response:
    return _preflight(request, "history")


def _preflight(request: web.Request, endpoint: str) -> web.Response:
    """A CORS preflight: the same answer whatever the token, so it tells nothing about tokens."""
    asked = request.headers.get("Access-Control-Request-Headers", "")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": ", ".join(_METHODS[endpoint]),
            "Access-Control-Allow-Headers": asked or "Content-Type",
            "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE,
        },
    )


@routes.route("*", r"/rch/{tail:[\s\S]*}")  # any character, newlines too
@_widget
async def elsewhere(request: web.Request) -> web.Response:
    """Every other path and method under /rch/: declared here so its path stays out of the log too."""
    _, _, endpoint = request.match_info["tail"].partition("/")
    if endpoint in _METHODS:
        raise web.HTTPMethodNotAllowed(request.method, _METHODS[endpoint])
    raise NotFound("Not found")


# --- token management (admin) -------------------------------------------------------------------------


class TokenRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(max_length=200)] = ""


def _token_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "tokenId": row["token_id"],
        "name": row["name"],
        "createdAt": row["created_at"].isoformat(),
        "revokedAt": row["revoked_at"].isoformat() if row["revoked_at"] else None,
    }


@routes.post("/v1/workspaces/{workspace_id}/history-tokens")
@access("admin")
async def create_token(request: web.Request) -> web.Response:
    given = await read_json(request) if (await request.read()).strip() else {}
    body = parse_model(TokenRequest, given)
    async with request.app[POOL].acquire() as conn:
        made = await history.create_token(conn, principal(request).workspace_id, body.name)
    return json_response(
        {
            "tokenId": made.token_id,
            "name": made.name,
            "token": made.token,
            "basePath": made.base_path,
            "createdAt": made.created_at.isoformat(),
        },
        status=201,
    )


@routes.get("/v1/workspaces/{workspace_id}/history-tokens")
@access("admin")
async def list_tokens(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await history.list_tokens(conn, principal(request).workspace_id)
    return json_response({"data": [_token_json(row) for row in rows]})


@routes.delete("/v1/workspaces/{workspace_id}/history-tokens/{token_id}")
@access("admin")
async def revoke_token(request: web.Request) -> web.Response:
    token_id = request.match_info["token_id"]
    async with request.app[POOL].acquire() as conn:
        await history.revoke_token(conn, token_id, principal(request).workspace_id)
    return json_response({"tokenId": token_id, "revoked": True})
