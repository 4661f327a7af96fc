"""Rich Customer History: the seed service of an agent-desktop history widget, kept in the event store.

The widget's service (anchors README, "The Rich Customer History service") keeps per customer a history of
level-1 entries (an interaction: a call, a chat) and level-2 entries under them (its steps). Here every
entry is an event, stored through the ingest batcher like any other, so it is in the event feed and
feeds profiles:

- ``type`` is ``history.<channel>`` (``history.voice`` or ``history.digital``), ``source`` the body's
  ``source`` (``ivr``, ``agent``, ``sms``...), the identity the ``username`` as a ``customerId``, ``time``
  the time it was received;
- ``data`` holds ``username``, ``level``, ``parent``, ``channel``, ``source``, ``note`` and ``link``;
- ``dataschema`` is :data:`DATASCHEMA`. That is what makes an event a history entry: the history lists
  exactly the person's events that carry it, and a reset erases exactly those.

An entry's id is its event's ``seq`` as a string (the native feed shows it as ``seq``); a level-2 entry's
``parent`` must be the id of a level-1 entry of the same person in the same workspace.

The widget reaches the service through a per-workspace history token, ``jh_<token_id>_<secret>``, carried
in its base URL; like API keys, only the SHA-256 of the secret is stored and it is compared in constant time.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from journey_engine import tokens
from journey_engine.cloudevents import ParsedEvent, format_time, parse_event
from journey_engine.errors import BadRequest, Conflict, NotFound, Problem
from journey_engine.identities import IdentityError, IdentityType, normalise
from journey_engine.identity import aliases_of, person_of
from journey_engine.pipeline import on_persons_changed
from journey_engine.sql import QUERIES

DATASCHEMA = "urn:journey-engine:history:1"
TYPE_PREFIX = "history."
MAX_ENTRIES = 10_000  # the newest entries GET /history returns
TOKEN_PREFIX = "jh"
_ENTRY_ID = re.compile(r"[0-9]{1,18}")


# --- tokens ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewToken:
    """A history token just made: the only moment it exists outside the caller's hands."""

    workspace_id: str
    token_id: str
    name: str
    token: str
    created_at: datetime

    @property
    def base_path(self) -> str:
        """The widget's SERVICE_HOME, after the engine's address."""
        return f"/rch/{self.token}"


async def create_token(conn: asyncpg.Connection, workspace_id: str, name: str = "") -> NewToken:
    made = tokens.mint(TOKEN_PREFIX)
    row = await conn.fetchrow(
        QUERIES["insert_history_token"], workspace_id, made.token_id, made.secret_sha256, name
    )
    return NewToken(workspace_id, made.token_id, name, made.token, row["created_at"])


async def list_tokens(conn: asyncpg.Connection, workspace_id: str) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(QUERIES["list_history_tokens"], workspace_id)]


async def revoke_token(conn: asyncpg.Connection, token_id: str, workspace_id: str | None = None) -> str:
    """Revoke a history token (of `workspace_id`, when given); returns its workspace id."""
    row = await conn.fetchrow(QUERIES["revoke_history_token"], token_id, workspace_id)
    if row is None:
        raise NotFound(f"history token '{token_id}' does not exist or is already revoked")
    owner: str = row["workspace_id"]
    return owner


