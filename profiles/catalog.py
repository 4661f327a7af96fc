"""Profile view templates in the database: create, read, replace, delete.

Template names are unique in a workspace, and wherever a template id is expected a name works too.
Creating or replacing a template drops the values computed under its old definition and marks every
person with an event of its types for computation, which the sweeper carries out.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from profiles.store import QUERIES, StoredTemplate, parse_template
from profiles.templates import TemplateSpec


class TemplateNameTaken(Exception):
    """Another template of the workspace has this name."""


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    template: StoredTemplate
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    updated_by: str | None

    @property
    def template_id(self) -> str:
        return self.template.template_id

    @property
    def spec(self) -> TemplateSpec:
        return self.template.spec


def new_template_id() -> str:
    return (int(time.time()).to_bytes(4, "big") + os.urandom(8)).hex()


def record(row: asyncpg.Record) -> TemplateRecord:
    return TemplateRecord(
        parse_template(row), row["created_at"], row["created_by"], row["updated_at"], row["updated_by"]
    )


def _columns(spec: TemplateSpec) -> tuple[dict[str, Any], list[str]]:
    """The stored spec (for a jsonb parameter: the pool's codec encodes it) and its event types."""
    return spec.model_dump(mode="json"), sorted({a.event for a in spec.attributes})


async def create(
    conn: asyncpg.Connection, workspace_id: str, spec: TemplateSpec, by: str | None
) -> TemplateRecord:
    stored, types = _columns(spec)
    template_id = new_template_id()
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                QUERIES["insert_template"], workspace_id, template_id, spec.name, stored, types, by
            )
    except asyncpg.UniqueViolationError:
        raise TemplateNameTaken(spec.name) from None
    await conn.execute(QUERIES["mark_template_due"], workspace_id, template_id, types, row["updated_at"])
    return record(row)


async def replace(
    conn: asyncpg.Connection, workspace_id: str, template_id: str, spec: TemplateSpec, by: str | None
) -> TemplateRecord | None:
    """Replace the template's definition (a full replace); None when it does not exist."""
    stored, types = _columns(spec)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                QUERIES["update_template"], workspace_id, template_id, spec.name, stored, types, by
            )
    except asyncpg.UniqueViolationError:
        raise TemplateNameTaken(spec.name) from None
    if row is None:
        return None
    await conn.execute(QUERIES["clear_template_values"], workspace_id, template_id)
    await conn.execute(QUERIES["mark_template_due"], workspace_id, template_id, types, row["updated_at"])
    return record(row)


async def delete(conn: asyncpg.Connection, workspace_id: str, template_id: str) -> bool:
    """Delete the template and its values (call inside a transaction). Its lock first: that waits for the
    writers holding the template (`store.templates_for`), so the values they wrote are deleted too."""
    await conn.execute(QUERIES["lock_template_values"], workspace_id, template_id)
    if await conn.fetchval(QUERIES["delete_template"], workspace_id, template_id) is None:
        return False
    await conn.execute(QUERIES["clear_template_values"], workspace_id, template_id)
    return True


async def find(conn: asyncpg.Connection, workspace_id: str, id_or_name: str) -> TemplateRecord | None:
    row = await conn.fetchrow(QUERIES["find_template"], workspace_id, id_or_name)
    return None if row is None else record(row)


async def find_by_name(conn: asyncpg.Connection, workspace_id: str, name: str) -> TemplateRecord | None:
    row = await conn.fetchrow(QUERIES["find_template_by_name"], workspace_id, name)
    return None if row is None else record(row)


async def list_page(
    conn: asyncpg.Connection,
    workspace_id: str,
    where: str,
    order: str,
    limit: int,
    offset: int,
    params: list[Any],
) -> list[TemplateRecord]:
    """A page of templates; `where` (starting with " AND ") and `order` are trusted SQL built by the caller
    from fixed column names and the RSQL compiler, whose values are in `params` ($2 on)."""
    sql = QUERIES["list_templates"].format(where=where, order=order, limit=int(limit), offset=int(offset))
    return [record(r) for r in await conn.fetch(sql, workspace_id, *params)]
