"""The event feed: a workspace's events, or one identity's, filtered with RSQL, newest first.

What selects events (all optional, combined with AND):

- ``identity``: the events stored under the aliases :func:`aliases_of` finds for it (the value carries no
  type, so every spelling it may be stored under is tried). Matched on the indexed ``events.identity``
  column, so a query for one identity reads that identity's index entries and no one else's.
- ``filter``: RSQL over the top-level attributes *as the feed renders them* (:data:`FIELDS`). ``identity``
  there is the value as it was sent (``identity_raw``), so a filter never contradicts what the client
  sees; spelling-insensitive lookup is what the ``identity`` parameter is for. ``identityType`` (or
  ``identitytype``) ignores case: ``identityType=='PHONE'`` matches ``phone``.
- ``data``: RSQL over the event's ``data`` (dotted paths): :func:`journey_engine.rsql.compile_data_filter`.

Two ways to page through it. JDS: 0-based ``page`` of ``pageSize`` events at an offset, sorted by any of
:data:`FIELDS` (ties broken by time, then seq, in the same direction). Native: keyset pagination over
``(time, seq)`` with an opaque :class:`Cursor`; walking it never repeats or skips an event that existed when
the walk began, and an event inserted meanwhile appears if and only if it sorts after the cursor.

SQL: the skeleton is ``feed_events`` in ``queries.sql``; this module fills in its WHERE conditions (fixed
SQL and the RSQL compiler's output), ORDER BY (from a fixed list) and LIMIT/OFFSET. Every value is a
parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from journey_engine.cloudevents import format_time, to_cloudevent
from journey_engine.errors import BadRequest, Problem
from journey_engine.identities import IdentityError, previous_identity_candidates
from journey_engine.rsql import (
    And,
    Comparison,
    FieldKind,
    Node,
    Or,
    RsqlError,
    compile_data_filter,
    compile_filter,
    parse,
)
from journey_engine.sql import QUERIES

# The top-level attributes `filter` and `sortBy` accept, and the SQL behind each.
FIELDS: dict[str, tuple[str, FieldKind]] = {
    "id": ("e.id", FieldKind.TEXT),
    "source": ("e.source", FieldKind.TEXT),
    "type": ("e.type", FieldKind.TEXT),
    "subject": ("e.subject", FieldKind.TEXT),
    "time": ("e.time", FieldKind.TIME),
    "identity": ("e.identity_raw", FieldKind.TEXT),
    "identityType": ("lower(e.identity_type)", FieldKind.TEXT),
    "identitytype": ("lower(e.identity_type)", FieldKind.TEXT),
}
_CASE_INSENSITIVE = frozenset({"identityType", "identitytype"})


def bad(param: str, reason: str) -> BadRequest:
    """A 400 naming the query parameter: ``filter: unexpected ')' at position 12``."""
    return BadRequest(f"{param}: {reason}", [Problem(param, reason)])


def identity_spellings(identity: str, region: str) -> tuple[str, ...]:
    """The aliases an untyped identity may be stored under, best first, at most two: its email or E.164
    form when it reads as one, and the stripped value (a leading space is a URL's ``+``); "none" and
    friends are literal identities here. A 400 naming ``identity`` when it cannot be one."""
    if not identity.strip():
        raise bad("identity", "must not be empty")
    try:
        return previous_identity_candidates(identity, region) or (identity.strip(),)
    except IdentityError as exc:
        raise bad("identity", exc.reason) from None


async def aliases_of(
    conn: asyncpg.Connection, workspace_id: str, identity: str, region: str
) -> tuple[str, ...]:
    """The stored aliases (``events.identity`` values) whose events a query for ``identity`` returns:
    every alias of the person who owns it, whichever spelling of whichever alias is asked
    (:func:`identity_spellings`); the spellings themselves when no person owns one.
    """
    spellings = identity_spellings(identity, region)
    rows = await conn.fetch(
        QUERIES["owner_aliases"], workspace_id, spellings[0], spellings[1] if len(spellings) > 1 else None
    )
    return tuple(r["alias"] for r in rows) or spellings


@dataclass(frozen=True, slots=True)
class Filters:
    """What to select: the aliases of one identity (None: every identity) and the RSQL texts."""

    aliases: tuple[str, ...] | None = None
    filter: str | None = None
    data: str | None = None


def _fold_case(node: Node) -> Node:
    """Lower-case the values compared with a case-insensitive field (its SQL is lower-cased too)."""
    match node:
        case Comparison() if node.selector in _CASE_INSENSITIVE:
            return replace(node, values=tuple(value.lower() for value in node.values))
        case Comparison():
            return node
        case And():
            return And(tuple(map(_fold_case, node.children)))
        case Or():
            return Or(tuple(map(_fold_case, node.children)))


def _compiled(param: str, text: str, compile_: Callable[[Node], str]) -> str:
    try:
        return compile_(parse(text))
    except RsqlError as exc:
        raise bad(param, str(exc)) from None


def where_clause(filters: Filters, params: list[object]) -> str:
    """The conditions that follow ``e.workspace_id = $1``, each led by AND; values go into ``params``."""
    parts: list[str] = []
    if filters.aliases is not None:
        params.append(list(filters.aliases))
        parts.append(f"e.identity = ANY(${len(params)}::text[])")
    if filters.filter is not None:
        parts.append(
            _compiled("filter", filters.filter, lambda n: compile_filter(_fold_case(n), FIELDS, params))
        )
    if filters.data is not None:
        parts.append(_compiled("data", filters.data, lambda n: compile_data_filter(n, "e.data", params)))
    return "".join(f" AND {part}" for part in parts)


def _query(where: str, order: str, params: list[object], limit: int, offset: int) -> str:
    params.extend((limit, offset))
    return QUERIES["feed_events"].format(
        where=where, order=order, limit=f"${len(params) - 1}", offset=f"${len(params)}"
    )


def page_query(
    workspace_id: str, filters: Filters, *, sort_by: str, descending: bool, page: int, page_size: int
) -> tuple[str, list[object]]:
    """SQL and parameters of one JDS page: ``page_size`` events after skipping ``page`` pages."""
    if sort_by not in FIELDS:
        raise bad("sortBy", f"unknown field {sort_by!r}; use one of {', '.join(FIELDS)}")
    direction = "DESC" if descending else "ASC"
    keys = ["e.time", "e.seq"] if sort_by == "time" else [FIELDS[sort_by][0], "e.time", "e.seq"]
    params: list[object] = [workspace_id]
    where = where_clause(filters, params)
    order = ", ".join(f"{key} {direction}" for key in keys)
    return _query(where, order, params, page_size, page * page_size), params


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the native feed: the (time, seq) of the last event a page held."""

    time: datetime
    seq: int

    def encode(self) -> str:
        raw = json.dumps({"t": self.time.isoformat(), "s": self.seq}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            moment, seq = datetime.fromisoformat(raw["t"]), raw["s"]
        except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
            raise bad("cursor", "not a cursor this feed gave out") from None
        if moment.tzinfo is None or type(seq) is not int or not 0 <= seq < 2**63:
            raise bad("cursor", "not a cursor this feed gave out")
        return cls(moment, seq)


def keyset_query(
    workspace_id: str, filters: Filters, *, cursor: Cursor | None, descending: bool, limit: int
) -> tuple[str, list[object]]:
    """SQL and parameters of the native page after ``cursor``, asking one row more to see if more follow."""
    params: list[object] = [workspace_id]
    where = where_clause(filters, params)
    direction, beyond = ("DESC", "<") if descending else ("ASC", ">")
    if cursor is not None:
        params.extend((cursor.time, cursor.seq))
        where += f" AND (e.time, e.seq) {beyond} (${len(params) - 1}::timestamptz, ${len(params)}::bigint)"
    return _query(where, f"e.time {direction}, e.seq {direction}", params, limit + 1, 0), params


async def fetch_page(
    conn: asyncpg.Connection,
    workspace_id: str,
    filters: Filters,
    *,
    sort_by: str,
    descending: bool,
    page: int,
    page_size: int,
) -> list[asyncpg.Record]:
    sql, params = page_query(
        workspace_id, filters, sort_by=sort_by, descending=descending, page=page, page_size=page_size
    )
    rows: list[asyncpg.Record] = await conn.fetch(sql, *params)
    return rows


async def fetch_after(
    conn: asyncpg.Connection,
    workspace_id: str,
    filters: Filters,
    *,
    cursor: Cursor | None,
    descending: bool,
    limit: int,
) -> tuple[list[asyncpg.Record], Cursor | None]:
    """Up to ``limit`` events after ``cursor``, and the cursor of the next page (None: nothing follows)."""
    sql, params = keyset_query(workspace_id, filters, cursor=cursor, descending=descending, limit=limit)
    rows: list[asyncpg.Record] = await conn.fetch(sql, *params)
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], Cursor(last["time"], last["seq"])


def cloudevent(row: asyncpg.Record) -> dict[str, Any]:
    """A stored event as JDS renders it, with the identity as it was sent."""
    return to_cloudevent(
        id=row["id"],
        source=row["source"],
        type=row["type"],
        time=row["time"],
        identity=row["identity_raw"],
        identity_type=row["identity_type"],
        specversion=row["specversion"],
        previous_identity=row["previous_identity"],
        subject=row["subject"],
        datacontenttype=row["datacontenttype"],
        dataschema=row["dataschema"],
        data=row["data"],
        data_base64=row["data_base64"],
        extensions=row["extensions"],
    )


def native_event(row: asyncpg.Record) -> dict[str, Any]:
    """The native feed's item: the engine's bookkeeping beside the event, so no extension can clash."""
    return {"seq": row["seq"], "receivedAt": format_time(row["received_at"]), "event": cloudevent(row)}
