"""The write path of one ingest batch, in one transaction (DESIGN.md, "What flows through it").

0. templates: those the batch's event types feed (none: steps 3 and 4 are skipped, and step 2 does not
   ask whether the aliases it creates were used before);
1. events: insert, deduplicated by content;
2. identity: every new alias gets a person (alias, person and its "created" change in one statement),
   `previousidentity` links and merges;
3. profiles: the values of the touched persons under the templates the batch's event types feed, and
   under every template for persons a merge changed, recomputed from their events: those of the persons
   that existed are read with their owners once the owners are locked (`lock_owners`), but for the batch's
   own, which are at hand (`_batch_events`); a person the batch created whose only events are the batch's
   is computed from them;
4. actions: the actions of the changed values are evaluated; firings and their outbox rows are written."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import asyncpg

from actions import firing
from journey_engine import identity
from journey_engine.events import EventRow, Stored, insert_events
from journey_engine.ingest import RetryBatch
from profiles import store
from profiles.aggregation import micros
from profiles.compute import EventFact
from profiles.jsonb import reads_back_unchanged


class IngestPipeline:
    """The batcher's `write`: called with a connection inside the batch's transaction."""

    def __init__(self, default_region: str) -> None:
        self._region = default_region

    async def __call__(self, conn: asyncpg.Connection, rows: Sequence[EventRow]) -> list[Stored]:
        templates: dict[str, list[store.StoredTemplate]] = {}
        for workspace_id in sorted({row.workspace_id for row in rows}):
            sent = {row.event.type for row in rows if row.workspace_id == workspace_id}
            templates[workspace_id] = await store.templates_for(conn, workspace_id, sent)
        stored = await insert_events(conn, rows)
        resolution = await identity.resolve_batch(
            conn, rows, stored, default_region=self._region, profiles=any(templates.values())
        )
        now = datetime.now(UTC)
        newest: dict[str, dict[str, int]] = defaultdict(dict)  # the newest new event under each alias
        types: dict[str, set[str]] = defaultdict(set)
        for row, result in zip(rows, stored, strict=True):
            workspace_id, alias = row.workspace_id, row.event.identity_normalised
            if result.duplicate or not templates[workspace_id]:
                continue
            seqs = newest[workspace_id]
            seqs[alias] = max(seqs.get(alias, 0), result.seq)
            types[workspace_id].add(row.event.type)
        for workspace_id in sorted(newest):
            fed = [t for t in templates[workspace_id] if t.event_types & types[workspace_id]]
            if not fed:
                continue
            seqs = newest[workspace_id]
            # An alias this batch created belongs to the person it created, which no other transaction
            # can see, lock, merge or delete yet: only a merge of this batch could move it.
            merging = any(w == workspace_id for w, _ in resolution.merged)
            created = {} if merging else resolution.created
            fresh = {a: created[(workspace_id, a)] for a in seqs if (workspace_id, a) in created}
            at_hand = _batch_events(rows, stored, workspace_id)
            own = {a: p for a, p in fresh.items() if (workspace_id, a) in resolution.only_new_events}
            given = {p: at_hand[a] for a, p in own.items() if a in at_hand}
            settle = sorted(seqs.keys() - fresh.keys())
            kept = [a for a in settle if a in at_hand]  # their new events are not read back, but added
            skip = [e.seq for a in kept for e in at_hand[a]]
            owners, read = await lock_owners(conn, workspace_id, settle, fed, now, skip)
            for alias in kept:
                read[owners[alias]].extend(at_hand[alias])
            owners |= fresh
            given |= read
            persons: dict[str, int] = {}  # the newest new event of each person
            for alias, seq in seqs.items():
                persons[owners[alias]] = max(persons.get(owners[alias], 0), seq)
            actions = await firing.active_actions(conn, workspace_id, [t.template_id for t in fed])
            changes = await store.refresh(
                conn, workspace_id, list(persons), now, templates=fed,
                before=firing.need_values_before(actions), locked=True, created=set(fresh.values()),
                given=given, report=bool(actions),
            )  # fmt: skip
            if actions:
                await firing.fire(conn, changes, "event", now, cause_events=persons, actions=actions)
        by_workspace: dict[str, set[str]] = defaultdict(set)
        for workspace_id, person in resolution.merged:
            by_workspace[workspace_id].add(person)
        for workspace_id, merged in by_workspace.items():
            await on_persons_changed(conn, workspace_id, merged)
        return stored


def _batch_events(
    rows: Sequence[EventRow], stored: Sequence[Stored], workspace_id: str
) -> dict[str, list[EventFact]]:
    """The workspace's new events in this batch by alias, as reading them from the database would give
    them: for a person the batch created they are all its events (when `only_new_events`), for one that
    existed they need not be read back. An alias with an event whose data would read back otherwise (a
    float jsonb turns into an int) is left out: read it."""
    out: dict[str, list[EventFact]] = {}
    unsure: set[str] = set()
    last, last_us = None, 0  # the events a request sends without a time share its receive time
    for row, result in zip(rows, stored, strict=True):
        if result.duplicate or row.workspace_id != workspace_id:
            continue
        alias, data = row.event.identity_normalised, row.event.data
        if not row.event.plain and not reads_back_unchanged(data):
            unsure.add(alias)
        if row.time is not last:
            last, last_us = row.time, micros(row.time)
        out.setdefault(alias, []).append(EventFact(result.seq, row.event.type, last_us, data))
    for alias in unsure:
        del out[alias]
    return out


async def lock_owners(
    conn: asyncpg.Connection,
    workspace_id: str,
    aliases: Sequence[str],
    templates: Sequence[store.StoredTemplate],
    now: datetime,
    skip: Sequence[int] = (),
) -> tuple[dict[str, str], dict[str, list[EventFact]]]:
    """Lock the persons owning `aliases`; return {alias: person} as it stands under the locks, and the
    events of those persons that `templates` may count at `now` (read after the locks: every committed
    one but those whose seq is in `skip`, each person's list, empty or not).

    The first statement locks the owners it sees. A merge or unmerge that committed while a lock waited
    may have moved an alias since (it locks the persons it changes, so after our locks the aliases of
    locked persons stay put): the locked persons' aliases are read again with their events, and an alias
    no longer among them is looked up and its owner locked too, until every alias is a locked person's.
    An alias with no owner (its person deleted after the claim found it) raises `RetryBatch`.
    """
    if not aliases:
        return {}, {}
    owners = await store.lock_alias_owners(conn, workspace_id, aliases)
    _check_owned(aliases, owners)
    locked = set(owners.values())
    while True:
        events, held = await store.read_events(conn, workspace_id, sorted(locked), templates, now, skip)
        moved = [a for a in aliases if a not in held]
        if not moved:
            owners = {a: held[a] for a in aliases}
            return owners, {p: events.get(p, []) for p in set(owners.values())}
        found = await store.lock_alias_owners(conn, workspace_id, moved)
        _check_owned(moved, found)
        if set(found.values()) <= locked:  # cannot be while moves lock their persons: never loop on it
            raise RetryBatch(f"alias '{moved[0]}' is owned by a locked person that does not hold it")
        locked |= set(found.values())


def _check_owned(aliases: Sequence[str], owners: dict[str, str]) -> None:
    lost = [a for a in aliases if a not in owners]
    if lost:  # its person was deleted after the claim found it: claim it again, in a new transaction
        raise RetryBatch(f"alias '{lost[0]}' lost its person to a concurrent delete")


async def on_persons_changed(
    conn: asyncpg.Connection, workspace_id: str, person_ids: Collection[str]
) -> None:
    """Persons whose aliases changed (merge, unmerge, alias edits): recompute their values under every
    template from their events (never add values together), then evaluate the actions on what changed;
    persons merged away lose their values."""
    now = datetime.now(UTC)
    changes = await store.refresh(conn, workspace_id, person_ids, now)
    await firing.fire(conn, changes, "identity", now)


async def on_values_aged(conn: asyncpg.Connection, changes: Sequence[store.Change]) -> None:
    """The decay sweep recomputed values whose window lost or gained an event: evaluate their actions."""
    if changes:
        await firing.fire(conn, changes, "decay", changes[0].after.computed_at)
