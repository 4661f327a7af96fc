"""JDS person API: ``/admin/v1/api/person/...`` (anchors/jds-openapi.json, Customer Identification).

Answers carry JDS's envelope ``{"meta": {"organizationId": W}, "data": ...}``, errors JDS's shape (the
middleware). Reads need the ``read`` scope, writes ``admin``. Status codes are the spec's: create 201,
patch 202, add/remove-identities 200, merge 202, merge-identities 200, delete 200; nothing found 404.
What the rules of a change are (aliases owned elsewhere, duplicates, retired ids, what delete keeps):
:mod:`journey_engine.person_changes`; the patch paths: :mod:`journey_engine.person_patch`.

Bodies: alias lists are typed (``phone``, ``email``, ``customerId``, ``temporaryId``, ``socialId``) and
normalised as at ingest; unknown fields are a 400. remove-identities takes JDS's list of untyped aliases
(``["ram@cisco.com", "1e4qre2g7"]``) or, as clients also send, typed lists (``{"customerId": [...]}``).
Lists (``GET .../workspace-id/{W}`` and by aliases) take ``sortBy`` (id, firstName, lastName, createdAt,
updatedAt), ``sort`` (asc/desc, any case), 0-based ``page`` and ``pageSize``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, ConfigDict, Field, RootModel

from journey_engine import person_patch, persons
from journey_engine.api.bodies import parse_model, query_int, read_json, read_model
from journey_engine.context import POOL, SETTINGS
from journey_engine.errors import BadRequest, NotFound, Problem
from journey_engine.feed import bad
from journey_engine.identities import IdentityType
from journey_engine.identity import Actor
from journey_engine.middleware import access, principal
from journey_engine.person_changes import Edit, Named, edit, typed_aliases
from journey_engine.persons import Person
from journey_engine.responses import json_response

routes = web.RouteTableDef()

BASE = "/admin/v1/api/person"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_OFFSET = 100_000
MAX_ALIASES = 100


class AliasLists(BaseModel):
    """JDS's AddIdentitiesToPersonRequestModel (and the alias lists of the other bodies)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phone: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    temporaryId: tuple[str, ...] = ()
    customerId: tuple[str, ...] = ()
    socialId: tuple[str, ...] = ()

    def aliases(self, region: str) -> list[Named]:
        return typed_aliases({kind: getattr(self, kind.value) for kind in IdentityType}, region)


class PersonBody(AliasLists):
    """JDS's CreateOrUpdatePersonRequestModel."""

    firstName: str | None = Field(default=None, max_length=200)
    lastName: str | None = Field(default=None, max_length=200)

    def names(self) -> dict[str, str | None]:
        """The names the body gives (null included: it clears one)."""
        return {
            name: getattr(self, name) for name in ("firstName", "lastName") if name in self.model_fields_set
        }


class UpsertBody(PersonBody):
    """JDS's MergePersonRequestModel."""

    override: bool = False


