"""Firing: evaluating a template's actions on changed profile values, inside the change's transaction.

When a person's values under a template are recomputed (a new event, a value aging out of its window,
a merge or an unmerge), each active action of the template is evaluated on the new values:

- a new event: the action is evaluated whatever the values did (JDS: after each event);
- time decay, merges: only when the values changed.

It fires when its rules hold (with `fire: on_enter`, only if they did not hold on the values before) and
the person is outside the action's cooldown (`cooldownPeriodInMinutes` since its last firing for that
person). A firing writes one `firings` row and one outbox `deliveries` row per trigger, with the body
rendered now; the commit of the change commits them, so a crash loses or doubles none. The person is
locked by the profile computation, so two engines never fire one change twice.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal

import asyncpg

from actions.models import ActionSpec, holds
from actions.render import render
from profiles.compute import ProfileValues
from profiles.sqlfiles import load_queries
from profiles.store import Change, VersionCache

QUERIES = load_queries("actions")
Cause = Literal["event", "decay", "identity"]


@dataclass(frozen=True, slots=True)
class Fired:
    firing_id: int
    action_id: str
    person_id: str
    deliveries: int


@dataclass(frozen=True, slots=True)
class _Action:
    action_id: str
    template_id: str
    spec: ActionSpec
    paused: frozenset[int]
    """Indexes of the triggers paused: their deliveries are written paused."""
    disabled: frozenset[int]
    """Indexes of the triggers disabled (410 Gone): they get no delivery."""


def _same(before: ProfileValues | None, after: ProfileValues) -> bool:
    if before is None:
        return False
    return [a.result for a in before.attributes] == [a.result for a in after.attributes]


Actions = Mapping[str, Sequence["_Action"]]
"""A workspace's active actions by template id."""


async def active_actions(conn: asyncpg.Connection, workspace_id: str, template_ids: Sequence[str]) -> Actions:
    """The active actions of these templates (of one workspace)."""
    actions: dict[str, list[_Action]] = defaultdict(list)
    for r in await conn.fetch(QUERIES["active_actions"], workspace_id, sorted(template_ids)):
        key = (workspace_id, r["action_id"], r["updated_at"])
        spec = _PARSED.get(key, partial(ActionSpec.model_validate, r["spec"]))
        states = list(zip(r["trigger_indexes"], r["trigger_paused"], r["trigger_disabled"], strict=True))
        actions[r["template_id"]].append(
            _Action(
                r["action_id"], r["template_id"], spec,
                paused=frozenset(i for i, paused, _ in states if paused),
                disabled=frozenset(i for i, _, disabled in states if disabled),
            )
        )  # fmt: skip
    return actions


_PARSED: VersionCache[tuple[str, str, datetime], ActionSpec] = VersionCache()
"""Validated actions by (workspace, id, version)."""


def need_values_before(actions: Actions) -> bool:
    """Whether evaluating these actions after an event needs the values before it (`fire: on_enter`)."""
    return any(a.spec.fire == "on_enter" for group in actions.values() for a in group)


async def fire(
    conn: asyncpg.Connection,
    changes: Sequence[Change],
    cause: Cause,
    now: datetime,
    cause_events: Mapping[str, int] | None = None,
    actions: Actions | None = None,
) -> list[Fired]:
    """Evaluate the actions of the changed (person, template) values; record what fires.

    `cause_events` maps a person to the newest event of this change (for `{{event.*}}` placeholders);
    `actions`, when the caller has read them already, the active actions (all changes in one workspace).
    """
    fired: list[Fired] = []
    by_workspace: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        if cause == "event" or not _same(change.before, change.after):
            by_workspace[change.workspace_id].append(change)
    if actions is not None and len(by_workspace) > 1:
        raise ValueError("actions given for changes of several workspaces")
    for workspace_id, relevant in by_workspace.items():
        if actions is None:
            found = await active_actions(conn, workspace_id, [c.template.template_id for c in relevant])
        else:
            found = actions
        if found:
            fired.extend(await _fire_in(conn, workspace_id, relevant, found, cause, now, cause_events or {}))
    return fired


