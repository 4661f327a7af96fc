"""The write path of one ingest batch, in one transaction (DESIGN.md, "What flows through it").

1. events: insert, deduplicated by content;
2. identity: every new alias gets a person, `previousidentity` links and merges;
3. profiles: the values of the touched persons under the templates the batch's event types feed, and
   under every template for persons a merge changed, recomputed from their events;
4. (actions evaluate the changed values here.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import asyncpg

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
        new_events: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for row, result in zip(rows, stored, strict=True):
            if not result.duplicate:
                new_events[row.workspace_id][row.event.identity_normalised].add(row.event.type)
        for workspace_id, by_alias in new_events.items():
            owners = await identity.persons_of(conn, workspace_id, list(by_alias))
            types_by_person: dict[str, set[str]] = defaultdict(set)
            for alias, types in by_alias.items():
                types_by_person[owners[alias]] |= types
            all_types = set().union(*types_by_person.values())
            await store.refresh(conn, workspace_id, list(types_by_person), now, event_types=all_types)
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
    template from their events (never add values together); persons merged away lose theirs."""
    await store.refresh(conn, workspace_id, person_ids, datetime.now(UTC))