async def verify_token(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> tuple[str, str] | None:
    """(workspace id, token id) of a live token; None for anything else. Checked on every request, so
    a revocation takes effect at once in every engine process."""
    parsed = tokens.parse(TOKEN_PREFIX, token)
    if parsed is None:
        return None
    token_id, secret = parsed
    row = await conn.fetchrow(QUERIES["get_history_token"], token_id)
    if row is None or not tokens.matches(row["secret_sha256"], secret):
        return None
    return row["workspace_id"], token_id


# --- entries -----------------------------------------------------------------------------------------


class Channel(StrEnum):
    VOICE = "voice"
    DIGITAL = "digital"


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class EntryBody(BaseModel):
    """`POST /history`'s body. Members it does not know are ignored; numbers are taken as text."""

    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)

    username: Annotated[Text, Field(max_length=512)]
    source: Annotated[Text, Field(max_length=2048)]
    channel: Channel
    level: int = Field(default=1, ge=1, le=2)
    parent: str | None = None
    note: str | None = None
    link: str | None = None

    @field_validator("channel", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


def bad(field: str, reason: str) -> BadRequest:
    return BadRequest(f"{field}: {reason}", [Problem(field, reason)])


def username_alias(username: str) -> str:
    """A username as its customerId alias is stored."""
    return normalise(IdentityType.CUSTOMER_ID, username, field="username")


def entry_event(entry: EntryBody, region: str) -> ParsedEvent:
    """The event that stores an entry. A level-1 entry has no parent (whatever placeholder was sent);
    a level-2 entry must name one (that it exists is :func:`check_parent`'s to say)."""
    username = username_alias(entry.username)
    parent = None
    if entry.level == 2:
        parent = (entry.parent or "").strip()
        if not parent:
            raise bad("parent", "required for a level-2 entry: the id of its level-1 entry")
    data = {
        "username": username, "level": entry.level, "parent": parent, "channel": str(entry.channel),
        "source": entry.source, "note": entry.note, "link": entry.link,
    }  # fmt: skip
    event = {
        "id": str(uuid.uuid4()), "specversion": "1.0", "type": TYPE_PREFIX + entry.channel,
        "source": entry.source, "identity": username, "identitytype": str(IdentityType.CUSTOMER_ID),
        "datacontenttype": "application/json", "dataschema": DATASCHEMA, "data": data,
    }  # fmt: skip
    return parse_event(event, default_region=region)


async def check_parent(conn: asyncpg.Connection, workspace_id: str, parent: str, username: str) -> None:
    """A level-2 entry's parent must be a level-1 entry of the same person, in this workspace."""
    row = None
    if _ENTRY_ID.fullmatch(parent):
        row = await conn.fetchrow(QUERIES["history_parent"], workspace_id, int(parent), DATASCHEMA, username)
    if row is None:
        raise bad("parent", f"no history entry has the id {parent[:40]!r}")
    if row["level"] != "1":
        raise bad("parent", f"entry {parent!r} is not a level-1 entry")
    if row["user_person"] is None or row["parent_person"] != row["user_person"]:
        raise bad("parent", f"entry {parent!r} belongs to another user")


async def username_of(
    conn: asyncpg.Connection, workspace_id: str, *, ani: str | None, email: str | None, region: str
) -> str:
    """The username (customerId alias; the oldest, if several) of the person owning a phone number or an
    email address, normalised as at ingest. 404 when nobody does, or that person has no customerId."""
    if (ani is None) == (email is None):
        raise bad("ani", "give either ani (a phone number) or email")
    kind, value, what = (
        (IdentityType.PHONE, ani, "phone number") if ani is not None else (IdentityType.EMAIL, email, "email")
    )
    try:
        alias = normalise(kind, value, region)
    except IdentityError:
        raise NotFound(f"No customer has this {what}") from None
    person = await person_of(conn, workspace_id, [alias])
    if person is None:
        raise NotFound(f"No customer has this {what}")
    for row in await aliases_of(conn, workspace_id, person):
        if row["alias_type"] == IdentityType.CUSTOMER_ID:
            username: str = row["alias"]
            return username
    raise NotFound(f"The customer with this {what} has no username (customerId)")


async def _person(conn: asyncpg.Connection, workspace_id: str, username: str) -> str:
    person = await person_of(conn, workspace_id, [username_alias(username)])
    if person is None:
        raise NotFound("No customer has this username")
    return person


def _entry(row: asyncpg.Record) -> dict[str, Any]:
    data = row["data"] if isinstance(row["data"], dict) else {}
    return {
        "id": str(row["seq"]), "username": data.get("username", row["identity_raw"]),
        "parent": data.get("parent"), "level": data.get("level", 1), "channel": data.get("channel"),
        "source": row["source"], "note": data.get("note"), "link": data.get("link"),
        "time": format_time(row["time"]),
    }  # fmt: skip


def in_tree_order(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries (oldest first) with each one's children right after it, oldest first. An entry whose
    parent is not among them (erased meanwhile) stands at its own time."""
    ids = {e["id"] for e in entries}
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    roots = []
    for e in entries:
        parent = e["parent"]
        # A parent is older than its child: this also keeps any hand-made cycle out.
        if isinstance(parent, str) and parent in ids and int(parent) < int(e["id"]):
            children[parent].append(e)
        else:
            roots.append(e)
    out: list[dict[str, Any]] = []
    stack = list(reversed(roots))
    while stack:
        e = stack.pop()
        out.append(e)
        stack.extend(reversed(children[e["id"]]))
    return out


async def read(conn: asyncpg.Connection, workspace_id: str, username: str) -> list[dict[str, Any]]:
    """The person's history entries (the newest :data:`MAX_ENTRIES`), oldest first, children after
    their parent. 404 for a username no person has."""
    person = await _person(conn, workspace_id, username)
    aliases = [r["alias"] for r in await aliases_of(conn, workspace_id, person)]
    rows = await conn.fetch(QUERIES["history_entries"], workspace_id, aliases, DATASCHEMA, MAX_ENTRIES)
    return in_tree_order([_entry(row) for row in reversed(rows)])


async def erase(conn: asyncpg.Connection, workspace_id: str, username: str) -> int:
    """Erase the person's history entries (and nothing else); recompute its profile values. Returns the
    number erased. The person's aliases are locked, so no merge moves one meanwhile."""
    alias = username_alias(username)
    async with conn.transaction():
        for _ in range(3):
            person = await _person(conn, workspace_id, username)
            rows = await conn.fetch(QUERIES["lock_history_aliases"], workspace_id, person)
            locked = [r["alias"] for r in rows]
            if alias in locked:
                break
        else:
            raise Conflict("username: the customer changed concurrently; retry")
        status: str = await conn.execute(QUERIES["erase_history_entries"], workspace_id, locked, DATASCHEMA)
        erased = int(status.rsplit(" ", 1)[-1])
        if erased:
            await on_persons_changed(conn, workspace_id, [person])
    return erased
