"""Profile computation (pure): a template applied to one person's events at one instant.

For each attribute: the events whose `type` is the attribute's event, with a time in
`[now - lookback, now]`, passing the attribute's `rules`, newest first, at most `limit` of them; their
`data[metaData]` cast to `metaDataType`; then the aggregation. A value that does not cast is skipped and
reported in the attribute's `error`. Count counts the matching events, with or without the field.

The result also says when it next changes with no new event: the earliest time an event leaves a
window (or a future-stamped event enters one). Until then the stored values are exact.

Times are integers inside (microseconds since 1970 UTC, `aggregation.micros`): an event's time as stored
and read, the instant of a computation, when a value next changes. Comparing and adding them costs a
fraction of what datetimes do, and a time whose UTC is past year 9999 has no datetime in Python.

What each attribute needs of its spec (window, path, cast, rule filter, aggregation) is worked out once per
TemplateSpec object, its plan; a computation then sorts the person's events once, by type, newest first,
and each attribute reads its window off that list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, Final

from profiles.aggregation import (
    LAST_MICROS,
    MISSING,
    RESOLUTION,
    AggregateResult,
    AggregationMode,
    CastError,
    MetaDataType,
    Reducer,
    Result,
    Typed,
    as_jds_string,
    caster,
    from_micros,
    micros,
    path_reader,
    reducer,
)
from profiles.rules import EventFilter, event_filter
from profiles.templates import AttributeSpec, TemplateSpec

_MAX_ERRORS_SHOWN = 3


# The value objects made per event and per attribute (EventFact, AttributeValue, ProfileValues, and
# AggregateResult, store.Change) are not frozen: a frozen dataclass's __init__ costs 3x (a call of
# object.__setattr__ per field), ~5 µs per ingested event. Nothing changes them after they are made.


@dataclass(slots=True)
class EventFact:
    """What computation needs of a stored event."""

    seq: int
    type: str
    time: int
    """In microseconds since 1970-01-01 UTC (`aggregation.micros`)."""
    data: Any


@dataclass(slots=True)
class AttributeValue:
    """One attribute's value at `computed_at`, with the events behind it."""

    result: AggregateResult
    error: str | None
    seqs: tuple[int, ...]
    """The events aggregated, for a verbose attribute (JDS `journeyEvents`); empty otherwise."""
    window_start: datetime
    window_end: datetime

    @property
    def jds_result(self) -> str | None:
        return as_jds_string(self.result)


@dataclass(slots=True)
class ProfileValues:
    computed_at: datetime
    attributes: tuple[AttributeValue, ...]
    next_change_at: datetime | None


@dataclass(frozen=True, slots=True)
class _AttributePlan:
    """What computing one attribute needs of its spec, derived once: the functions chosen, the path split."""

    event: str
    span: timedelta
    span_us: int
    leaves_after: int
    """From an event's time to the first instant it no longer counts: span + 1µs, in microseconds."""
    limit: int | None
    accepts: EventFilter | None
    read: Callable[[Mapping[str, object]], object]
    cast: Callable[[object], Typed]
    reduce: Reducer
    mode: AggregationMode
    type: MetaDataType
    kind: str
    """How a skipped value is described: "amount is not integer"."""
    verbose: bool
    """Whether its events are shown (JDS `journeyEvents`): only then are their seqs stored."""

    @classmethod
    def of(cls, attribute: AttributeSpec) -> _AttributePlan:
        rules = attribute.rules
        return cls(
            event=attribute.event,
            span=attribute.lookback,
            span_us=attribute.lookback // RESOLUTION,
            leaves_after=attribute.lookback // RESOLUTION + 1,
            limit=attribute.effective_limit,
            accepts=None if rules is None else event_filter(rules, attribute.event),
            read=path_reader(attribute.metaData),
            cast=caster(attribute.metaDataType),
            reduce=reducer(attribute.aggregationMode, attribute.metaDataType),
            mode=attribute.aggregationMode,
            type=attribute.metaDataType,
            kind=f"{attribute.metaData} is not {attribute.metaDataType}",
            verbose=attribute.verbose,
        )


