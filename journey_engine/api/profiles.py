"""Profile views: the JDS progressive profile view paths and the native `/v1/workspaces/{W}/persons/...`.

JDS (4 paths, scope `read`): by `person-id` or by `identity`, with `template-id` (an id or a name) or
`template-name`; the answer is `{"meta": {...}, "data": [view]}` (:func:`journey_engine.views.jds_view`).
Native: `GET /v1/workspaces/{W}/persons/{person}/profiles/{template}`, where `{person}` is a person id or
any identity of the person and `{template}` an id or a name; typed values with their freshness.
"""

from __future__ import annotations

from aiohttp import web

from actions.firings import firing_history
from journey_engine import views
from journey_engine.context import POOL, SETTINGS
from journey_engine.middleware import access, principal

routes = web.RouteTableDef()
# The newest firings a JDS view lists in systemMetdata.journeyActionTriggerHistories.
FIRING_HISTORY = 100

JDS_BASE = "/v1/api/progressive-profile-view/workspace-id/{workspace_id}"


async def _jds(request: web.Request, *, by_identity: bool, by_name: bool) -> web.Response:
    workspace_id = principal(request).workspace_id
    info = request.match_info
    search = info["identity"] if by_identity else info["person_id"]
    async with request.app[POOL].acquire() as conn, conn.transaction(**views.SNAPSHOT):
        template = await views.find_template(conn, workspace_id, info["template"], by_name=by_name)
        if by_identity:
            region = request.app[SETTINGS].phone_region
            person = await views.person_by_identity(conn, workspace_id, search, region)
        else:
            person = await views.person_by_id(conn, workspace_id, search)
        view = await views.compute_view(conn, workspace_id, person, template)
        events = await views.verbose_events(conn, workspace_id, view)
        firings = await firing_history(conn, workspace_id, person, template.template_id, FIRING_HISTORY)
    return web.json_response(views.jds_view(view, workspace_id, search, events, firings))


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
    async with request.app[POOL].acquire() as conn, conn.transaction(**views.SNAPSHOT):
        template = await views.find_template(conn, workspace_id, request.match_info["template"])
        person = await views.person_by_id_or_identity(
            conn, workspace_id, request.match_info["person"], region
        )
        view = await views.compute_view(conn, workspace_id, person, template)
    return web.json_response(views.native_view(view))
