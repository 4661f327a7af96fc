"""Native person endpoints, beyond JDS: ``/v1/workspaces/{W}/persons/{person}``.

``{person}`` is a person id (a merged-away id names the survivor, except for erase: 409) or an alias,
untyped, as the feed's ``identity`` takes it.

- ``GET``: the person, with typed aliases and names;
- ``POST .../unmerge`` ``{"aliases": [...]}``: split those aliases, with the events sent under them, out
  into a new person (201, the new person);
- ``GET .../history``: every link, merge, unmerge and alias edit of the person and of the ids merged into
  it: ``kind``, ``aliases``, ``byKey`` (API key) or ``byEvent`` (event seq), ``at``;
- ``GET .../export``: everything held about the person, as JSON (:mod:`journey_engine.privacy`);
- ``DELETE``: erase everything held about the person, leaving nothing in any table; answers the rows
  erased by section.

Reads need the ``read`` scope, unmerge and erase ``admin``.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from journey_engine import persons, privacy
from journey_engine.api.bodies import read_model
from journey_engine.context import POOL, SETTINGS
from journey_engine.errors import NotFound, Problem
from journey_engine.identity import Actor
from journey_engine.middleware import access, principal
from journey_engine.person_changes import Edit, edit
from journey_engine.persons import Person
from journey_engine.responses import json_response

routes = web.RouteTableDef()

PATH = "/v1/workspaces/{workspace_id}/persons/{person}"


class UnmergeBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    aliases: list[str] = Field(min_length=1, max_length=1000)


def _region(request: web.Request) -> str:
    return request.app[SETTINGS].phone_region


def _not_found(asked: str) -> NotFound:
    return NotFound(f"person '{asked[:64]}' not found", [Problem("person", "no such person or alias")])


async def _find(request: web.Request) -> Person:
    asked = request.match_info["person"]
    async with request.app[POOL].acquire() as conn:
        found = await persons.find(conn, principal(request).workspace_id, asked, _region(request))
    if found is None:
        raise _not_found(asked)
    return found


@routes.get(PATH)
@access("read")
async def get_person(request: web.Request) -> web.Response:
    return json_response((await _find(request)).native())


@routes.post(PATH + "/unmerge")
@access("admin")
async def unmerge(request: web.Request) -> web.Response:
    body = await read_model(request, UnmergeBody)
    region = _region(request)
    asked = [
        (f"aliases[{n}]", persons.spellings(v, region, f"aliases[{n}]")) for n, v in enumerate(body.aliases)
    ]
    target = (await _find(request)).person_id

    async def work(changes: Edit) -> Person:
        split = await changes.unmerge(target, asked)
        (person,) = await persons.fetch(changes.conn, changes.workspace_id, [split])
        return person

    who = principal(request)
    person = await edit(request.app[POOL], who.workspace_id, Actor(key_id=who.key_id), work)
    return json_response(person.native(), status=201)


@routes.get(PATH + "/history")
@access("read")
async def history(request: web.Request) -> web.Response:
    person = await _find(request)
    workspace_id = principal(request).workspace_id
    async with request.app[POOL].acquire() as conn:
        ids = [person.person_id, *await persons.merged_into(conn, workspace_id, person.person_id)]
        changes = await persons.history(conn, workspace_id, ids)
    return json_response({"personId": person.person_id, "mergedIds": ids[1:], "data": changes})


@routes.get(PATH + "/export")
@access("read")
async def export(request: web.Request) -> web.Response:
    workspace_id = principal(request).workspace_id
    async with (
        request.app[POOL].acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        subject = await privacy.subject(conn, workspace_id, request.match_info["person"], _region(request))
        return json_response(await privacy.export(conn, subject))


@routes.delete(PATH)
@access("admin")
async def erase(request: web.Request) -> web.Response:
    asked = request.match_info["person"]
    region = _region(request)

    async def work(changes: Edit) -> tuple[privacy.Subject, dict[str, int]]:
        subject = await privacy.subject(changes.conn, changes.workspace_id, asked, region, lock=changes)
        changes.touched.update(subject.person_ids)
        return subject, await privacy.erase(changes.conn, subject)

    who = principal(request)
    subject, erased = await edit(request.app[POOL], who.workspace_id, Actor(key_id=who.key_id), work)
    return json_response(
        {
            "personId": subject.person_ids[0] if subject.person_ids else None,
            "aliases": list(subject.aliases),
            "erased": erased,
        }
    )
