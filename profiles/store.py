"""Stored profile values: recomputed from events in the transaction that changed them.

`refresh` is the one way values are written: after an ingest batch (for the persons and event types it
touched), after a merge or unmerge (every template of the persons involved), and by the sweeper (values
whose window lost or gains an event now). It locks the persons first (sorted), so the events it reads
include every committed one; concurrent writers of one person queue instead of storing stale values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg

from profiles import jsonb
from profiles.aggregation import micros
from profiles.compute import EventFact, ProfileValues, compute, compute_stored, from_json, to_json
from profiles.jsonb import jsonb_text
from profiles.sqlfiles import int_array, load_queries, text_array
from profiles.templates import TemplateSpec

QUERIES = load_queries("profiles")
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    template_id: str
    spec: TemplateSpec
    version: datetime
    """When the definition last changed; values computed with an older one are stale."""

    @property
    def event_types(self) -> frozenset[str]:
        """The event types its attributes count."""
        return frozenset(a.event for a in self.spec.attributes)


@dataclass(slots=True)
class Change:  # not frozen: made per person and event (see compute.EventFact)
    """A person's values under a template, before (None: never computed, or not asked for) and after a
    refresh."""

    workspace_id: str
    person_id: str
    template: StoredTemplate
    before: ProfileValues | None
    after: ProfileValues


def parse_template(row: asyncpg.Record) -> StoredTemplate:
    """The stored template, validated once per version (every event and read of it needs it). `spec` is
    the decoded jsonb, or its text (`spec::text`), which the hot reads (a profile view, an ingest batch)
    select so that a version already validated is not decoded at all: a 5-attribute spec cost ~30 µs a
    request through the json codec (orjson and the walk for integers beyond 64 bits)."""
    key = (row["template_id"], row["updated_at"])
    spec = _PARSED.get(key, lambda: TemplateSpec.model_validate(_decoded(row["spec"])))
    return StoredTemplate(row["template_id"], spec, row["updated_at"])


def _decoded(spec: Any) -> Any:
    return jsonb.loads(spec) if isinstance(spec, str) else spec


class VersionCache(Generic[K, V]):
    """What is derived from a stored definition (a template, an action), by its id and version: a
    version's definition never changes, so an entry is never stale. Bounded: emptied when full."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._items: dict[K, V] = {}

    def get(self, key: K, make: Callable[[], V]) -> V:
        found = self._items.get(key)
        if found is None:
            if len(self._items) >= self._size:
                self._items.clear()
            found = self._items[key] = make()
        return found


_PARSED: VersionCache[tuple[str, datetime], TemplateSpec] = VersionCache()
"""Validated templates by (id, version): every event and read of a template needs it."""


async def templates_for(
    conn: asyncpg.Connection, workspace_id: str, event_types: Collection[str] | None
) -> list[StoredTemplate]:
    """The workspace's templates that events of `event_types` can change (None: all templates), held
    until the transaction ends so that none is deleted while its values are written."""
    types = None if event_types is None else sorted(event_types)
    rows = await conn.fetch(QUERIES["templates_for_types"], workspace_id, types)
    if not rows:
        return []
    ids = [r["template_id"] for r in rows]
    there = {r["template_id"] for r in await conn.fetch(QUERIES["templates_still_there"], workspace_id, ids)}
    return [parse_template(r) for r in rows if r["template_id"] in there]


