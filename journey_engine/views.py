"""Profile views: one person's values under one template, as JDS shows them and as the native API does.

A view is read at the moment of the request: the stored values when they are still exact, else computed
from the events (:func:`profiles.store.compute_now`), so a value whose event just left its window reads
right even before the sweeper has run, and an event acknowledged with 202 is already counted.

Who: a person id (one merged away resolves to the person that holds its aliases now), or an untyped
identity, tried in every spelling it may be stored under, as the feed's ``identity`` is. A person with no
events under the template still has a view (Count 0, no Value); an unknown person or template is 404.

JDS shape (``ProgressiveProfileViewModel``): attributes in template order, each with its spec in JDS shape
(``queryTemplate``), ``result`` as a string (JSON null when there is no value), ``error`` (values that did
not cast) and ``journeyEvents``: the aggregated events, each a JSON string of the event as the feed
renders it, when the attribute is ``verbose`` (an empty list otherwise). ``systemMetdata`` (sic) carries
the action trigger history. The native shape has typed values and their freshness.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg

from journey_engine.cloudevents import format_time
from journey_engine.errors import NotFound
from journey_engine.feed import bad, cloudevent
from journey_engine.identities import IdentityError, previous_identity_candidates
from journey_engine.identity import current_person, person_of
from journey_engine.sql import QUERIES
from profiles import catalog, store
from profiles.aggregation import Result
from profiles.catalog import TemplateRecord
from profiles.compute import AttributeValue, ProfileValues

PERSON_ID_LENGTH = 24
_HEX = frozenset("0123456789abcdef")
SNAPSHOT: Final[dict[str, Any]] = {"isolation": "repeatable_read", "readonly": True}
"""How a view reads: template, stored values and events from one snapshot."""


@dataclass(frozen=True, slots=True)
class View:
    person_id: str
    template: TemplateRecord
    values: ProfileValues


async def find_template(
    conn: asyncpg.Connection, workspace_id: str, key: str, *, by_name: bool = False
) -> TemplateRecord:
    """The template named by `key`: its id or its name (only its name when `by_name`); else 404."""
    found = await (catalog.find_by_name if by_name else catalog.find)(conn, workspace_id, key)
    if found is None:
        raise NotFound(f"template '{key[:128]}' not found")
    return found


async def person_by_id(conn: asyncpg.Connection, workspace_id: str, person_id: str) -> str:
    """The person holding `person_id`'s aliases now (itself, or the survivor of a merge); else 404."""
    current = await current_person(conn, workspace_id, person_id)
    if current is None:
        raise NotFound(f"person '{person_id[:64]}' not found")
    return current


async def person_by_identity(conn: asyncpg.Connection, workspace_id: str, identity: str, region: str) -> str:
    """The person owning `identity` (untyped: every spelling it may be stored under is tried); else 404."""
    if not identity.strip():
        raise bad("identity", "must not be empty")
    try:
        spellings = previous_identity_candidates(identity, region) or (identity.strip(),)
    except IdentityError as exc:
        raise bad("identity", exc.reason) from None
    person = await person_of(conn, workspace_id, spellings)
    if person is None:
        raise NotFound(f"no person has the identity '{identity[:256]}'")
    return person


async def person_by_id_or_identity(conn: asyncpg.Connection, workspace_id: str, key: str, region: str) -> str:
    """A person id when `key` is one of a known person, else the person owning `key` as an identity."""
    if len(key) == PERSON_ID_LENGTH and set(key) <= _HEX:
        current = await current_person(conn, workspace_id, key)
        if current is not None:
            return current
    return await person_by_identity(conn, workspace_id, key, region)


async def compute_view(
    conn: asyncpg.Connection, workspace_id: str, person_id: str, template: TemplateRecord
) -> View:
    values = await store.compute_now(conn, workspace_id, person_id, template.template, datetime.now(UTC))
    return View(person_id, template, values)


async def verbose_events(conn: asyncpg.Connection, workspace_id: str, view: View) -> dict[int, str]:
    """{seq: the event as a JSON string} for the events behind the view's verbose attributes (one query)."""
    seqs = sorted(
        {
            seq
            for spec, value in zip(view.template.spec.attributes, view.values.attributes, strict=True)
            if spec.verbose
            for seq in value.seqs
        }
    )
    if not seqs:
        return {}
    sql = QUERIES["feed_events"].format(
        where=" AND e.seq = ANY($2::bigint[])", order="e.seq", limit="$3", offset="0"
    )
    rows = await conn.fetch(sql, workspace_id, seqs, len(seqs))
    return {r["seq"]: json.dumps(cloudevent(r), separators=(",", ":")) for r in rows}


def jds_view(
    view: View,
    workspace_id: str,
    search: str,
    events: Mapping[int, str],
    firings: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JDS answer: ``{"meta": {...}, "data": [ProgressiveProfileViewModel]}``."""
    ids = {
        "organizationId": workspace_id,
        "workspaceId": workspace_id,
        "personId": view.person_id,
        "templateId": view.template.template_id,
    }
    attributes = []
    for spec, value in zip(view.template.spec.attributes, view.values.attributes, strict=True):
        journey = [events[seq] for seq in value.seqs if seq in events] if spec.verbose else []
        attributes.append(
            {
                "queryTemplate": spec.model_dump(mode="json"),
                "result": value.jds_result,
                "error": value.error,
                "journeyEvents": journey,
            }
        )
    data = {
        **ids,
        "searchFilter": search,
        "attributes": attributes,
        "systemMetdata": {"journeyActionTriggerHistories": firings},
        "timestamp": format_time(view.values.computed_at),
    }
    return {"meta": ids, "data": [data]}


def native_view(view: View) -> dict[str, Any]:
    """Typed values with their freshness: each is exact from `computedAt` until `nextChangeAt`."""
    values = view.values
    return {
        "personId": view.person_id,
        "templateId": view.template.template_id,
        "templateName": view.template.spec.name,
        "computedAt": format_time(values.computed_at),
        "nextChangeAt": _time(values.next_change_at),
        "attributes": [
            _native_attribute(spec.displayName, spec.aggregationMode, spec.metaDataType, value)
            for spec, value in zip(view.template.spec.attributes, values.attributes, strict=True)
        ],
    }


def _native_attribute(name: str, mode: str, type_: str, value: AttributeValue) -> dict[str, Any]:
    return {
        "displayName": name,
        "aggregationMode": mode,
        "metaDataType": type_,
        "value": _plain(value.result.value),
        "result": value.jds_result,
        "events": value.result.events,
        "error": value.error,
        "windowStart": format_time(value.window_start),
        "windowEnd": format_time(value.window_end),
    }


def _plain(value: Result) -> Any:
    """JSON for a typed value: numbers as numbers (an overflowed Sum as null), date-times as text, lists."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)
