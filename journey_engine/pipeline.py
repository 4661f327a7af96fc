"""The write path of one ingest batch, in one transaction (DESIGN.md, "What flows through it").

1. events: insert, deduplicated by content;
2. identity: every new alias gets a person, `previousidentity` links and merges;
3. (profiles and actions join here: the persons a merge changed are returned by step 2.)
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from journey_engine import identity
from journey_engine.events import EventRow, Stored, insert_events


class IngestPipeline:
    """The batcher's `write`: called with a connection inside the batch's transaction."""

    def __init__(self, default_region: str) -> None:
        self._region = default_region

    async def __call__(self, conn: asyncpg.Connection, rows: Sequence[EventRow]) -> list[Stored]:
        stored = await insert_events(conn, rows)
        await identity.resolve_batch(conn, rows, stored, default_region=self._region)
        return stored