@dataclass(frozen=True, slots=True)
class _Plan:
    attributes: tuple[_AttributePlan, ...]
    types: frozenset[str]
    """The event types the template aggregates; events of other types are dropped first."""


# Plans by template object (held, so its id is not reused while the entry lives). store.parse_template
# keeps one TemplateSpec per template version, so a template's plan is made once, not per computation.
_PLANS: dict[int, tuple[TemplateSpec, _Plan]] = {}
_PLANS_MAX = 4096


def _plan(template: TemplateSpec) -> _Plan:
    entry = _PLANS.get(id(template))
    if entry is not None and entry[0] is template:
        return entry[1]
    attributes = tuple(_AttributePlan.of(a) for a in template.attributes)
    plan = _Plan(attributes, frozenset(a.event for a in attributes))
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[id(template)] = (template, plan)
    return plan


def compute(template: TemplateSpec, events: Sequence[EventFact], now: datetime) -> ProfileValues:
    """The template's values for a person whose events (any order, any type) are `events`."""
    computed, next_change = _computed(template, events, micros(now))
    return ProfileValues(
        now,
        tuple([
            AttributeValue(
                AggregateResult(attribute.mode, attribute.type, value, count), error, seqs,
                now - attribute.span, now,
            )
            for attribute, value, count, error, seqs in computed
        ]),
        None if next_change is None else from_micros(next_change),
    )  # fmt: skip


def compute_stored(
    template: TemplateSpec, events: Sequence[EventFact], now: int
) -> tuple[list[list[Any]], int | None]:
    """`to_json(template, v)` and `micros(v.next_change_at)` of `v = compute(template, events, t)` where
    `now = micros(t)`, without making the value objects: what an ingest stores when nothing else reads the
    values. A person with two events under a 5-attribute template, with the JSON text: 12.1 µs through
    `compute`, 9.2 here. The next change is bounded by the end of year 9999, as `compute`'s is (asyncpg
    could not read a later one back)."""
    computed, next_change = _computed(template, events, now)
    stored = [_stored(a, value, count, error, seqs) for a, value, count, error, seqs in computed]
    return stored, None if next_change is None else min(next_change, LAST_MICROS)


def _computed(
    template: TemplateSpec, events: Sequence[EventFact], now: int
) -> tuple[list[tuple[_AttributePlan, Result, int, str | None, tuple[int, ...]]], int | None]:
    """Each attribute with its value, how many events it counted, its error and, when it is verbose, the
    seqs of those events; and the earliest next change (times in microseconds)."""
    plan = _plan(template)
    by_type = _newest_first(events, plan.types)
    computed = []
    next_change: int | None = None
    for attribute in plan.attributes:
        value, error, counted, change = _attribute(attribute, by_type.get(attribute.event, ()), now)
        seqs = tuple([e.seq for e in counted]) if attribute.verbose else ()
        computed.append((attribute, value, len(counted), error, seqs))
        if change is not None and (next_change is None or change < next_change):
            next_change = change
    return computed, next_change


_NEWEST: Final = attrgetter("time", "seq")


def _newest_first(events: Sequence[EventFact], types: frozenset[str]) -> dict[str, list[EventFact]]:
    """The events of `types` by type, newest first (ties in order of seq, highest first)."""
    by_type: dict[str, list[EventFact]] = {}
    for e in events:
        if e.type in types:
            group = by_type.get(e.type)
            if group is None:
                by_type[e.type] = [e]
            else:
                group.append(e)
    for group in by_type.values():
        if len(group) > 1:
            group.sort(key=_NEWEST, reverse=True)
    return by_type