async def refresh(
    conn: asyncpg.Connection,
    workspace_id: str,
    person_ids: Collection[str],
    now: datetime,
    *,
    event_types: Collection[str] | None = None,
    templates: Sequence[StoredTemplate] | None = None,
    before: bool = True,
    locked: bool = False,
    created: Collection[str] = (),
    given: Mapping[str, Sequence[EventFact]] | None = None,
    report: bool = True,
) -> list[Change]:
    """Recompute and store the values of `person_ids` under the templates that `event_types` touch
    (or `templates`, or all). Persons merged away or deleted lose their rows. Returns what was computed,
    with the values before unless `before` is False (then every `Change.before` is None: nothing needs
    them).
    `locked`: the caller holds the persons' locks (`lock_persons`), or created them in this transaction,
    and they are all current persons. `created`: those created in this transaction (no values yet).
    `given`: every event of some of the persons (within the windows at least), already at hand: not read.
    `report` False: nothing reads the changes (no action), so none is made (`compute_stored`: a batch's
    would all stay alive until it ends) and [] is returned."""
    if templates is None:
        templates = await templates_for(conn, workspace_id, event_types)
    if not templates:
        return []  # no template: no values, not even of persons merged away
    if locked:
        live = sorted(person_ids)
    else:
        merged_into = await lock_persons(conn, workspace_id, person_ids)
        retired = [p for p in person_ids if merged_into.get(p, "deleted") is not None]
        if retired:
            await conn.execute(QUERIES["delete_person_values"], workspace_id, retired)
        live = [p for p, into in merged_into.items() if into is None]
    if not live:
        return []
    given = given or {}
    unknown = [p for p in live if p not in given]
    read = (await read_events(conn, workspace_id, unknown, templates, now))[0] if unknown else {}
    previous = await _stored(conn, workspace_id, live, templates) if before else {}
    changes = []
    now_us = micros(now)
    # upsert_values's columns, row by row, as the text it splits
    positions: list[str] = []
    persons: list[str] = []
    vals: list[str] = []
    due: list[str] = []
    fresh: list[str] = []
    for person in live:
        facts = given[person] if person in given else read.get(person, ())
        is_new = "t" if person in created else "f"
        for position, template in enumerate(templates, 1):
            if report:
                after = compute(template.spec, facts, now)
                was = previous.get((template.template_id, person))
                changes.append(Change(workspace_id, person, template, was, after))
                stored = to_json(template.spec, after)
                change = None if after.next_change_at is None else micros(after.next_change_at)
            else:
                stored, change = compute_stored(template.spec, facts, now_us)
            positions.append(str(position))
            persons.append(person)
            vals.append(jsonb_text(stored))
            due.append("n" if change is None else str(change))
            fresh.append(is_new)
    await conn.execute(
        QUERIES["upsert_values"], workspace_id, now, [t.template_id for t in templates],
        [t.version for t in templates], ",".join(positions), ",".join(persons), "\x1f".join(vals),
        ",".join(due), ",".join(fresh),
    )  # fmt: skip
    return changes


async def lock_persons(
    conn: asyncpg.Connection, workspace_id: str, person_ids: Collection[str]
) -> dict[str, str | None]:
    """Lock the persons (sorted) for a profile computation: {person: the person it was merged into, or
    None}. The next statement sees every event committed for them and no merge or unmerge can move
    their aliases until the transaction ends."""
    rows = await conn.fetch(QUERIES["lock_profile_persons"], workspace_id, sorted(person_ids))
    return {r["person_id"]: r["merged_into"] for r in rows}


async def lock_alias_owners(
    conn: asyncpg.Connection, workspace_id: str, aliases: Sequence[str]
) -> dict[str, str]:
    """Lock the persons owning `aliases` as `lock_persons` does; {alias: person} as this statement saw
    them (aliases with no person left out). A merge committed while a lock waited may have moved an alias
    since: `read_events` reads the locked persons' aliases again."""
    owners: dict[str, str] | None = await conn.fetchval(
        QUERIES["lock_alias_owners"], workspace_id, text_array(aliases)
    )
    return owners or {}


def exact_at(values: ProfileValues, now: datetime) -> bool:
    """Whether stored values still hold at `now` (no event has left or entered a window since)."""
    return values.next_change_at is None or values.next_change_at > now