async def _fire_in(
    conn: asyncpg.Connection,
    workspace_id: str,
    changes: Sequence[Change],
    actions: Actions,
    cause: Cause,
    now: datetime,
    cause_events: Mapping[str, int],
) -> list[Fired]:
    candidates = [
        (change, action)
        for change in changes
        for action in actions.get(change.template.template_id, [])
        if holds(action.spec, change.template.spec, change.after)
        and not (action.spec.fire == "on_enter" and holds(action.spec, change.template.spec, change.before))
    ]
    if not candidates:
        return []
    last = {
        (r["action_id"], r["person_id"]): r["fired_at"]
        for r in await conn.fetch(
            QUERIES["last_firings"],
            workspace_id,
            [a.action_id for _, a in candidates],
            [c.person_id for c, _ in candidates],
        )
    }
    firing = [
        (change, action)
        for change, action in candidates
        if (previous := last.get((action.action_id, change.person_id))) is None
        or previous + timedelta(minutes=action.spec.cooldownPeriodInMinutes) <= now
    ]
    if not firing:
        return []
    contexts = await _contexts(conn, workspace_id, firing, cause_events)
    event_seqs = [cause_events.get(c.person_id) if cause == "event" else None for c, _ in firing]
    ids = {
        (r["action_id"], r["person_id"]): r["firing_id"]
        for r in await conn.fetch(
            QUERIES["insert_firings"], workspace_id, now, cause,
            [a.action_id for _, a in firing], [c.person_id for c, _ in firing],
            [a.template_id for _, a in firing], [a.spec.cooldownPeriodInMinutes for _, a in firing],
            event_seqs,
        )
    }  # fmt: skip
    out = []
    columns: list[list[Any]] = [[] for _ in range(9)]
    for change, action in firing:
        firing_id = ids[(action.action_id, change.person_id)]
        context = {
            **contexts[change.person_id],
            **_values_context(change),
            "action.id": action.action_id,
            "action.name": action.spec.name,
            "firing.id": str(firing_id),
            "firing.time": now.isoformat(),
        }
        deliveries = 0
        for index, trigger in enumerate(action.spec.actionTriggers):
            if index in action.disabled:
                continue
            status = "paused" if index in action.paused else "pending"
            body = render(trigger.attributes.requestbody, context)
            row = (
                f"msg_{uuid.uuid4().hex}", firing_id, action.action_id, index, change.person_id,
                trigger.method, trigger.webhookURL, body, status,
            )  # fmt: skip
            for column, value in zip(columns, row, strict=True):
                column.append(value)
            deliveries += 1
        out.append(Fired(firing_id, action.action_id, change.person_id, deliveries))
    if columns[0]:
        await conn.execute(QUERIES["insert_deliveries"], workspace_id, now, *columns)
    return out


async def _contexts(
    conn: asyncpg.Connection,
    workspace_id: str,
    firing: Sequence[tuple[Change, _Action]],
    cause_events: Mapping[str, int],
) -> dict[str, dict[str, Any]]:
    persons = sorted({c.person_id for c, _ in firing})
    contexts: dict[str, dict[str, Any]] = {p: {"person.id": p} for p in persons}
    for r in await conn.fetch(QUERIES["render_aliases"], workspace_id, persons):
        context = contexts[r["person_id"]]
        context.setdefault(f"aliases.{r['alias_type']}", r["alias"])
        context.setdefault("identity", r["alias"])
    seqs = sorted({cause_events[p] for p in persons if p in cause_events})
    if seqs:
        events = {r["seq"]: r for r in await conn.fetch(QUERIES["render_events"], workspace_id, seqs)}
        for person in persons:
            event = events.get(cause_events.get(person, -1))
            if event is not None:
                contexts[person].update(
                    {
                        "identity": event["identity_raw"],
                        "event.id": event["id"],
                        "event.type": event["type"],
                        "event.source": event["source"],
                        "event.time": event["time"].isoformat(),
                        "event.data": event["data"],
                    }
                )
    return contexts


def _values_context(change: Change) -> dict[str, Any]:
    context: dict[str, Any] = {
        "template.id": change.template.template_id,
        "template.name": change.template.spec.name,
    }
    for attribute, value in zip(change.template.spec.attributes, change.after.attributes, strict=True):
        context[f"values.{attribute.displayName}"] = value.jds_result
    return context
