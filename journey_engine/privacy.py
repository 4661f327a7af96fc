"""Privacy: everything held about a person, exported as JSON, or erased so that nothing is left of it.

What is held about a person is listed once, in :data:`SECTIONS`. Each :class:`Section` exports one part of
it and erases that part. A table that comes to hold personal data appends one Section; the privacy test
checks every table of the schema, so a forgotten one fails it.
Export runs the sections in order; erase runs them in reverse, so a section's table may refer to the
tables of the sections before it (they are still there when it is erased).

The subject is a person, named by id or by one of its aliases, with the ids merged into it and its
aliases. A merged-away id names its survivor for an export; erase refuses it (409 naming the survivor).
An identity whose person was deleted through JDS (its events stay) is a subject without a person: its
events can still be exported and erased.

Erase also forgets the erased aliases where other persons' rows name them: another event's
``previousidentity`` (matched stripped, case-folded, or as ``+digits``; a phone written in national format
there is not recognised), and alias lists and event references in other persons' identity history.
The free-form ``data`` of other persons' events is not searched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from journey_engine import persons
from journey_engine.cloudevents import format_time
from journey_engine.errors import NotFound, Problem
from journey_engine.feed import native_event
from journey_engine.person_changes import Edit
from journey_engine.persons import Person
from journey_engine.sql import QUERIES
from profiles import store


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose data: a person (None: only events remain) with the ids merged into it, and its aliases."""

    workspace_id: str
    person: Person | None
    person_ids: tuple[str, ...]
    aliases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Section:
    """One part of what is held about a subject: how to export it, and how to erase it (rows erased)."""

    name: str
    export: Callable[[asyncpg.Connection, Subject], Awaitable[Any]]
    erase: Callable[[asyncpg.Connection, Subject], Awaitable[int]]


async def _count(conn: asyncpg.Connection, query: str, *args: object) -> int:
    status: str = await conn.execute(QUERIES[query], *args)
    return int(status.rsplit(" ", 1)[-1])


async def _export_person(conn: asyncpg.Connection, s: Subject) -> Any:
    return s.person.native() | {"mergedIds": list(s.person_ids[1:])} if s.person else None


async def _erase_persons(conn: asyncpg.Connection, s: Subject) -> int:
    return await _count(conn, "erase_persons", s.workspace_id, list(s.person_ids))


async def _export_aliases(conn: asyncpg.Connection, s: Subject) -> Any:
    return s.person.native()["aliases"] if s.person else [{"alias": a} for a in s.aliases]


async def _erase_aliases(conn: asyncpg.Connection, s: Subject) -> int:
    return await _count(conn, "erase_aliases", s.workspace_id, list(s.person_ids))


async def _export_events(conn: asyncpg.Connection, s: Subject) -> Any:
    return [
        native_event(r) for r in await conn.fetch(QUERIES["alias_events"], s.workspace_id, list(s.aliases))
    ]


async def _erase_events(conn: asyncpg.Connection, s: Subject) -> int:
    sent = await conn.fetch(QUERIES["erase_events"], s.workspace_id, list(s.aliases))
    spellings = sorted({*s.aliases, *(r["identity_raw"].strip() for r in sent)})
    spellings += [x.casefold() for x in spellings]
    await conn.execute(QUERIES["forget_previous_identity"], s.workspace_id, spellings)
    return len(sent)


async def _export_history(conn: asyncpg.Connection, s: Subject) -> Any:
    return await persons.history(conn, s.workspace_id, list(s.person_ids))


async def _erase_history(conn: asyncpg.Connection, s: Subject) -> int:
    erased: int = await conn.fetchval(
        QUERIES["erase_identity_changes"], s.workspace_id, list(s.person_ids), list(s.aliases)
    )
    return erased


