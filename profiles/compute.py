"""Profile computation (pure): a template applied to one person's events at one instant.

For each attribute: the events whose `type` is the attribute's event, with a time in
`[now - lookback, now]`, passing the attribute's `rules`, newest first, at most `limit` of them; their
`data[metaData]` cast to `metaDataType`; then the aggregation. A value that does not cast is skipped and
reported in the attribute's `error`. Count counts the matching events, with or without the field.

The result also says when it next changes with no new event: the earliest time an event leaves a
window (or a future-stamped event enters one). Until then the stored values are exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from profiles.aggregation import (
    MISSING,
    AggregateResult,
    CastError,
    Result,
    Typed,
    aggregate,
    as_jds_string,
    cast_value,
    get_path,
    in_window,
    next_change,
)
from profiles.templates import AttributeSpec, TemplateSpec

_MAX_ERRORS_SHOWN = 3


@dataclass(frozen=True, slots=True)
class EventFact:
    """What computation needs of a stored event."""

    seq: int
    type: str
    time: datetime
    data: Any


@dataclass(frozen=True, slots=True)
class AttributeValue:
    """One attribute's value at `computed_at`, with the events behind it."""

    result: AggregateResult
    error: str | None
    seqs: tuple[int, ...]
    window_start: datetime
    window_end: datetime

    @property
    def jds_result(self) -> str | None:
        return as_jds_string(self.result)


@dataclass(frozen=True, slots=True)
class ProfileValues:
    computed_at: datetime
    attributes: tuple[AttributeValue, ...]
    next_change_at: datetime | None


def compute(template: TemplateSpec, events: Sequence[EventFact], now: datetime) -> ProfileValues:
    """The template's values for a person whose events (any order, any type) are `events`."""
    newest_first = sorted(events, key=lambda e: (e.time, e.seq), reverse=True)
    values = []
    changes = []
    for attribute in template.attributes:
        value, change = _attribute(attribute, newest_first, now)
        values.append(value)
        if change is not None:
            changes.append(change)
    return ProfileValues(now, tuple(values), min(changes) if changes else None)


def _attribute(
    attribute: AttributeSpec, newest_first: Sequence[EventFact], now: datetime
) -> tuple[AttributeValue, datetime | None]:
    span = attribute.lookback
    matching = [e for e in newest_first if attribute.counts(e.type, _mapping(e.data))]
    inside = [e for e in matching if in_window(now, span, e.time)]
    limit = attribute.effective_limit
    counted = inside[:limit] if limit else inside
    typed: list[Typed | None] = []
    skipped: list[str] = []
    for e in counted:
        raw = get_path(_mapping(e.data), attribute.metaData)
        if raw is MISSING or raw is None:
            typed.append(None)
            continue
        try:
            typed.append(cast_value(raw, attribute.metaDataType))
        except CastError as exc:
            typed.append(None)
            skipped.append(f"event {e.seq}: {exc}")
    result = aggregate(attribute.aggregationMode, attribute.metaDataType, typed)
    change = next_change(now, span, (e.time for e in matching), limit)
    value = AttributeValue(
        result=result,
        error=_error(skipped, attribute),
        seqs=tuple(e.seq for e in counted),
        window_start=now - span,
        window_end=now,
    )
    return value, change


def _mapping(data: Any) -> Mapping[str, object]:
    return data if isinstance(data, Mapping) else {}


def _error(skipped: list[str], attribute: AttributeSpec) -> str | None:
    if not skipped:
        return None
    shown = "; ".join(skipped[:_MAX_ERRORS_SHOWN])
    more = f" (and {len(skipped) - _MAX_ERRORS_SHOWN} more)" if len(skipped) > _MAX_ERRORS_SHOWN else ""
    kind = f"{attribute.metaData} is not {attribute.metaDataType}"
    return f"{len(skipped)} event(s) skipped, {kind}: {shown}{more}"


def to_json(values: ProfileValues) -> list[dict[str, Any]]:
    """Stored form of the values (jsonb): typed results survive the round trip with `from_json`."""
    return [
        {
            "value": _plain(v.result.value),
            "events": v.result.events,
            "error": v.error,
            "seqs": list(v.seqs),
            "start": v.window_start.isoformat(),
        }
        for v in values.attributes
    ]


def _plain(value: Result) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def from_json(
    template: TemplateSpec,
    stored: list[dict[str, Any]],
    computed_at: datetime,
    next_change_at: datetime | None,
) -> ProfileValues:
    """Values read back from storage, typed again by the template (which must be the one they came from)."""
    attributes = []
    for attribute, row in zip(template.attributes, stored, strict=True):
        raw = row["value"]
        value: Result
        if isinstance(raw, list):
            value = tuple(_typed(v, attribute) for v in raw)
        elif raw is None:
            value = None
        elif attribute.aggregationMode in ("Count", "Average"):
            value = raw
        else:
            value = _typed(raw, attribute)
        result = AggregateResult(attribute.aggregationMode, attribute.metaDataType, value, row["events"])
        attributes.append(
            AttributeValue(
                result=result,
                error=row["error"],
                seqs=tuple(row["seqs"]),
                window_start=datetime.fromisoformat(row["start"]),
                window_end=computed_at,
            )
        )
    return ProfileValues(computed_at, tuple(attributes), next_change_at)


def _typed(raw: Any, attribute: AttributeSpec) -> Typed:
    typed: Typed = cast_value(raw, attribute.metaDataType)
    return typed
