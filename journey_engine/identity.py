"""Identity resolution: persons own aliases; events belong to the alias they were sent under.

A person is a set of aliases (normalised identities). The first event under an unknown alias creates a
person for it. A `previousidentity` links journeys: the alias it names joins the event's person, and when
it already belongs to another person, that person is merged in. Because events stay keyed by alias, a
merge or an unmerge only moves alias rows; every event follows its alias.

Concurrency: aliases are claimed with `INSERT ... ON CONFLICT DO NOTHING` on the (workspace, alias) key,
so two transactions creating the same alias at once end with one owner (the second waits for the first
and then reads its row). Rows are claimed and locked in sorted order, so concurrent batches queue instead
of deadlocking; the batcher retries the rare deadlock that remains.

Every creation, link, merge and unmerge is recorded in `identity_changes` with the key or event behind it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from journey_engine.errors import BadRequest, Conflict, NotFound, Problem
from journey_engine.events import EventRow, Stored
from journey_engine.identities import guess_type
from journey_engine.sql import QUERIES
from profiles.sqlfiles import int_array, text_array


def new_person_id() -> str:
    """24 hex characters like JDS's ids: 4 bytes of seconds (so ids sort by creation) and 8 random."""
    return new_person_ids(1)[0]


def new_person_ids(count: int) -> list[str]:
    """`count` ids as `new_person_id` makes them, with one call for random bytes (a system call, ~1-3 µs
    each, where an ingest batch offers an id for each of its hundreds of aliases)."""
    seconds = int(time.time()).to_bytes(4, "big")
    noise = os.urandom(8 * count)
    return [(seconds + noise[i : i + 8]).hex() for i in range(0, 8 * count, 8)]


@dataclass(frozen=True)
class Actor:
    """Who or what caused an identity change: an API key, or an event (by its seq)."""

    key_id: str | None = None
    event_seq: int | None = None


@dataclass(frozen=True)
class Resolution:
    """What identity resolution did to a batch: the persons it created and those a merge changed."""

    merged: set[tuple[str, str]]
    """(workspace, person) pairs whose set of aliases changed by a merge: recompute from their events."""
    created: dict[tuple[str, str], str]
    """{(workspace, alias): person} for the aliases this batch created, each with a new person: until the
    batch commits no other transaction sees either, so only this batch's merges can move them."""
    only_new_events: set[tuple[str, str]] = field(default_factory=set)
    """(workspace, alias) of created aliases (when asked for: `profiles`) whose person's events are this
    batch's events under the alias and nothing else: nothing was stored under it before (a deleted
    person's alias keeps its events), no merge in its workspace, no link to it or from it."""