# Export order; erase runs from the last to the first.
async def _export_profile_values(conn: asyncpg.Connection, s: Subject) -> Any:
    """Each stored row with its attributes named (the storage form is positional, see compute.to_json),
    with the events behind a verbose one. A row of another version of its template, or waiting to be
    computed, has no names to give: its `attributes` are the stored items as they are."""
    out = []
    for row in await conn.fetch(QUERIES["export_profile_values"], s.workspace_id, list(s.person_ids)):
        template = store.parse_template(row)
        values = store.decode_stored(template, row)
        attributes: list[Any] = row["vals"]
        if values is not None:
            attributes = [
                {"displayName": spec.displayName, "result": value.jds_result, "events": value.result.events,
                 "error": value.error, **({"eventSeqs": list(value.seqs)} if spec.verbose else {})}
                for spec, value in zip(template.spec.attributes, values.attributes, strict=True)
            ]  # fmt: skip
        out.append(
            {
                "template": row["name"], "templateId": row["template_id"],
                "computedAt": format_time(row["computed_at"]),
                "nextChangeAt": row["next_change_at"] and format_time(row["next_change_at"]),
                "attributes": attributes,
            }
        )  # fmt: skip
    return out


async def _erase_profile_values(conn: asyncpg.Connection, s: Subject) -> int:
    return await _count(conn, "erase_profile_values", s.workspace_id, list(s.person_ids))


async def _export_firings(conn: asyncpg.Connection, s: Subject) -> Any:
    rows = await conn.fetch(QUERIES["export_firings"], s.workspace_id, list(s.person_ids))
    return [_json_row(r) for r in rows]


async def _erase_firings(conn: asyncpg.Connection, s: Subject) -> int:
    return await _count(conn, "erase_firings", s.workspace_id, list(s.person_ids))


async def _export_deliveries(conn: asyncpg.Connection, s: Subject) -> Any:
    rows = await conn.fetch(QUERIES["export_deliveries"], s.workspace_id, list(s.person_ids))
    return [_json_row(r) for r in rows]


async def _erase_deliveries(conn: asyncpg.Connection, s: Subject) -> int:
    return await _count(conn, "erase_deliveries", s.workspace_id, list(s.person_ids))


def _json_row(row: asyncpg.Record) -> dict[str, Any]:
    """A row as JSON: camelCase names, times in RFC 3339."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        head, *rest = key.split("_")
        name = head + "".join(part.title() for part in rest)
        out[name] = format_time(value) if isinstance(value, datetime) else value
    return out


SECTIONS: list[Section] = [
    Section("person", _export_person, _erase_persons),
    Section("aliases", _export_aliases, _erase_aliases),
    Section("events", _export_events, _erase_events),
    Section("identityHistory", _export_history, _erase_history),
    Section("profileValues", _export_profile_values, _erase_profile_values),
    Section("firings", _export_firings, _erase_firings),
    Section("deliveries", _export_deliveries, _erase_deliveries),
]


async def subject(
    conn: asyncpg.Connection,
    workspace_id: str,
    person_or_alias: str,
    region: str,
    *,
    lock: Edit | None = None,
) -> Subject:
    """The subject a path names. With `lock` (an erase), the person is locked and must be named by its
    own id or an alias, not by a merged-away id."""
    person = await persons.find(conn, workspace_id, person_or_alias, region)
    if person is not None:
        if lock is not None:
            asked = person_or_alias if persons.is_person_id(person_or_alias) else person.person_id
            live = await lock.person(asked, follow_merges=False)
            (person,) = await persons.fetch(conn, workspace_id, [live])  # as it is now that it is locked
        merged = await persons.merged_into(conn, workspace_id, person.person_id)
        aliases = tuple(a.alias for a in person.aliases)
        return Subject(workspace_id, person, (person.person_id, *merged), aliases)
    spellings = persons.spellings(person_or_alias, region, "person")
    stored = await conn.fetch(QUERIES["aliases_with_events"], workspace_id, list(spellings))
    if not stored:
        raise NotFound(
            f"person '{person_or_alias[:64]}' not found", [Problem("person", "no such person or alias")]
        )
    return Subject(workspace_id, None, (), tuple(sorted(r["alias"] for r in stored)))


async def export(conn: asyncpg.Connection, s: Subject) -> dict[str, Any]:
    out: dict[str, Any] = {"workspaceId": s.workspace_id, "exportedAt": format_time(datetime.now(UTC))}
    for section in SECTIONS:
        out[section.name] = await section.export(conn, s)
    return out


async def erase(conn: asyncpg.Connection, s: Subject) -> dict[str, int]:
    """Erase every section of `s` (call inside a transaction); rows erased by section."""
    erased = {section.name: await section.erase(conn, s) for section in reversed(SECTIONS)}
    return {section.name: erased[section.name] for section in SECTIONS}
