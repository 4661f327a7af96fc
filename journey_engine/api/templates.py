"""The JDS profile view template API: `/admin/v1/api/profile-view-template/workspace-id/{W}`.

Create (201), list, get by id or by name, update (a full replace, 200) and delete (200). Reads need the
`read` scope, writes `admin`. Wherever the path says `template-id`, the template's name works too.

Answers are JDS envelopes `{"meta": {"organizationId"}, "data": TemplateResponseModel}` (a list of them
for the list), except delete, which answers the deleted template's bare `TemplateResponseModel`, as the
JDS description specifies. `createdBy`/`updatedBy` are the API key ids. An invalid template is a 400 whose
`errors` name each problem (`attributes[2].lookBackPeriod: ...`); a name another template of the workspace
has is 409 (the JDS description lists no status for it; Conflict is what it is).

List: `filter` is RSQL over `id`, `name`, `createdAt`, `updatedAt`, `createdBy` and `updatedBy`; `sortBy`
one of `name`, `createdAt` (the default), `updatedAt`, `id`; `sort` asc (the default) or desc; 0-based
`page` of `pageSize` (default and maximum 1000, so a client that passes none gets every template). An
empty page is 404, as an empty event search is: JDS flows read 404 as "no data".
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from journey_engine.api.bodies import query_int, read_json
from journey_engine.cloudevents import format_time
from journey_engine.context import POOL
from journey_engine.errors import BadRequest, Conflict, NotFound, Problem
from journey_engine.feed import bad
from journey_engine.middleware import access, principal
from journey_engine.responses import json_response
from journey_engine.rsql import FieldKind, RsqlError, compile_filter, parse
from journey_engine.views import find_template
from profiles import catalog
from profiles.catalog import TemplateNameTaken, TemplateRecord
from profiles.templates import TemplateSpec, validation_errors

routes = web.RouteTableDef()

BASE = "/admin/v1/api/profile-view-template/workspace-id/{workspace_id}"
MAX_PAGE_SIZE = 1000
MAX_OFFSET = 100_000
FIELDS: dict[str, tuple[str, FieldKind]] = {
    "id": ("t.template_id", FieldKind.TEXT),
    "name": ("t.name", FieldKind.TEXT),
    "createdAt": ("t.created_at", FieldKind.TIME),
    "updatedAt": ("t.updated_at", FieldKind.TIME),
    "createdBy": ("t.created_by", FieldKind.TEXT),
    "updatedBy": ("t.updated_by", FieldKind.TEXT),
}
SORT_KEYS = {
    "name": "t.name",
    "createdAt": "t.created_at",
    "updatedAt": "t.updated_at",
    "id": "t.template_id",
}


def template_json(record: TemplateRecord, workspace_id: str) -> dict[str, Any]:
    """JDS `TemplateResponseModel`: the stored spec (rules in JDS shape) and its bookkeeping."""
    return {
        "id": record.template_id,
        "name": record.spec.name,
        "workspaceId": workspace_id,
        "organizationId": workspace_id,
        "createdAt": format_time(record.created_at),
        "createdBy": record.created_by,
        "updatedAt": format_time(record.updated_at),
        "updatedBy": record.updated_by,
        "attributes": record.spec.model_dump(mode="json")["attributes"],
    }


def _envelope(workspace_id: str, data: object, status: int = 200) -> web.Response:
    return json_response({"meta": {"organizationId": workspace_id}, "data": data}, status=status)


async def _read_spec(request: web.Request) -> TemplateSpec:
    body = await read_json(request)
    try:
        return TemplateSpec.model_validate(body)
    except ValidationError as exc:
        problems = [Problem(p["field"] or "body", p["reason"]) for p in validation_errors(exc)]
        raise BadRequest(f"Invalid template: {problems[0]}", problems) from None


def _taken(name: str) -> Conflict:
    reason = f"a template named '{name}' already exists in this workspace"
    return Conflict(f"name: {reason}", [Problem("name", reason)])


@routes.post(BASE)
@access("admin")
async def create_template(request: web.Request) -> web.Response:
    who = principal(request)
    spec = await _read_spec(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        try:
            record = await catalog.create(conn, who.workspace_id, spec, who.key_id)
        except TemplateNameTaken:
            raise _taken(spec.name) from None
    return _envelope(who.workspace_id, template_json(record, who.workspace_id), status=201)


@routes.get(BASE + "/template-id/{template}")
@access("read")
async def get_template(request: web.Request) -> web.Response:
    workspace_id = principal(request).workspace_id
    async with request.app[POOL].acquire() as conn:
        record = await find_template(conn, workspace_id, request.match_info["template"])
    return _envelope(workspace_id, template_json(record, workspace_id))


@routes.get(BASE + "/template-name/{name}")
@access("read")
async def get_template_by_name(request: web.Request) -> web.Response:
    workspace_id = principal(request).workspace_id
    async with request.app[POOL].acquire() as conn:
        record = await find_template(conn, workspace_id, request.match_info["name"], by_name=True)
    return _envelope(workspace_id, template_json(record, workspace_id))


@routes.put(BASE + "/template-id/{template}")
@access("admin")
async def replace_template(request: web.Request) -> web.Response:
    """A full replace: the body is the whole new template; values are recomputed under it."""
    who = principal(request)
    spec = await _read_spec(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await find_template(conn, who.workspace_id, request.match_info["template"])
        try:
            record = await catalog.replace(conn, who.workspace_id, found.template_id, spec, who.key_id)
        except TemplateNameTaken:
            raise _taken(spec.name) from None
    if record is None:  # deleted between the two statements
        raise NotFound(f"template '{request.match_info['template'][:128]}' not found")
    return _envelope(who.workspace_id, template_json(record, who.workspace_id))


@routes.delete(BASE + "/template-id/{template}")
@access("admin")
async def delete_template(request: web.Request) -> web.Response:
    """Answers the deleted template (a bare TemplateResponseModel, as JDS specifies)."""
    workspace_id = principal(request).workspace_id
    key = request.match_info["template"]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await find_template(conn, workspace_id, key)
        if not await catalog.delete(conn, workspace_id, found.template_id):
            raise NotFound(f"template '{key[:128]}' not found")
    return json_response(template_json(found, workspace_id))


@routes.get(BASE)
@access("read")
async def list_templates(request: web.Request) -> web.Response:
    query = request.query
    workspace_id = principal(request).workspace_id
    page = query_int(query, "page", default=0, low=0, high=MAX_OFFSET)
    size = query_int(query, "pageSize", default=MAX_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    if page * size > MAX_OFFSET:
        raise bad("page", f"page * pageSize must be at most {MAX_OFFSET}")
    params: list[object] = []
    where = _where(query.get("filter") or None, params)
    order = _order(query.get("sortBy") or "createdAt", query.get("sort") or "asc")
    async with request.app[POOL].acquire() as conn:
        records = await catalog.list_page(conn, workspace_id, where, order, size, page * size, params)
    if not records:
        raise NotFound("No templates found")
    return _envelope(workspace_id, [template_json(r, workspace_id) for r in records])


def _where(text: str | None, params: list[object]) -> str:
    """`filter` as SQL after `workspace_id = $1`: its values become $2 on (`params` holds them)."""
    if text is None:
        return ""
    numbered: list[object] = [None]  # $1 is the workspace
    try:
        sql = compile_filter(parse(text), FIELDS, numbered)
    except RsqlError as exc:
        raise bad("filter", str(exc)) from None
    params.extend(numbered[1:])
    return f" AND {sql}"


def _order(sort_by: str, sort: str) -> str:
    if sort_by not in SORT_KEYS:
        raise bad("sortBy", f"unknown field {sort_by!r}; use one of {', '.join(SORT_KEYS)}")
    direction = sort.lower()
    if direction not in ("asc", "desc"):
        raise bad("sort", f"must be 'asc' or 'desc', got {sort[:40]!r}")
    keys = [SORT_KEYS[sort_by]] + ([] if sort_by == "id" else ["t.template_id"])
    return ", ".join(f"{key} {direction.upper()}" for key in keys)
