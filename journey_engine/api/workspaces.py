"""Workspace and API-key routes: native `/v1/workspaces/...` and JDS `/admin/v1/api/workspace...`."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from journey_engine import workspaces
from journey_engine.api.bodies import read_model
from journey_engine.context import KEY_VERIFIER, POOL
from journey_engine.middleware import access, principal
from journey_engine.responses import json_response

routes = web.RouteTableDef()


class KeyRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    scopes: list[str] = Field(min_length=1)
    name: str = Field(default="", max_length=200)


def _key_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "keyId": row["key_id"],
        "name": row["name"],
        "scopes": list(row["scopes"]),
        "createdAt": row["created_at"].isoformat(),
        "revokedAt": row["revoked_at"].isoformat() if row["revoked_at"] else None,
    }


@routes.get("/v1/workspaces/{workspace_id}")
@access("read")
async def get_workspace(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await workspaces.find_workspace(conn, principal(request).workspace_id)
    return json_response(found.as_json())


@routes.get("/v1/workspaces/{workspace_id}/keys")
@access("admin")
async def list_keys(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await workspaces.list_keys(conn, principal(request).workspace_id)
    return json_response({"data": [_key_json(row) for row in rows]})


@routes.post("/v1/workspaces/{workspace_id}/keys")
@access("admin")
async def create_key(request: web.Request) -> web.Response:
    body = await read_model(request, KeyRequest)
    async with request.app[POOL].acquire() as conn:
        key = await workspaces.create_key(conn, principal(request).workspace_id, body.scopes, body.name)
    return json_response(
        {"keyId": key.key_id, "scopes": list(key.scopes), "token": key.token, "name": body.name}, status=201
    )


@routes.delete("/v1/workspaces/{workspace_id}/keys/{key_id}")
@access("admin")
async def revoke_key(request: web.Request) -> web.Response:
    key_id = request.match_info["key_id"]
    async with request.app[POOL].acquire() as conn:
        await workspaces.revoke_key(conn, key_id, principal(request).workspace_id)
    request.app[KEY_VERIFIER].forget_all()
    return json_response({"keyId": key_id, "revoked": True})


def _jds_workspace(found: workspaces.Workspace) -> dict[str, Any]:
    return {"id": found.workspace_id, "name": found.name, "description": found.description}


@routes.get("/admin/v1/api/workspace")
@access("admin")
async def jds_list_workspaces(request: web.Request) -> web.Response:
    """A key sees exactly one workspace: its own."""
    async with request.app[POOL].acquire() as conn:
        found = await workspaces.find_workspace(conn, principal(request).workspace_id)
    return json_response({"meta": {"organizationId": found.workspace_id}, "data": [_jds_workspace(found)]})


@routes.get("/admin/v1/api/workspace/workspace-id/{workspace_id}")
@access("admin")
async def jds_get_workspace(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await workspaces.find_workspace(conn, principal(request).workspace_id)
    return json_response({"meta": {"organizationId": found.workspace_id}, "data": _jds_workspace(found)})