class MergeBody(BaseModel):
    """JDS's MergePersonsRequest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    personIdsToMerge: list[str] = Field(min_length=1, max_length=1000)


class AliasList(RootModel[list[str]]):
    """remove-identities as the spec has it: untyped aliases."""


def _envelope(request: web.Request, data: Any, status: int = 200) -> web.Response:
    return json_response(
        {"meta": {"organizationId": principal(request).workspace_id}, "data": data}, status=status
    )


def _region(request: web.Request) -> str:
    return request.app[SETTINGS].phone_region


def _needs_aliases(aliases: list[Named]) -> list[Named]:
    if not aliases:
        raise BadRequest(
            "No aliases given",
            [Problem("body", "give at least one alias (phone, email, customerId, temporaryId or socialId)")],
        )
    return aliases


async def _write(request: web.Request, work: Callable[[Edit], Awaitable[str]], status: int) -> web.Response:
    """Run `work` (which returns the person to answer with) as one edit; answer with that person."""

    async def run(changes: Edit) -> Person:
        person_id = await work(changes)
        (person,) = await persons.fetch(changes.conn, changes.workspace_id, [person_id])
        return person

    who = principal(request)
    person = await edit(request.app[POOL], who.workspace_id, Actor(key_id=who.key_id), run)
    return _envelope(request, person.jds(), status)


# --- paging -------------------------------------------------------------------------------------------


def _given(query: MultiMapping[str], name: str) -> str | None:
    value = query.get(name)
    return value if value else None


def _paging(query: MultiMapping[str]) -> tuple[str | None, bool, int, int]:
    """(sortBy, descending, page, pageSize) from the query."""
    direction = (_given(query, "sort") or "asc").lower()
    if direction not in ("asc", "desc"):
        raise bad("sort", f"must be 'asc' or 'desc', got {direction[:40]!r}")
    page = query_int(query, "page", default=0, low=0, high=MAX_OFFSET)
    size = query_int(query, "pageSize", default=DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE)
    if page * size > MAX_OFFSET:
        raise bad("page", f"page * pageSize must be at most {MAX_OFFSET}")
    return _given(query, "sortBy"), direction == "desc", page, size


# --- reads --------------------------------------------------------------------------------------------


@routes.get(BASE + "/workspace-id/{workspace_id}")
@access("read")
async def list_persons(request: web.Request) -> web.Response:
    """One person by ``personId`` (a merged-away id gives the survivor), or a page of all, with ``filter``."""
    query = request.query
    workspace_id = principal(request).workspace_id
    sort_by, descending, page, size = _paging(query)
    person_id = _given(query, "personId")
    async with request.app[POOL].acquire() as conn:
        if person_id is not None:
            found = [await persons.get(conn, workspace_id, person_id)]
        else:
            found = await persons.page(
                conn, workspace_id, filter=_given(query, "filter"), sort_by=sort_by or "createdAt",
                descending=descending, page=page, page_size=size, region=_region(request),
            )  # fmt: skip
    if not found:
        raise NotFound("No persons found")
    return _envelope(request, [p.jds() for p in found])


@routes.get(BASE + "/workspace-id/{workspace_id}/aliases/{aliases}")
@access("read")
async def persons_by_aliases(request: web.Request) -> web.Response:
    """The persons owning any of the comma-separated aliases, in the order asked; 404 when none."""
    values = [v for v in request.match_info["aliases"].split(",") if v.strip()]
    if not 1 <= len(values) <= MAX_ALIASES:
        raise bad("aliases", f"give 1 to {MAX_ALIASES} comma-separated aliases")
    sort_by, descending, page, size = _paging(request.query)
    async with request.app[POOL].acquire() as conn:
        found = await persons.lookup(conn, principal(request).workspace_id, values, _region(request))
    found = persons.sort_persons(found, sort_by, descending)[page * size : (page + 1) * size]
    if not found:
        raise NotFound("No person found for the aliases", [Problem("aliases", "no person owns any of them")])
    return _envelope(request, [p.jds() for p in found])


# --- writes -------------------------------------------------------------------------------------------


@routes.post(BASE + "/workspace-id/{workspace_id}")
@access("admin")
async def create_person(request: web.Request) -> web.Response:
    body = await read_model(request, PersonBody)
    aliases = _needs_aliases(body.aliases(_region(request)))
    return await _write(request, lambda c: c.create(body.firstName, body.lastName, aliases), 201)


@routes.delete(BASE + "/workspace-id/{workspace_id}/person-id/{person_id}")
@access("admin")
async def delete_person(request: web.Request) -> web.Response:
    """Delete a person (not a merged-away id: 409); answers with the person as it was."""
    person_id = request.match_info["person_id"]

    async def work(changes: Edit) -> Person:
        live = await changes.person(person_id, follow_merges=False)
        (before,) = await persons.fetch(changes.conn, changes.workspace_id, [live])
        await changes.delete(live)
        return before

    who = principal(request)
    before = await edit(request.app[POOL], who.workspace_id, Actor(key_id=who.key_id), work)
    return _envelope(request, before.jds())


@routes.patch(BASE + "/workspace-id/{workspace_id}/person-id/{person_id}")
@access("admin")
async def patch_person(request: web.Request) -> web.Response:
    document = parse_model(person_patch.PatchDocument, await read_json(request))
    steps = person_patch.parse(document.root)

    async def work(changes: Edit) -> str:
        live = await changes.person(request.match_info["person_id"])
        await person_patch.apply(changes, live, steps, _region(request))
        return live

    return await _write(request, work, 202)


@routes.patch(BASE + "/add-identities/workspace-id/{workspace_id}/person-id/{person_id}")
@access("admin")
async def add_identities(request: web.Request) -> web.Response:
    aliases = _needs_aliases((await read_model(request, AliasLists)).aliases(_region(request)))

    async def work(changes: Edit) -> str:
        live = await changes.person(request.match_info["person_id"])
        await changes.add(live, aliases)
        return live

    return await _write(request, work, 200)


@routes.patch(BASE + "/remove-identities/workspace-id/{workspace_id}/person-id/{person_id}")
@access("admin")
async def remove_identities(request: web.Request) -> web.Response:
    """Remove aliases: JDS's list of untyped aliases, or typed lists; each must be the person's (400)."""
    body = await read_json(request)
    region = _region(request)
    asked: list[tuple[str, tuple[str, ...]]]
    if isinstance(body, list):
        values = parse_model(AliasList, body).root
        asked = [(f"[{n}]", persons.spellings(v, region, f"[{n}]")) for n, v in enumerate(values)]
    else:
        asked = [(a.field, (a.alias,)) for a in parse_model(AliasLists, body).aliases(region)]
    if not asked:
        raise BadRequest("No aliases given", [Problem("body", "give at least one alias to remove")])

    async def work(changes: Edit) -> str:
        live = await changes.person(request.match_info["person_id"])
        await changes.remove(live, await changes.pick(live, asked))
        return live

    return await _write(request, work, 200)


@routes.post(BASE + "/merge/workspace-id/{workspace_id}/primary-person-id/{primary_person_id}")
@access("admin")
async def merge_persons(request: web.Request) -> web.Response:
    """Merge ``personIdsToMerge`` into the primary: their aliases (and events) move to it; 202."""
    body = await read_model(request, MergeBody)
    primary = request.match_info["primary_person_id"]
    return await _write(request, lambda c: c.merge(primary, body.personIdsToMerge), 202)


@routes.post(BASE + "/merge-identities/workspace-id/{workspace_id}")
@access("admin")
async def merge_identities(request: web.Request) -> web.Response:
    """Upsert by aliases: the persons owning any become one (the oldest survives) and gain the rest, or
    a new person is made. ``override: true`` removes the aliases not given. Names given are set."""
    body = await read_model(request, UpsertBody)
    aliases = _needs_aliases(body.aliases(_region(request)))
    return await _write(request, lambda c: c.upsert(body.names(), aliases, override=body.override), 200)