async def resolve_batch(
    conn: asyncpg.Connection,
    rows: Sequence[EventRow],
    stored: Sequence[Stored],
    *,
    default_region: str,
    profiles: bool = False,
) -> Resolution:
    """Give every event's alias a person and apply `previousidentity` links, in event order. With
    `profiles` (the caller computes the profiles of the persons created), also say which of them have no
    event but this batch's (`Resolution.only_new_events`)."""
    offers: dict[tuple[str, str], tuple[str, int]] = {}  # alias type, and the seq that brought it
    stored_under: dict[tuple[str, str], int] = {}  # how many events this batch stored under each alias
    for row, result in zip(rows, stored, strict=True):
        key = (row.workspace_id, row.event.identity_normalised)
        if key not in offers:
            offers[key] = (str(row.event.identity_type), result.seq)
        if not result.duplicate:
            stored_under[key] = stored_under.get(key, 0) + 1
    keys = sorted(offers)
    claimed = await conn.fetch(
        QUERIES["claim_event_aliases"], text_array([w for w, _ in keys]), text_array([a for _, a in keys]),
        text_array([offers[k][0] for k in keys]), text_array(new_person_ids(len(keys))),
        int_array([offers[k][1] for k in keys]),
    )  # fmt: skip
    created = {(r["workspace_id"], r["alias"]): r["person_id"] for r in claimed}
    unused: set[tuple[str, str]] = set()
    if profiles and created:
        new = sorted(created)
        used = await conn.fetch(
            QUERIES["aliases_used_before"], text_array([w for w, _ in new]), text_array([a for _, a in new]),
            int_array([stored_under.get(k, 0) for k in new]),
        )  # fmt: skip
        unused = created.keys() - {(r["workspace_id"], r["alias"]) for r in used}
    merged: set[tuple[str, str]] = set()
    linking: set[str] = set()  # workspaces where an event links identities (a merge is a link)
    await _lock_for_links(conn, rows, stored)
    for row, result in zip(rows, stored, strict=True):
        candidates = row.event.previous_identity_candidates
        if result.duplicate or not candidates or row.event.previous_identity is None:
            continue
        linking.add(row.workspace_id)
        alias_type = str(guess_type(row.event.previous_identity, default_region))
        actor = Actor(event_seq=result.seq)
        changed = await link(
            conn, row.workspace_id, row.event.identity_normalised, candidates, alias_type, actor
        )
        merged.update((row.workspace_id, person) for person in changed)
    return Resolution(merged, created, {(w, a) for w, a in unused if w not in linking})


async def _lock_for_links(
    conn: asyncpg.Connection, rows: Sequence[EventRow], stored: Sequence[Stored]
) -> None:
    """Before the first link, lock every alias of every person the batch's links may change, sorted:
    links then take alias rows in one order (as the person API does), not in the order of the events."""
    touched: dict[str, set[str]] = {}
    for row, result in zip(rows, stored, strict=True):
        candidates = row.event.previous_identity_candidates
        if not result.duplicate and candidates and row.event.previous_identity is not None:
            touched.setdefault(row.workspace_id, set()).update([row.event.identity_normalised, *candidates])
    for workspace_id in sorted(touched):
        await conn.fetch(QUERIES["lock_owners_aliases"], workspace_id, sorted(touched[workspace_id]))


async def link(
    conn: asyncpg.Connection,
    workspace_id: str,
    alias: str,
    candidates: Sequence[str],
    candidate_type: str,
    actor: Actor,
) -> set[str]:
    """Make the person owning `alias` also own the previous identity (the first of its `candidates`
    stored, else the first candidate as a new alias). Returns the persons a merge changed (empty if none).
    """
    for _ in range(2):
        owned = {
            r["alias"]: r["person_id"]
            for r in await conn.fetch(QUERIES["aliases_owned"], workspace_id, [alias, *candidates])
        }
        person = owned[alias]
        others = sorted({owned[c] for c in candidates if c in owned} - {person})
        if others:
            await merge(conn, workspace_id, person, others, actor)
            return {person, *others}
        if any(c in owned for c in candidates):
            return set()  # already one person
        # Hold the person while it gains the alias: a merge of it under way (which locks the person, then
        # moves its aliases) would otherwise not see the new alias and leave it with the retired person.
        await conn.fetch(QUERIES["lock_persons"], workspace_id, [person])
        added = await conn.fetch(
            QUERIES["claim_aliases"], [workspace_id], [candidates[0]], [candidate_type], [person]
        )
        if added:
            await _log(conn, workspace_id, person, None, "linked", [candidates[0]], actor)
            return set()
        # Another transaction created that alias meanwhile: look again, now it exists.
    raise Conflict(f"previousidentity: '{candidates[0]}' changed owner concurrently; retry")


