"""Profile views: one person's values under one template, as JDS shows them and as the native API does.

A view is read at the moment of the request: the stored values when they are still exact, else computed
from the events (:func:`read_view`), so a value whose event just left its window reads
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
from typing import Any

import asyncpg

from journey_engine.cloudevents import format_time
from journey_engine.errors import BadRequest, NotFound
from journey_engine.feed import cloudevent, identity_spellings
from journey_engine.sql import QUERIES
from profiles import catalog, store
from profiles.aggregation import Result
from profiles.catalog import TemplateRecord
from profiles.compute import AttributeValue, ProfileValues

PERSON_ID_LENGTH = 24
_HEX = frozenset("0123456789abcdef")


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


@dataclass(frozen=True, slots=True)
class Who:
    """The person a view is of: a person id, an identity, or (native paths) either."""

    person_id: str | None = None
    identity: str | None = None


async def read_view(
    conn: asyncpg.Connection,
    workspace_id: str,
    template_key: str,
    who: Who,
    *,
    by_name: bool = False,
    region: str = "US",
    firings: int = 0,
) -> tuple[View, list[dict[str, Any]]]:
    """The view and the person's newest `firings` firings of the template's actions (JDS history).

    One statement reads template, person, stored values and firings (one snapshot, one round trip); a
    second reads the events only when the stored values are no longer exact. An unknown template is
    404 before an unknown or malformed person.
    """
    person_key = who.person_id
    if person_key is not None and who.identity is not None and not _looks_like_person_id(person_key):
        person_key = None  # native paths: a key that cannot be a person id is only an identity
    spellings: tuple[str, ...] = ()
    identity_error: BadRequest | None = None
    if who.identity is not None:
        try:
            spellings = identity_spellings(who.identity, region)
        except BadRequest as exc:
            identity_error = exc
    row = await conn.fetchrow(
        QUERIES["profile_view"], workspace_id, template_key, by_name, person_key,
        spellings[0] if spellings else None, spellings[1] if len(spellings) > 1 else None, firings,
    )  # fmt: skip
    if row is None or row["template_id"] is None:
        raise NotFound(f"template '{template_key[:128]}' not found")
    if identity_error is not None:
        raise identity_error
    person_id: str | None = row["person_id"]
    if person_id is None:
        if who.identity is not None:
            raise NotFound(f"no person has the identity '{who.identity[:256]}'")
        raise NotFound(f"person '{(who.person_id or '')[:64]}' not found")
    template = catalog.record(row)
    now = datetime.now(UTC)
    values = store.decode_stored(template.template, row)
    if values is None or not store.exact_at(values, now):
        values = await store.compute_from_events(conn, workspace_id, person_id, template.template, now)
    history = [
        {"actionId": action, "triggeredAt": jds_time(at), "doNotDisturbPeriod": str(cooldown)}
        for action, at, cooldown in zip(
            row["action_ids"] or (), row["fired_at"] or (), row["cooldowns"] or (), strict=True
        )
    ]
    return View(person_id, template, values), history


def jds_time(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z` and milliseconds (`2022-10-18T04:21:34.124Z`), as JDS writes times."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _looks_like_person_id(key: str) -> bool:
    return len(key) == PERSON_ID_LENGTH and set(key) <= _HEX


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
    specs, queries = view.template.spec.attributes, _query_templates(view.template)
    for spec, query, value in zip(specs, queries, view.values.attributes, strict=True):
        journey = [events[seq] for seq in value.seqs if seq in events] if spec.verbose else []
        attributes.append(
            {
                "queryTemplate": query,
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


def _query_templates(template: TemplateRecord) -> list[dict[str, Any]]:
    """The attributes' specs in JDS shape, dumped once per template version (every JDS view shows them).
    Callers must not change them: each answer's JSON is written from the shared dicts."""
    key = (template.template_id, template.template.version)
    return _DUMPED.get(key, lambda: [a.model_dump(mode="json") for a in template.spec.attributes])


_DUMPED: store.VersionCache[tuple[str, datetime], list[dict[str, Any]]] = store.VersionCache()


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
