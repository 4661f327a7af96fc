"""Storing events: one statement for a whole batch, deduplicated by content.

Deduplication rule: an event is a retry of a stored one when every member is the same (`source`, `id`,
`time` as sent, identity, data, extensions...): its `content_hash` matches, and it is stored once. Events
that only share an `id` (JDS samples reuse one id for many events) differ in content and are all kept.
An event sent without `time` gets the receive time, which is part of what is stored but not of the hash,
so an identical retry without `time` is still recognised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from journey_engine.cloudevents import ParsedEvent
from journey_engine.sql import QUERIES
from profiles.jsonb import jsonb_text


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event ready to store: parsed, in its workspace, with its time settled."""

    workspace_id: str
    event: ParsedEvent
    time: datetime


@dataclass(frozen=True, slots=True)
class Stored:
    """What became of one event: its sequence number, and whether it was already stored."""

    seq: int
    duplicate: bool


def _rows_json(rows: Sequence[EventRow]) -> str:
    """The batch as one JSON array of rows, the columns of `insert_events` in order (`data` and
    `extensions` as JSON values, times in ISO 8601, hashes in hex). Sending one text is much cheaper than
    17 arrays of 500 elements."""
    out = []
    for row in rows:
        e = row.event
        out.append(
            (
                row.workspace_id, e.id, e.source, e.specversion, e.type, row.time.isoformat(),
                e.identity_normalised, e.identity, str(e.identity_type), e.previous_identity, e.subject,
                e.datacontenttype, e.dataschema, e.data, e.data_base64, e.extensions or None,
                e.content_hash.hex(),
            )
        )  # fmt: skip
    return jsonb_text(out)


async def insert_events(conn: asyncpg.Connection, rows: Sequence[EventRow]) -> list[Stored]:
    """Insert the rows in one statement; each gets its seq (the stored one's, for a duplicate)."""
    inserted = {
        (r["workspace_id"], bytes(r["content_hash"])): r["seq"]
        for r in await conn.fetch(QUERIES["insert_events"], _rows_json(rows))
    }
    missing = [
        (r.workspace_id, r.event.content_hash)
        for r in rows
        if (r.workspace_id, r.event.content_hash) not in inserted
    ]
    existing: dict[tuple[str, bytes], int] = {}
    if missing:
        found = await conn.fetch(
            QUERIES["find_events_by_hash"], [w for w, _ in missing], [h for _, h in missing]
        )
        existing = {(r["workspace_id"], bytes(r["content_hash"])): r["seq"] for r in found}
    out = []
    claimed: set[tuple[str, bytes]] = set()
    for row in rows:
        key = (row.workspace_id, row.event.content_hash)
        if key in inserted and key not in claimed:
            claimed.add(key)
            out.append(Stored(inserted[key], duplicate=False))
        else:
            out.append(Stored(inserted.get(key) or existing[key], duplicate=True))
    return out
