"""The write path of one ingest batch, in one transaction (DESIGN.md, "What flows through it").

1. events: insert, deduplicated by content;
2. identity: every new alias gets a person, `previousidentity` links and merges;
3. profiles: the values of the touched persons under the templates the batch's event types feed, and
   under every template for persons a merge changed, recomputed from their events;
4. actions: the actions of the changed values are evaluated; firings and their outbox rows are written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import asyncpg

from actions import firing
from journey_engine import identity
from journey_engine.events import EventRow, Stored, insert_events
from profiles import store


class IngestPipeline:
    """The batcher's `write`: called with a connection inside the batch's transaction."""

    def __init__(self, default_region: str) -> None:
        self._region = default_region

    async def __call__(self, conn: asyncpg.Connection, rows: Sequence[EventRow]) -> list[Stored]:
        stored = await insert_events(conn, rows)
        merged = await identity.resolve_batch(conn, rows, stored, default_region=self._region)
        now = datetime.now(UTC)
        new_events: dict[str, list[tuple[EventRow, Stored]]] = defaultdict(list)
        for row, result in zip(rows, stored, strict=True):
            if not result.duplicate:
                new_events[row.workspace_id].append((row, result))
        for workspace_id, fresh in new_events.items():
            types = {row.event.type for row, _ in fresh}
            templates = await store.templates_for(conn, workspace_id, types)
            if not templates:
                continue  # no template counts these events: no value or action can change
            owners = await identity.persons_of(
                conn, workspace_id, sorted({r.event.identity_normalised for r, _ in fresh})
            )
            newest: dict[str, int] = {}
            for row, result in fresh:
                person = owners[row.event.identity_normalised]
                newest[person] = max(newest.get(person, 0), result.seq)
            changes = await store.refresh(conn, workspace_id, list(newest), now, templates=templates)
            await firing.fire(conn, changes, "event", now, cause_events=newest)
        by_workspace: dict[str, set[str]] = defaultdict(set)
        for workspace_id, person in merged:
            by_workspace[workspace_id].add(person)
        for workspace_id, persons in by_workspace.items():
            await on_persons_changed(conn, workspace_id, persons)
        return stored


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
