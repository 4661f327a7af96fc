"""Profile views: the JDS progressive profile view paths and the native `/v1/workspaces/{W}/persons/...`.

JDS (4 paths, scope `read`): by `person-id` or by `identity`, with `template-id` (an id or a name) or
`template-name`; the answer is `{"meta": {...}, "data": [view]}` (:func:`journey_engine.views.jds_view`).
Native: `GET /v1/workspaces/{W}/persons/{person}/profiles/{template}`, where `{person}` is a person id or
any identity of the person and `{template}` an id or a name; typed values with their freshness.
"""

from __future__ import annotations

from aiohttp import web

from journey_engine import views
from journey_engine.context import POOL, SETTINGS
from journey_engine.middleware import access, principal
from journey_engine.responses import json_response

routes = web.RouteTableDef()
# The newest firings a JDS view lists in systemMetdata.journeyActionTriggerHistories.
FIRING_HISTORY = 100

JDS_BASE = "/v1/api/progressive-profile-view/workspace-id/{workspace_id}"


async def _jds(request: web.Request, *, by_identity: bool, by_name: bool) -> web.Response:
    workspace_id = principal(request).workspace_id
    info = request.match_info
    search = info["identity"] if by_identity else info["person_id"]
    who = views.Who(identity=search) if by_identity else views.Who(person_id=search)
    region = request.app[SETTINGS].phone_region
    async with request.app[POOL].acquire() as conn:
        view, firings = await views.read_view(
            conn, workspace_id, info["template"], who, by_name=by_name, region=region, firings=FIRING_HISTORY
        )
        events = await views.verbose_events(conn, workspace_id, view)
    return json_response(views.jds_view(view, workspace_id, search, events, firings))


@routes.get(JDS_BASE + "/person-id/{person_id}/template-id/{template}")
@access("read")
async def jds_view_by_person(request: web.Request) -> web.Response:
    return await _jds(request, by_identity=False, by_name=False)


@routes.get(JDS_BASE + "/person-id/{person_id}/template-name/{template}")
@access("read")
async def jds_view_by_person_and_name(request: web.Request) -> web.Response:
    return await _jds(request, by_identity=False, by_name=True)


@routes.get(JDS_BASE + "/identity/{identity}/template-id/{template}")
@access("read")
async def jds_view_by_identity(request: web.Request) -> web.Response:
    return await _jds(request, by_identity=True, by_name=False)


@routes.get(JDS_BASE + "/identity/{identity}/template-name/{template}")
@access("read")
async def jds_view_by_identity_and_name(request: web.Request) -> web.Response:
    return await _jds(request, by_identity=True, by_name=True)


@routes.get("/v1/workspaces/{workspace_id}/persons/{person}/profiles/{template}")
@access("read")
async def native_view(request: web.Request) -> web.Response:
    workspace_id = principal(request).workspace_id
    region = request.app[SETTINGS].phone_region
    key = request.match_info["person"]
    async with request.app[POOL].acquire() as conn:
        view, _ = await views.read_view(
            conn, workspace_id, request.match_info["template"], views.Who(person_id=key, identity=key),
            region=region,
        )  # fmt: skip
    return json_response(views.native_view(view))