async def compute_from_events(
    conn: asyncpg.Connection, workspace_id: str, person_id: str, template: StoredTemplate, now: datetime
) -> ProfileValues:
    """The values at `now` computed from the person's events (not stored)."""
    events, _ = await read_events(conn, workspace_id, [person_id], [template], now)
    return compute(template.spec, events.get(person_id, ()), now)


def decode_stored(template: StoredTemplate, row: asyncpg.Record) -> ProfileValues | None:
    """A stored row's values (`vals`, `computed_at`, `next_change_at`, `template_version`), or None when
    it is marked for computation or was computed under another definition of the template."""
    vals: list[list[Any]] | None = row["vals"]
    if not vals or row["template_version"] != template.version:
        return None
    return from_json(template.spec, vals, row["computed_at"], row["next_change_at"])


async def sweep_due(conn: asyncpg.Connection, now: datetime, limit: int = 500) -> list[Change]:
    """Recompute up to `limit` values whose next change is due, skipping persons another transaction
    holds (it recomputes them, or a later sweep does). Call inside a transaction."""
    due = await conn.fetch(QUERIES["due_values"], now, limit)
    by_workspace: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for row in due:
        by_workspace[row["workspace_id"]][row["person_id"]].add(row["template_id"])
    changes: list[Change] = []
    for workspace_id, persons in by_workspace.items():
        free = await conn.fetch(QUERIES["lock_profile_persons_skip"], workspace_id, sorted(persons))
        free_ids = [r["person_id"] for r in free]  # retired ones too: `refresh` drops their values
        if len(free_ids) < len(persons):  # held by another transaction, or deleted (never stuck due)
            skipped = sorted(set(persons) - set(free_ids))
            await conn.execute(QUERIES["delete_values_of_deleted_persons"], workspace_id, skipped)
        if not free_ids:
            continue
        wanted = set().union(*(persons[p] for p in free_ids))
        templates = [t for t in await templates_for(conn, workspace_id, None) if t.template_id in wanted]
        gone = wanted - {t.template_id for t in templates}
        if gone:  # not written since 0009 (a template is deleted with its values); never stuck due
            await conn.execute(QUERIES["clear_values_of_templates"], workspace_id, sorted(gone))
        changes.extend(await refresh(conn, workspace_id, free_ids, now, templates=templates))
    return changes


async def read_events(
    conn: asyncpg.Connection,
    workspace_id: str,
    person_ids: Sequence[str],
    templates: Sequence[StoredTemplate],
    now: datetime,
    skip: Sequence[int] = (),
) -> tuple[dict[str, list[EventFact]], dict[str, str]]:
    """The events of `person_ids` that `templates` may count at `now` (their types, from the start of the
    longest window on), by person, but those whose seq is in `skip` (at hand already); and, read in the
    same snapshot, the aliases of those persons ({alias: person})."""
    types = sorted({a.event for t in templates for a in t.spec.attributes})
    since = now - max(a.lookback for t in templates for a in t.spec.attributes)
    found = await conn.fetchval(
        QUERIES["person_events"], workspace_id, text_array(person_ids), types, since, int_array(skip)
    )
    events: dict[str, list[EventFact]] = defaultdict(list)
    aliases: dict[str, str] = {}
    for person, alias, seq, type_, time, data in found or ():
        aliases[alias] = person
        if seq is not None:
            events[person].append(EventFact(seq, type_, time, data))
    return events, aliases


async def _stored(
    conn: asyncpg.Connection,
    workspace_id: str,
    person_ids: Sequence[str],
    templates: Sequence[StoredTemplate],
) -> dict[tuple[str, str], ProfileValues]:
    by_id = {t.template_id: t for t in templates}
    rows = await conn.fetch(QUERIES["stored_values"], workspace_id, list(person_ids), list(by_id))
    out: dict[tuple[str, str], ProfileValues] = {}
    for r in rows:
        values = decode_stored(by_id[r["template_id"]], r)
        if values is not None:
            out[(r["template_id"], r["person_id"])] = values
    return out