def _attribute(
    plan: _AttributePlan, newest_first: Sequence[EventFact], now: int
) -> tuple[Result, str | None, Sequence[EventFact], int | None]:
    """The value from the events of the attribute's type, newest first: the aggregated value, the error
    (values skipped), the events counted, and when the value next changes.

    Newest first, the matching events are: those after `now` (future-stamped), then those in the window,
    then the older ones. Only the newest `limit` in the window count, and the value next changes when the
    oldest of them leaves the window (at its time + span + 1µs) or the earliest future one enters it.
    """
    matching = newest_first
    if plan.accepts is not None:
        accepts = plan.accepts
        matching = [e for e in newest_first if accepts(_mapping(e.data))]
    start = now - plan.span_us
    size = len(matching)
    first = 0
    while first < size and matching[first].time > now:
        first += 1
    end = size if plan.limit is None else min(size, first + plan.limit)
    stop = first
    while stop < end and matching[stop].time >= start:
        stop += 1
    change = matching[first - 1].time if first else None
    if stop > first:
        leaves = matching[stop - 1].time + plan.leaves_after
        if change is None or leaves < change:
            change = leaves
    read = plan.read
    cast = plan.cast
    counted = matching[first:stop]
    present: list[Typed] = []
    skipped: list[str] = []
    for e in counted:
        data = e.data
        raw = read(data if type(data) is dict else _mapping(data))
        if raw is MISSING or raw is None:
            continue
        try:
            present.append(cast(raw))
        except CastError as exc:
            skipped.append(f"event {e.seq}: {exc}")
    error = _error(skipped, plan.kind) if skipped else None
    return plan.reduce(present, len(counted)), error, counted, change


def _mapping(data: Any) -> Mapping[str, object]:
    return data if isinstance(data, Mapping) else {}


def _error(skipped: list[str], kind: str) -> str:
    shown = "; ".join(skipped[:_MAX_ERRORS_SHOWN])
    more = f" (and {len(skipped) - _MAX_ERRORS_SHOWN} more)" if len(skipped) > _MAX_ERRORS_SHOWN else ""
    return f"{len(skipped)} event(s) skipped, {kind}: {shown}{more}"


_NONFINITE = "nonfinite"


def to_json(template: TemplateSpec, values: ProfileValues) -> list[list[Any]]:
    """Stored form of the values (a json column): per attribute `[value, events, error]`, typed results
    surviving the round trip with `from_json`, and for a verbose attribute its events' seqs as a fourth
    item (no one reads the others'). The window is `computed_at` minus the lookback, so it is not stored.
    Arrays, not objects: PostgreSQL parses a few hundred thousand of these a second at ingest (migration
    0010)."""
    return [
        _stored(plan, v.result.value, v.result.events, v.error, v.seqs)
        for plan, v in zip(_plan(template).attributes, values.attributes, strict=True)
    ]


def _stored(
    plan: _AttributePlan, value: Result, events: int, error: str | None, seqs: tuple[int, ...]
) -> list[Any]:
    """One attribute's stored form: `[value, events, error]`, and the events' seqs for a verbose one."""
    kind = type(value)
    plain = value if kind is int or kind is str or value is None else _plain(value)  # the most common first
    if plan.verbose:
        return [plain, events, error, list(seqs)]
    return [plain, events, error]


_JSON_SCALARS: Final = frozenset({str, int, float, type(None)})


def _plain(value: Result) -> Any:
    if type(value) is float and not math.isfinite(value):
        return {_NONFINITE: repr(value)}  # a Sum that overflowed: JSON (and jsonb) has no infinity
    if type(value) in _JSON_SCALARS:
        return value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def from_json(
    template: TemplateSpec,
    stored: list[list[Any]],
    computed_at: datetime,
    next_change_at: datetime | None,
) -> ProfileValues:
    """Values read back from storage, typed again by the template (which must be the one they came from).
    Seqs not stored (attributes not verbose) read back empty."""
    attributes = []
    for plan, row in zip(_plan(template).attributes, stored, strict=True):
        raw = row[0]
        value: Result
        if isinstance(raw, list):
            cast = plan.cast
            value = tuple([cast(v) for v in raw])
        elif raw is None:
            value = None
        elif isinstance(raw, dict):
            value = float(raw[_NONFINITE])
        elif plan.mode in ("Count", "Average"):
            value = raw
        else:
            value = plan.cast(raw)
        attributes.append(
            AttributeValue(
                result=AggregateResult(plan.mode, plan.type, value, row[1]),
                error=row[2],
                seqs=tuple(row[3]) if len(row) > 3 else (),
                window_start=computed_at - plan.span,
                window_end=computed_at,
            )
        )
    return ProfileValues(computed_at, tuple(attributes), next_change_at)
