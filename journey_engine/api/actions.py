"""The JDS journey-actions API: `/admin/v1/api/journey-actions/workspace-id/{W}`.

List (all, or one template's), create (201), get by id or by name, update (a full replace; 201, as the JDS
description specifies) and delete (200, answering the deleted action's bare JourneyActionConfigResponseModel).
Reads need the `read` scope, writes `admin`. Where the path says `template-id`, the template's name works
too; an action that belongs to another template than the path's is 404.

The body is JDS's (`name, isActive, cooldownPeriodInMinutes, rules, actionTriggers`) plus our `fire`
(`always`, the default, or `on_enter`). Each rule leaf must name an attribute of the template by (event,
dataField, mode): a leaf that names none, or a `{{placeholder}}` of a request body that names nothing, is
a 400 listing each problem. A name another action of the template has is 409.

Answers never carry the signing secrets (read them at `GET /v1/workspaces/{W}/actions/{A}/secrets`, admin
only). A trigger's `authorization` credential is shown to admin keys, which need it to read-modify-write
an action, and masked for read-only keys. An empty list is 404, as on the other JDS list paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web
from multidict import MultiMapping
from pydantic import ValidationError

from actions import catalog
from actions.catalog import ActionInvalid, ActionNameTaken, ActionRecord
from actions.models import ActionSpec
from journey_engine.api.bodies import problems_of, query_int, read_json
from journey_engine.cloudevents import format_time
from journey_engine.context import POOL
from journey_engine.errors import BadRequest, Conflict, NotFound, Problem
from journey_engine.feed import bad
from journey_engine.middleware import access, principal
from journey_engine.responses import json_response
from journey_engine.views import find_template
from journey_engine.workspaces import Principal
from profiles.catalog import TemplateRecord

routes = web.RouteTableDef()

BASE = "/admin/v1/api/journey-actions/workspace-id/{workspace_id}"
TEMPLATE = BASE + "/template-id/{template}"
BY_ID = TEMPLATE + "/action-id/{action_id}"
MASKED = "********"
MAX_PAGE_SIZE = 1000
SORT_KEYS = ("createdAt", "updatedAt", "name", "id")


def action_json(record: ActionRecord, workspace_id: str, *, credentials: bool) -> dict[str, Any]:
    """JDS JourneyActionConfigResponseModel, plus `fire`; `credentials`: show triggers' `authorization`."""
    spec = record.spec.model_dump(mode="json", exclude_none=True)
    if not credentials:
        for trigger in spec["actionTriggers"]:
            if "authorization" in trigger["attributes"]:
                trigger["attributes"]["authorization"] = MASKED
    return {
        "id": record.action_id,
        "name": spec["name"],
        "organizationId": workspace_id,
        "workspaceId": workspace_id,
        "isActive": spec["isActive"],
        "templateId": record.template_id,
        "cooldownPeriodInMinutes": spec["cooldownPeriodInMinutes"],
        "rules": spec["rules"],
        "actionTriggers": spec["actionTriggers"],
        "fire": spec["fire"],
        "createdAt": format_time(record.created_at),
        "createdBy": record.created_by,
        "updatedAt": format_time(record.updated_at),
        "updatedBy": record.updated_by,
    }


def _answer(who: Principal, data: ActionRecord | list[ActionRecord], status: int = 200) -> web.Response:
    show = who.allows("admin")
    rendered: object = (
        [action_json(r, who.workspace_id, credentials=show) for r in data]
        if isinstance(data, list)
        else action_json(data, who.workspace_id, credentials=show)
    )
    return json_response({"meta": {"organizationId": who.workspace_id}, "data": rendered}, status=status)


def _problems(exc: ValidationError) -> list[Problem]:
    """pydantic's errors, with rule errors pointing into the rule (`rules.args[1]: unknown operator`)."""
    out = []
    for problem in problems_of(exc):
        field, reason = problem.field, problem.reason.removeprefix("Value error, ")
        if reason == "Field required":
            reason = "is required"
        if field == "rules" and reason.startswith("rules") and ": " in reason:
            field, reason = reason.split(": ", 1)
        out.append(Problem(field, reason))
    return out


async def _read_spec(request: web.Request) -> ActionSpec:
    body = await read_json(request)
    try:
        return ActionSpec.model_validate(body)
    except ValidationError as exc:
        problems = _problems(exc)
        raise BadRequest(f"Invalid journey action: {problems[0]}", problems) from None


def _invalid(exc: ActionInvalid) -> BadRequest:
    problems = [Problem(field, reason) for field, reason in exc.problems]
    return BadRequest(f"Invalid journey action: {problems[0]}", problems)


def _taken(name: str) -> Conflict:
    reason = f"the template already has an action named '{name}'"
    return Conflict(f"name: {reason}", [Problem("name", reason)])


def _missing(key: str) -> NotFound:
    return NotFound(f"journey action '{key[:128]}' not found")


async def _action_of(
    conn: asyncpg.Connection, workspace_id: str, template: TemplateRecord, action_id: str
) -> ActionRecord:
    record = await catalog.get(conn, workspace_id, action_id)
    if record is None or record.template_id != template.template_id:
        raise _missing(action_id)
    return record


