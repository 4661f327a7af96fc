"""Persons as the person APIs show them: read by id, found by alias, listed with an RSQL filter.

A person id that was merged into another resolves to the survivor (:func:`resolve`), so ids handed out
before a merge keep working for reads. Aliases are listed oldest first (then by alias), the same order in
``aliases`` and in each typed list, so a client sees a stable order.

Finding by alias takes untyped values, as the feed's ``identity`` does: each is tried in every spelling it
may be stored under (:func:`journey_engine.identities.previous_identity_candidates`; a leading space is a
URL's ``+``), and the first stored spelling counts.

The list ``filter`` is RSQL (:mod:`journey_engine.rsql`) over ``id``, ``firstName``, ``lastName``,
``createdAt``, ``updatedAt`` and the alias fields ``phone``, ``email``, ``customerId``, ``temporaryId``,
``socialId`` and ``aliases`` (any type). An alias field matches when one of the person's aliases does;
``!=`` and ``=out=`` match when none does. Values compare with the stored (normalised) alias; an exact
phone or email value is normalised first, so ``phone=='(226) 376-2555'`` works.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from journey_engine.cloudevents import format_time
from journey_engine.errors import NotFound, Problem
from journey_engine.feed import bad
from journey_engine.identities import IdentityError, IdentityType, normalise, previous_identity_candidates
from journey_engine.rsql import And, Comparison, FieldKind, Node, Or, RsqlError, compile_filter, parse
from journey_engine.sql import QUERIES

PERSON_ID_LENGTH = 24
_HEX = frozenset("0123456789abcdef")

# The columns `sortBy` and `filter` accept, and the SQL behind each (`p` is the persons row).
FIELDS: dict[str, tuple[str, FieldKind]] = {
    "id": ("p.person_id", FieldKind.TEXT),
    "firstName": ("p.first_name", FieldKind.TEXT),
    "lastName": ("p.last_name", FieldKind.TEXT),
    "createdAt": ("p.created_at", FieldKind.TIME),
    "updatedAt": ("p.updated_at", FieldKind.TIME),
}
ALIAS_FIELDS: dict[str, IdentityType | None] = {kind.value: kind for kind in IdentityType} | {"aliases": None}
_NEGATED = {"!=": "==", "=out=": "=in="}


def is_person_id(value: str) -> bool:
    return len(value) == PERSON_ID_LENGTH and set(value) <= _HEX


@dataclass(frozen=True, slots=True)
class Alias:
    alias: str
    alias_type: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Person:
    person_id: str
    first_name: str | None
    last_name: str | None
    aliases: tuple[Alias, ...]
    created_at: datetime
    updated_at: datetime

    def of_type(self, kind: IdentityType) -> list[str]:
        return [a.alias for a in self.aliases if a.alias_type == kind.value]

    def jds(self) -> dict[str, Any]:
        """JDS's PersonResponseModel (with ``socialId``, which JDS accepts in merge-identities)."""
        out: dict[str, Any] = {"id": self.person_id, "firstName": self.first_name, "lastName": self.last_name}
        out.update((kind.value, self.of_type(kind)) for kind in IdentityType)
        out["aliases"] = [a.alias for a in self.aliases]
        return out

    def native(self) -> dict[str, Any]:
        return {
            "id": self.person_id,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "aliases": [
                {"alias": a.alias, "type": a.alias_type, "since": format_time(a.since)} for a in self.aliases
            ],
            "createdAt": format_time(self.created_at),
            "updatedAt": format_time(self.updated_at),
        }


def _person(row: asyncpg.Record) -> Person:
    aliases = tuple(map(Alias, row["aliases"], row["types"], row["since"]))
    return Person(
        row["person_id"], row["first_name"], row["last_name"], aliases, row["created_at"], row["updated_at"]
    )


async def fetch(conn: asyncpg.Connection, workspace_id: str, person_ids: Sequence[str]) -> list[Person]:
    """The persons with these ids (not following merges), in the order given; unknown ids are skipped."""
    return [
        _person(r) for r in await conn.fetch(QUERIES["persons_with_aliases"], workspace_id, list(person_ids))
    ]


async def resolve(conn: asyncpg.Connection, workspace_id: str, person_id: str) -> str:
    """The id of the person holding `person_id`'s aliases now (itself, or the survivor of its merge)."""
    current: str | None = None
    if is_person_id(person_id):
        current = await conn.fetchval(QUERIES["current_person"], workspace_id, person_id)
    if current is None:
        raise NotFound(f"person '{person_id[:64]}' not found", [Problem("personId", "no such person")])
    return current


async def get(conn: asyncpg.Connection, workspace_id: str, person_id: str) -> Person:
    (person,) = await fetch(conn, workspace_id, [await resolve(conn, workspace_id, person_id)])
    return person


def spellings(value: str, region: str, field: str) -> tuple[str, ...]:
    """The aliases an untyped value may be stored under, best first (as the feed's ``identity``)."""
    try:
        found = previous_identity_candidates(value, region)
    except IdentityError as exc:
        raise bad(field, exc.reason) from None
    return found or (value.strip(),)  # "none" and friends are literal aliases here


