"""Workspaces and their API keys.

A token reads `je_<key_id>_<secret>` (see tokens.py). Scopes: `events:write` (post events), `read`
(events, persons, profiles), `admin` (templates, actions, persons, keys); `admin` includes the other two.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from journey_engine import tokens
from journey_engine.errors import BadRequest, Conflict, NotFound
from journey_engine.sql import QUERIES
from profiles import catalog
from profiles.templates import default_template

SCOPES = ("events:write", "read", "admin")
TOKEN_PREFIX = "je"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: one key of one workspace."""

    workspace_id: str
    key_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True)
class Workspace:
    workspace_id: str
    name: str
    description: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.workspace_id,
            "name": self.name,
            "description": self.description,
            "createdAt": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class NewKey:
    """A key just made: the only moment its token exists outside the caller's hands."""

    workspace_id: str
    key_id: str
    scopes: tuple[str, ...]
    token: str


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise BadRequest(
            f"scopes: each must be one of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}"
        )
    return tuple(dict.fromkeys(scopes))


async def create_workspace(conn: asyncpg.Connection, name: str, description: str = "") -> Workspace:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise BadRequest("name: must be 1 to 200 characters")
    try:
        async with conn.transaction():
            row = await conn.fetchrow(QUERIES["insert_workspace"], secrets.token_hex(12), name, description)
            await catalog.create(conn, row["workspace_id"], default_template(), by="journey-engine")
    except asyncpg.UniqueViolationError:
        raise Conflict(f"name: a workspace named '{name}' already exists") from None
    return Workspace(**dict(row))


async def list_workspaces(conn: asyncpg.Connection) -> list[Workspace]:
    return [Workspace(**dict(row)) for row in await conn.fetch(QUERIES["list_workspaces"])]


async def find_workspace(conn: asyncpg.Connection, id_or_name: str) -> Workspace:
    row = await conn.fetchrow(QUERIES["find_workspace"], id_or_name)
    if row is None:
        raise NotFound(f"workspace '{id_or_name}' does not exist")
    return Workspace(**dict(row))


async def create_key(
    conn: asyncpg.Connection, workspace_id: str, scopes: list[str] | tuple[str, ...], name: str = ""
) -> NewKey:
    scopes = check_scopes(scopes)
    made = tokens.mint(TOKEN_PREFIX)
    await conn.execute(
        QUERIES["insert_api_key"], workspace_id, made.token_id, made.secret_sha256, name, list(scopes)
    )
    return NewKey(workspace_id, made.token_id, scopes, made.token)


async def revoke_key(conn: asyncpg.Connection, key_id: str, workspace_id: str | None = None) -> str:
    """Revoke a key (of `workspace_id`, when given); returns its workspace id."""
    row = await conn.fetchrow(QUERIES["revoke_api_key"], key_id, workspace_id)
    if row is None:
        raise NotFound(f"key '{key_id}' does not exist or is already revoked")
    owner: str = row["workspace_id"]
    return owner


async def list_keys(conn: asyncpg.Connection, workspace_id: str) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(QUERIES["list_api_keys"], workspace_id)]


class KeyVerifier:
    """Checks bearer tokens, remembering good ones for `ttl` seconds to spare a query per request.

    A revoked key therefore stops working within `ttl` seconds in every engine process.
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[bytes, tuple[Principal, float]] = {}

    async def verify(self, pool: asyncpg.Pool, token: str) -> Principal | None:
        parsed = tokens.parse(TOKEN_PREFIX, token)
        if parsed is None:
            return None
        key_id, secret = parsed
        cache_key = tokens.digest(token)
        now = time.monotonic()
        hit = self._cache.get(cache_key)
        if hit is not None and hit[1] > now:
            return hit[0]
        row = await pool.fetchrow(QUERIES["get_api_key"], key_id)
        if row is None or not tokens.matches(row["secret_sha256"], secret):
            self._cache.pop(cache_key, None)
            return None
        principal = Principal(row["workspace_id"], key_id, frozenset(row["scopes"]))
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[cache_key] = (principal, now + self._ttl)
        return principal

    def forget_all(self) -> None:
        """Drop every remembered key, so a revocation in this process takes effect at once."""
        self._cache.clear()


async def bootstrap(conn: asyncpg.Connection) -> NewKey | None:
    """On a database with no workspace, create `default` and an admin key; else do nothing.

    Safe when several engines start together: the first one to take the lock creates them.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _BOOTSTRAP_LOCK)
        if await conn.fetchval("SELECT EXISTS (SELECT FROM workspaces)"):
            return None
        workspace = await create_workspace(conn, "default", "Created at first start")
        return await create_key(conn, workspace.workspace_id, SCOPES, "first admin key")


_BOOTSTRAP_LOCK = 0x4A45_0002