async def merge(
    conn: asyncpg.Connection, workspace_id: str, primary: str, others: Sequence[str], actor: Actor
) -> list[str]:
    """Merge `others` into `primary`: their aliases (and so their events) move to it; their ids resolve
    to it from then on. Names the primary lacks are taken from the merged persons. Returns moved aliases.
    """
    others = sorted(set(others) - {primary})
    locked = {
        r["person_id"]: r for r in await conn.fetch(QUERIES["lock_persons"], workspace_id, [primary, *others])
    }
    missing = [p for p in [primary, *others] if p not in locked]
    if missing:
        raise NotFound(f"person '{missing[0]}' not found")
    moved_all: list[str] = []
    for other in others:
        moved = [r["alias"] for r in await conn.fetch(QUERIES["move_aliases"], workspace_id, other, primary)]
        await conn.execute(QUERIES["retire_person"], workspace_id, other, primary)
        names = locked[other]
        await conn.execute(
            QUERIES["fill_names"], workspace_id, primary, names["first_name"], names["last_name"]
        )
        await _log(conn, workspace_id, primary, other, "merged", moved, actor)
        moved_all.extend(moved)
    return moved_all


async def unmerge(
    conn: asyncpg.Connection, workspace_id: str, person_id: str, aliases: Sequence[str], actor: Actor
) -> str:
    """Split `aliases` (and the events sent under them) out of `person_id` into a new person; its id."""
    if not aliases:
        raise BadRequest("Nothing to split", [Problem("aliases", "name at least one alias to split out")])
    if not await conn.fetch(QUERIES["lock_persons"], workspace_id, [person_id]):
        raise NotFound(f"person '{person_id}' not found")
    owned = {
        r["alias"]: r["person_id"] for r in await conn.fetch(QUERIES["aliases_owned"], workspace_id, aliases)
    }
    foreign = [a for a in aliases if owned.get(a) != person_id]
    if foreign:
        raise BadRequest(
            "Alias not owned by this person",
            [Problem("aliases", f"'{foreign[0]}' is not an alias of this person")],
        )
    remaining = await conn.fetch(QUERIES["person_aliases"], workspace_id, person_id)
    if len(remaining) <= len(set(aliases)):
        raise BadRequest(
            "Cannot split out every alias", [Problem("aliases", "the person must keep at least one alias")]
        )
    new_id = new_person_id()
    await conn.execute(QUERIES["insert_persons"], [workspace_id], [new_id], [None], [None])
    split = [
        r["alias"] for r in await conn.fetch(QUERIES["split_aliases"], workspace_id, list(aliases), new_id)
    ]
    await _log(conn, workspace_id, person_id, new_id, "unmerged", split, actor)
    await _log(conn, workspace_id, new_id, person_id, "created", split, actor)
    return new_id


async def person_of(conn: asyncpg.Connection, workspace_id: str, candidates: Sequence[str]) -> str | None:
    """The person owning the first of `candidates` (normalised alias forms) that is stored."""
    person: str | None = await conn.fetchval(QUERIES["alias_person"], workspace_id, list(candidates))
    return person


async def persons_of(conn: asyncpg.Connection, workspace_id: str, aliases: Sequence[str]) -> dict[str, str]:
    """{alias: person} for the stored ones among `aliases`."""
    rows = await conn.fetch(QUERIES["owners_of_aliases"], workspace_id, list(aliases))
    return {r["alias"]: r["person_id"] for r in rows}


async def current_person(conn: asyncpg.Connection, workspace_id: str, person_id: str) -> str | None:
    """The person that holds `person_id`'s aliases now (itself, or the one it was merged into)."""
    current: str | None = await conn.fetchval(QUERIES["current_person"], workspace_id, person_id)
    return current


async def aliases_of(conn: asyncpg.Connection, workspace_id: str, person_id: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(QUERIES["person_aliases"], workspace_id, person_id))


async def _log(
    conn: asyncpg.Connection,
    workspace_id: str,
    person_id: str,
    other: str | None,
    kind: str,
    aliases: Sequence[str],
    actor: Actor,
) -> None:
    await conn.execute(
        QUERIES["log_identity_change"], workspace_id, person_id, other, kind, list(aliases), actor.key_id,
        actor.event_seq,
    )  # fmt: skip