async def lookup(
    conn: asyncpg.Connection, workspace_id: str, values: Sequence[str], region: str
) -> list[Person]:
    """The persons owning `values` (untyped aliases), in the order asked, each once."""
    if len(values) == 1:
        first, *other = spellings(values[0], region, "aliases[0]")
        row = await conn.fetchrow(
            QUERIES["person_by_alias"], workspace_id, first, other[0] if other else None
        )
        return [] if row is None else [_person(row)]
    texts: list[str] = []
    numbers: list[int] = []
    for n, value in enumerate(values):
        for spelling in spellings(value, region, f"aliases[{n}]"):
            texts.append(spelling)
            numbers.append(n)
    return [_person(r) for r in await conn.fetch(QUERIES["persons_by_aliases"], workspace_id, texts, numbers)]


async def find(
    conn: asyncpg.Connection, workspace_id: str, person_or_alias: str, region: str
) -> Person | None:
    """The person a native path names: by person id (following merges), else by alias."""
    if is_person_id(person_or_alias):
        current = await conn.fetchval(QUERIES["current_person"], workspace_id, person_or_alias)
        if current is not None:
            return (await fetch(conn, workspace_id, [current]))[0]
    found = await lookup(conn, workspace_id, [person_or_alias], region)
    return found[0] if found else None


def filter_sql(text: str, params: list[object], region: str) -> str:
    """The SQL condition of a person ``filter`` (values go into ``params``); 400 naming ``filter``."""
    try:
        return _compile(parse(text), params, region)
    except RsqlError as exc:
        raise bad("filter", str(exc)) from None


def _compile(node: Node, params: list[object], region: str) -> str:
    match node:
        case And():
            return "(" + " AND ".join(_compile(child, params, region) for child in node.children) + ")"
        case Or():
            return "(" + " OR ".join(_compile(child, params, region) for child in node.children) + ")"
        case Comparison() if node.selector in ALIAS_FIELDS:
            kind = ALIAS_FIELDS[node.selector]
            positive = replace(
                node, op=_NEGATED.get(node.op, node.op), values=_normalised(node, kind, region)
            )
            condition = compile_filter(positive, {node.selector: ("x.alias", FieldKind.TEXT)}, params)
            if kind is not None:
                params.append(kind.value)
                condition += f" AND x.alias_type = ${len(params)}"
            exists = (
                "EXISTS (SELECT FROM aliases x WHERE x.workspace_id = p.workspace_id"
                f" AND x.person_id = p.person_id AND {condition})"
            )
            return f"(NOT {exists})" if node.op in _NEGATED else exists
        case Comparison():
            return compile_filter(node, FIELDS, params)


def _normalised(node: Comparison, kind: IdentityType | None, region: str) -> tuple[str, ...]:
    """Exact phone and email values in their stored form (patterns and other types are left as written)."""
    if kind not in (IdentityType.PHONE, IdentityType.EMAIL) or any(
        "*" in v or "\\" in v for v in node.values
    ):
        return node.values
    out = []
    for value in node.values:
        try:
            out.append(normalise(kind, value, region))
        except IdentityError:
            out.append(value)
    return tuple(out)


def sort_key(sort_by: str) -> str:
    if sort_by not in FIELDS:
        raise bad("sortBy", f"unknown field {sort_by[:40]!r}; use one of {', '.join(FIELDS)}")
    return FIELDS[sort_by][0]


async def page(
    conn: asyncpg.Connection,
    workspace_id: str,
    *,
    filter: str | None,
    sort_by: str,
    descending: bool,
    page: int,
    page_size: int,
    region: str,
) -> list[Person]:
    """One page of the workspace's persons (merged-away ids are not listed)."""
    params: list[object] = [workspace_id]
    where = f" AND {filter_sql(filter, params, region)}" if filter else ""
    direction = "DESC" if descending else "ASC"
    order = f"{sort_key(sort_by)} {direction}, p.person_id {direction}"
    params.extend((page_size, page * page_size))
    sql = QUERIES["list_persons"].format(
        where=where, order=order, limit=f"${len(params) - 1}", offset=f"${len(params)}"
    )
    ids = [r["person_id"] for r in await conn.fetch(sql, *params)]
    return await fetch(conn, workspace_id, ids)


def sort_persons(found: list[Person], sort_by: str | None, descending: bool) -> list[Person]:
    """`found` sorted by a `sortBy` field (None: as found); persons without the field come last."""
    if sort_by is None:
        return found
    sort_key(sort_by)
    attribute = {"id": "person_id", "firstName": "first_name", "lastName": "last_name"}.get(sort_by, "")
    attribute = attribute or {"createdAt": "created_at", "updatedAt": "updated_at"}[sort_by]
    present = [p for p in found if getattr(p, attribute) is not None]
    missing = [p for p in found if getattr(p, attribute) is None]
    return sorted(present, key=lambda p: getattr(p, attribute), reverse=descending) + missing


async def merged_into(conn: asyncpg.Connection, workspace_id: str, person_id: str) -> list[str]:
    """The ids that were merged (directly or not) into `person_id`."""
    return [r["person_id"] for r in await conn.fetch(QUERIES["merged_persons"], workspace_id, person_id)]


async def history(
    conn: asyncpg.Connection, workspace_id: str, person_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Every identity change of these persons or naming them, oldest first: what changed, when, and by
    which API key (``byKey``) or event (``byEvent``, its ``seq`` in the native feed)."""
    rows = await conn.fetch(QUERIES["identity_changes"], workspace_id, list(person_ids))
    return [
        {
            "changeId": r["change_id"],
            "kind": r["kind"],
            "personId": r["person_id"],
            "otherPersonId": r["other_person_id"],
            "aliases": list(r["aliases"]),
            "byKey": r["by_key"],
            "byEvent": r["by_event"],
            "at": format_time(r["at"]),
        }
        for r in rows
    ]