@routes.get(BASE)
@access("read")
async def list_all(request: web.Request) -> web.Response:
    who = principal(request)
    async with request.app[POOL].acquire() as conn:
        records = await catalog.list_actions(conn, who.workspace_id)
    return _answer(who, _page(records, request.query))


@routes.get(TEMPLATE)
@access("read")
async def list_for_template(request: web.Request) -> web.Response:
    who = principal(request)
    async with request.app[POOL].acquire() as conn:
        template = await find_template(conn, who.workspace_id, request.match_info["template"])
        records = await catalog.list_actions(conn, who.workspace_id, template.template_id)
    return _answer(who, _page(records, request.query))


@routes.post(TEMPLATE)
@access("admin")
async def create_action(request: web.Request) -> web.Response:
    who = principal(request)
    spec = await _read_spec(request)
    async with request.app[POOL].acquire() as conn:
        template = await find_template(conn, who.workspace_id, request.match_info["template"])
        try:
            record = await catalog.create(
                conn, who.workspace_id, template.template_id, template.spec, spec, who.key_id
            )
        except ActionInvalid as exc:
            raise _invalid(exc) from None
        except ActionNameTaken:
            raise _taken(spec.name) from None
    return _answer(who, record, status=201)


@routes.get(TEMPLATE + "/action-name/{name}")
@access("read")
async def get_by_name(request: web.Request) -> web.Response:
    who = principal(request)
    name = request.match_info["name"]
    async with request.app[POOL].acquire() as conn:
        template = await find_template(conn, who.workspace_id, request.match_info["template"])
        record = await catalog.get_by_name(conn, who.workspace_id, template.template_id, name)
    if record is None:
        raise _missing(name)
    return _answer(who, record)


@routes.get(BY_ID)
@access("read")
async def get_by_id(request: web.Request) -> web.Response:
    who = principal(request)
    async with request.app[POOL].acquire() as conn:
        template = await find_template(conn, who.workspace_id, request.match_info["template"])
        record = await _action_of(conn, who.workspace_id, template, request.match_info["action_id"])
    return _answer(who, record)


@routes.put(BY_ID)
@access("admin")
async def replace_action(request: web.Request) -> web.Response:
    """A full replace: the body is the whole new action. 201, as the JDS description specifies."""
    who = principal(request)
    action_id = request.match_info["action_id"]
    spec = await _read_spec(request)
    async with request.app[POOL].acquire() as conn:
        template = await find_template(conn, who.workspace_id, request.match_info["template"])
        await _action_of(conn, who.workspace_id, template, action_id)
        try:
            record = await catalog.replace(
                conn, who.workspace_id, template.template_id, action_id, template.spec, spec, who.key_id
            )
        except ActionInvalid as exc:
            raise _invalid(exc) from None
        except ActionNameTaken:
            raise _taken(spec.name) from None
    if record is None:  # deleted meanwhile
        raise _missing(action_id)
    return _answer(who, record, status=201)


@routes.delete(BY_ID)
@access("admin")
async def delete_action(request: web.Request) -> web.Response:
    """Answers the deleted action (a bare JourneyActionConfigResponseModel, as JDS specifies)."""
    who = principal(request)
    action_id = request.match_info["action_id"]
    async with request.app[POOL].acquire() as conn:
        template = await find_template(conn, who.workspace_id, request.match_info["template"])
        record = await _action_of(conn, who.workspace_id, template, action_id)
        if not await catalog.delete(conn, who.workspace_id, template.template_id, action_id):
            raise _missing(action_id)
    return json_response(action_json(record, who.workspace_id, credentials=True))


def _page(records: list[ActionRecord], query: MultiMapping[str]) -> list[ActionRecord]:
    """`sortBy` (createdAt, updatedAt, name, id), `sort` (asc, desc), 0-based `page` of `pageSize`
    (default and maximum 1000); 404 when the page holds nothing."""
    sort_by = query.get("sortBy") or "createdAt"
    if sort_by not in SORT_KEYS:
        raise bad("sortBy", f"unknown field {sort_by[:40]!r}; use one of {', '.join(SORT_KEYS)}")
    direction = (query.get("sort") or "asc").lower()
    if direction not in ("asc", "desc"):
        raise bad("sort", f"must be 'asc' or 'desc', got {direction[:40]!r}")
    page = query_int(query, "page", default=0, low=0, high=100_000)
    size = query_int(query, "pageSize", default=MAX_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    keys: dict[str, Callable[[ActionRecord], tuple[Any, str]]] = {
        "createdAt": lambda r: (r.created_at, r.action_id),
        "updatedAt": lambda r: (r.updated_at, r.action_id),
        "name": lambda r: (r.spec.name, r.action_id),
        "id": lambda r: (r.action_id, r.action_id),
    }
    ordered = sorted(records, key=keys[sort_by], reverse=direction == "desc")
    chosen = ordered[page * size : (page + 1) * size]
    if not chosen:
        raise NotFound("No journey actions found")
    return chosen
