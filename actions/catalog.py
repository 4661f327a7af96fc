"""Journey actions in the database: create, read, replace, delete; signing secrets; trigger pause.

An action is saved only when its rules fit its template (each leaf names an attribute) and its
webhook bodies name only known placeholders. Each action gets a Standard Webhooks secret at creation;
`rotate_secret` adds a new one while the previous keeps signing, so receivers switch without a gap.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from actions.firing import QUERIES
from actions.models import ActionSpec, rule_problems
from actions.render import unknown_placeholders
from actions.signing import generate_secret
from profiles.templates import TemplateSpec


class ActionNameTaken(Exception):
    """The template already has an action of this name."""


class ActionInvalid(Exception):
    """The action does not fit its template: `problems` are (field, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ActionRecord:
    action_id: str
    template_id: str
    spec: ActionSpec
    secrets: tuple[str, ...]
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    updated_by: str | None


def new_action_id() -> str:
    return (int(time.time()).to_bytes(4, "big") + os.urandom(8)).hex()


def _record(row: asyncpg.Record) -> ActionRecord:
    return ActionRecord(
        row["action_id"], row["template_id"], ActionSpec.model_validate(row["spec"]), tuple(row["secrets"]),
        row["created_at"], row["created_by"], row["updated_at"], row["updated_by"],
    )  # fmt: skip


def check(spec: ActionSpec, template: TemplateSpec) -> None:
    problems = rule_problems(spec, template)
    names = [a.displayName for a in template.attributes]
    for index, trigger in enumerate(spec.actionTriggers):
        for name in unknown_placeholders(trigger.attributes.requestbody, names):
            problems.append(
                (f"actionTriggers[{index}].attributes.requestbody", f"unknown placeholder {{{{{name}}}}}")
            )
    if problems:
        raise ActionInvalid(problems)


async def create(
    conn: asyncpg.Connection, workspace_id: str, template_id: str, template: TemplateSpec, spec: ActionSpec,
    by: str | None,
) -> ActionRecord:  # fmt: skip
    check(spec, template)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                QUERIES["insert_action"], workspace_id, new_action_id(), template_id, spec.name,
                spec.isActive, spec.model_dump(mode="json"), [generate_secret()], by,
            )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise ActionNameTaken(spec.name) from None
    return _record(row)


async def replace(
    conn: asyncpg.Connection, workspace_id: str, template_id: str, action_id: str, template: TemplateSpec,
    spec: ActionSpec, by: str | None,
) -> ActionRecord | None:  # fmt: skip
    check(spec, template)
    old = await get(conn, workspace_id, action_id)
    try:
        async with conn.transaction():
            if old is not None:
                await conn.execute(
                    QUERIES["reset_trigger_states"], workspace_id, action_id, _moved(old.spec, spec)
                )
            row = await conn.fetchrow(
                QUERIES["update_action"], workspace_id, template_id, action_id, spec.name, spec.isActive,
                spec.model_dump(mode="json"), by,
            )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise ActionNameTaken(spec.name) from None
    return None if row is None else _record(row)


def _moved(old: ActionSpec, new: ActionSpec) -> list[int]:
    """Trigger indexes whose destination changed or that are gone."""
    urls = [t.webhookURL for t in new.actionTriggers]
    return [i for i, t in enumerate(old.actionTriggers) if i >= len(urls) or urls[i] != t.webhookURL]


async def delete(conn: asyncpg.Connection, workspace_id: str, template_id: str, action_id: str) -> bool:
    return await conn.fetchval(QUERIES["delete_action"], workspace_id, template_id, action_id) is not None


async def get(conn: asyncpg.Connection, workspace_id: str, action_id: str) -> ActionRecord | None:
    row = await conn.fetchrow(QUERIES["get_action"], workspace_id, action_id)
    return None if row is None else _record(row)


async def get_by_name(
    conn: asyncpg.Connection, workspace_id: str, template_id: str, name: str
) -> ActionRecord | None:
    row = await conn.fetchrow(QUERIES["get_action_by_name"], workspace_id, template_id, name)
    return None if row is None else _record(row)


async def list_actions(
    conn: asyncpg.Connection, workspace_id: str, template_id: str | None = None
) -> list[ActionRecord]:
    return [_record(r) for r in await conn.fetch(QUERIES["list_actions"], workspace_id, template_id)]


async def rotate_secret(
    conn: asyncpg.Connection, workspace_id: str, action_id: str
) -> tuple[str, ...] | None:
    """Add a new signing secret (returned first); the previous one still signs until the next rotation."""
    secrets = await conn.fetchval(QUERIES["rotate_secret"], workspace_id, action_id, generate_secret())
    return None if secrets is None else tuple(secrets)


async def set_paused(
    conn: asyncpg.Connection, workspace_id: str, action_id: str, trigger_index: int, paused: bool
) -> None:
    """Pause a trigger (its pending deliveries wait) or resume it (they are due at once)."""
    async with conn.transaction():
        await conn.execute(QUERIES["set_trigger_paused"], workspace_id, action_id, trigger_index, paused)
        query = "pause_pending" if paused else "resume_paused"
        await conn.execute(QUERIES[query], workspace_id, action_id, trigger_index)
