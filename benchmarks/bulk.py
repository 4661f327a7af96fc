"""What the profile and action benchmarks share beyond harness.py: bulk loading of persons, aliases and
events straight into the tables, keys of other scopes, templates and actions made with the engine's
own catalog functions.

The bulk load is one `INSERT ... SELECT FROM generate_series` per table, run inside PostgreSQL (the
load phase is not what is measured, and server-side generation of 1M rows takes seconds where a COPY
of Python-built rows takes a minute here). The rows are the ones the engine writes for the same
events: the identity normalised (emails are lower case already), `identity_type` email, the
`content_hash` unique per event; person `i` is `f"{i:024x}"` with the alias `user{i}@<domain>`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from actions import catalog as actions_catalog
from actions.models import ActionSpec
from journey_engine import workspaces
from journey_engine.db import connect
from profiles import catalog
from profiles.catalog import TemplateRecord
from profiles.templates import TemplateSpec

DOMAIN = "bench.example"


def person_id(i: int) -> str:
    return f"{i:024x}"


def email(i: int, domain: str = DOMAIN) -> str:
    return f"user{i}@{domain}"


async def load_persons(
    conn: asyncpg.Connection, workspace_id: str, count: int, domain: str = DOMAIN
) -> float:
    """Persons 0..count-1, each with one email alias; seconds taken."""
    started = time.perf_counter()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO persons (workspace_id, person_id)"
            " SELECT $1, lpad(to_hex(i), 24, '0') FROM generate_series(0, $2 - 1) AS i",
            workspace_id, count,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO aliases (workspace_id, alias, alias_type, person_id)"
            " SELECT $1, 'user' || i || '@' || $3, 'email', lpad(to_hex(i), 24, '0')"
            " FROM generate_series(0, $2 - 1) AS i",
            workspace_id, count, domain,
        )  # fmt: skip
    return time.perf_counter() - started


# Event n belongs to person n % persons; its time is given by an SQL expression of n (and $4, $5).
_EVENTS = """
INSERT INTO events (workspace_id, id, source, specversion, type, time, identity, identity_raw, identity_type,
                    datacontenttype, data, content_hash)
SELECT $1, $6 || n, 'bench/bulk', '1.0', $3, {time},
       'user' || (n % $7) || '@' || $8, 'user' || (n % $7) || '@' || $8, 'email', 'application/json',
       jsonb_build_object(
           'taskId', $6 || n,
           'channelType', (ARRAY['telephony', 'chat', 'email'])[1 + n % 3],
           'queueId', 'queue-' || (n % 7),
           'durationSeconds', 30 + (n * 7919) % 600,
           'origin', '+12263762555'),
       sha256(convert_to($6 || n, 'UTF8'))
FROM generate_series($2::bigint, $2::bigint + $9 - 1) AS n
"""


async def load_events_spread(
    conn: asyncpg.Connection, workspace_id: str, count: int, persons: int, event_type: str,
    newest: datetime, spread: timedelta, *, first: int = 0, domain: str = DOMAIN, prefix: str = "bulk-",
) -> float:  # fmt: skip
    """`count` events round-robin over the persons, at pseudo-random times in (newest - spread, newest];
    seconds taken."""
    sql = _EVENTS.format(time="$4::timestamptz - ((n * 2654435761) % 1000000) / 1e6 * $5::interval")
    started = time.perf_counter()
    await conn.execute(sql, workspace_id, first, event_type, newest, spread, prefix, persons, domain, count)
    return time.perf_counter() - started


async def load_events_at(
    conn: asyncpg.Connection, workspace_id: str, persons: int, event_type: str, times: list[datetime],
    *, domain: str = DOMAIN, prefix: str = "at-",
) -> float:  # fmt: skip
    """One event per person, person i's at `times[i]`; seconds taken."""
    sql = _EVENTS.format(time="($4::timestamptz[])[n + 1] + $5::interval")
    started = time.perf_counter()
    await conn.execute(
        sql, workspace_id, 0, event_type, times, timedelta(0), prefix, persons, domain, persons
    )
    return time.perf_counter() - started


async def add_key(dsn: str, workspace_id: str, scopes: list[str]) -> str:
    """A new key of the workspace with these scopes: its token."""
    conn = await connect(dsn)
    try:
        key = await workspaces.create_key(conn, workspace_id, scopes, "benchmark")
    finally:
        await conn.close()
    return key.token


async def create_template(dsn: str, workspace_id: str, spec: dict[str, Any]) -> TemplateRecord:
    """`profiles.catalog.create`: marks every person with an event of its types due for the sweeper."""
    conn = await connect(dsn)
    try:
        return await catalog.create(conn, workspace_id, TemplateSpec.model_validate(spec), "benchmark")
    finally:
        await conn.close()


async def create_action(
    dsn: str, workspace_id: str, template: TemplateRecord, spec: dict[str, Any]
) -> actions_catalog.ActionRecord:
    conn = await connect(dsn)
    try:
        return await actions_catalog.create(
            conn,
            workspace_id,
            template.template_id,
            template.spec,
            ActionSpec.model_validate(spec),
            "benchmark",
        )
    finally:
        await conn.close()


async def delete_default_template(dsn: str, workspace_id: str) -> bool:
    """Delete `journey-default-template` (on `task:new`); whether it existed."""
    conn = await connect(dsn)
    try:
        found = await catalog.find_by_name(conn, workspace_id, "journey-default-template")
        return found is not None and await catalog.delete(conn, workspace_id, found.template_id)
    finally:
        await conn.close()


def reuse_port_env(processes: int) -> dict[str, str]:
    """Environment for running `harness.engine_command(port, 1)` `processes` times on one port: since
    `serve` has JOURNEY_REUSE_PORT (commit 10d2f50), harness's multi-process stand-in, which passes
    reuse_port itself, fails with "got multiple values for keyword argument 'reuse_port'"."""
    return {"JOURNEY_REUSE_PORT": "true"} if processes > 1 else {}


def attribute(
    display: str, event: str, field: str, type_: str, mode: str, period: int, unit: str, limit: int = 0
) -> dict[str, Any]:
    """A template attribute in the JDS shape."""
    return {
        "version": "0.1", "event": event, "metaDataType": type_, "metaData": field, "limit": limit,
        "displayName": display, "lookBackDurationType": unit, "lookBackPeriod": period,
        "aggregationMode": mode, "verbose": False,
    }  # fmt: skip
