"""Profile computation: a template over one person's events at one instant (pure)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

from journey_engine.sql import migrations
from profiles.aggregation import (
    LAST_MICROS,
    MISSING,
    RESOLUTION,
    AggregateResult,
    CastError,
    Result,
    Typed,
    aggregate,
    cast_value,
    from_micros,
    get_path,
    in_window,
    micros,
    mode_type_problem,
    next_change,
)
from profiles.compute import (
    AttributeValue,
    EventFact,
    ProfileValues,
    compute,
    compute_stored,
    from_json,
    to_json,
)
from profiles.templates import TemplateSpec, default_template

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def template(*attributes: dict[str, Any]) -> TemplateSpec:
    base = {"event": "Payment", "metaDataType": "double", "metaData": "amount", "limit": 0,
            "lookBackDurationType": "minutes", "lookBackPeriod": 10, "aggregationMode": "Sum"}  # fmt: skip
    return TemplateSpec.model_validate(
        {"name": "t", "attributes": [{**base, "displayName": f"a{i}", **a} for i, a in enumerate(attributes)]}
    )


def ev(seq: int, minutes_ago: float, data: Any = None, type_: str = "Payment") -> EventFact:
    time = micros(NOW - timedelta(minutes=minutes_ago))
    return EventFact(seq, type_, time, data if data is not None else {})


def test_only_events_of_the_type_inside_the_window_count() -> None:
    values = compute(
        template({"verbose": True}),
        [ev(1, 1, {"amount": 10}), ev(2, 9.99, {"amount": 5}), ev(3, 11, {"amount": 100}),
         ev(4, 2, {"amount": 1000}, "Refund")],
        NOW,
    )  # fmt: skip
    (value,) = values.attributes
    assert value.result.value == 15.0
    assert value.seqs == (1, 2)
    assert value.jds_result == "15.0"


def test_the_window_includes_its_start_exactly() -> None:
    (value,) = compute(template({"aggregationMode": "Count"}), [ev(1, 10)], NOW).attributes
    assert value.result.value == 1


def test_next_change_is_when_the_oldest_counted_event_leaves() -> None:
    values = compute(template({}), [ev(1, 1, {"amount": 1}), ev(2, 4, {"amount": 1})], NOW)
    assert values.next_change_at == NOW - timedelta(minutes=4) + timedelta(minutes=10, microseconds=1)


def test_next_change_is_the_earliest_over_all_attributes() -> None:
    values = compute(
        template({"lookBackPeriod": 10}, {"lookBackPeriod": 5, "aggregationMode": "Count"}), [ev(1, 1)], NOW
    )
    assert values.next_change_at == NOW - timedelta(minutes=1) + timedelta(minutes=5, microseconds=1)


def test_a_future_stamped_event_counts_from_its_time_on() -> None:
    future = EventFact(1, "Payment", micros(NOW + timedelta(seconds=30)), {"amount": 7})
    values = compute(template({}), [future], NOW)
    assert values.attributes[0].result.value == 0
    assert values.next_change_at == NOW + timedelta(seconds=30)
    later = compute(template({}), [future], NOW + timedelta(seconds=30))
    assert later.attributes[0].result.value == 7


def test_times_are_microseconds_since_1970_also_past_the_years_python_has() -> None:
    assert micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert micros(NOW + RESOLUTION) - micros(NOW) == 1
    assert micros(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1
    last = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    for moment in [NOW, datetime(1, 1, 1, tzinfo=UTC), last]:
        assert from_micros(micros(moment)) == moment
    # 9999-12-31T23:00-05:00 is in year 10000 in UTC: it has a time, and no UTC datetime
    late = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    assert micros(late) == micros(datetime(9999, 12, 31, 23, tzinfo=UTC)) + 5 * 3600 * 1_000_000
    assert from_micros(micros(late)) == datetime.max.replace(tzinfo=UTC)


def test_a_time_past_year_9999_in_utc_is_computed_and_its_change_stored_as_python_s_last_instant() -> None:
    """Ingest refuses such a time (cloudevents), but computation does not depend on that."""
    late = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    events = [EventFact(1, "Payment", micros(late), {"amount": 7}), ev(2, 1, {"amount": 2})]
    values = compute(template({}), events, NOW)
    assert values.attributes[0].result.value == 2.0
    assert values.next_change_at == NOW - timedelta(minutes=1) + timedelta(minutes=10, microseconds=1)
    stored, change = compute_stored(template({}), events[:1], micros(NOW))
    assert (stored, change) == ([[0.0, 0, None]], LAST_MICROS)  # asyncpg reads it back
    assert compute(template({}), events[:1], NOW).next_change_at == datetime.max.replace(tzinfo=UTC)


def test_no_events_means_no_next_change() -> None:
    assert compute(template({}), [], NOW).next_change_at is None


def test_limit_keeps_the_newest_events() -> None:
    events = [ev(i, i, {"amount": i}) for i in range(1, 6)]
    values = compute(template({"limit": 2, "verbose": True}), events, NOW)
    assert values.attributes[0].result.value == 3.0
    assert values.attributes[0].seqs == (1, 2)
    assert values.next_change_at == NOW - timedelta(minutes=2) + timedelta(minutes=10, microseconds=1)


def test_value_mode_lists_values_newest_first() -> None:
    t = template({"aggregationMode": "Value", "metaDataType": "string", "metaData": "status"})
    values = compute(t, [ev(1, 3, {"status": "paid"}), ev(2, 1, {"status": "overdue"})], NOW)
    assert values.attributes[0].jds_result == "overdue,paid"


def test_uncastable_values_are_skipped_and_reported() -> None:
    t = template({"metaDataType": "integer", "metaData": "n"})
    values = compute(t, [ev(1, 1, {"n": 3}), ev(2, 2, {"n": "abc"}), ev(3, 3, {})], NOW)
    (value,) = values.attributes
    assert value.result.value == 3
    assert value.error is not None
    assert "1 event(s) skipped" in value.error
    assert "event 2" in value.error


def test_count_counts_matching_events_with_or_without_the_field() -> None:
    t = template({"aggregationMode": "Count", "metaDataType": "string", "metaData": "missing"})
    assert compute(t, [ev(1, 1), ev(2, 2, {"x": 1})], NOW).attributes[0].result.value == 2


def test_rules_filter_events_before_aggregation() -> None:
    t = template(
        {"aggregationMode": "Count", "metaDataType": "string", "metaData": "category",
         "rules": {"logic": "SINGLE", "condition": "Payment,category,string,Value EQ Water"}}
    )  # fmt: skip
    values = compute(t, [ev(1, 1, {"category": "Water"}), ev(2, 2, {"category": "Power"})], NOW)
    assert values.attributes[0].result.value == 1


def test_nested_fields_are_reached_by_dotted_paths() -> None:
    t = template({"metaData": "order.total"})
    assert compute(t, [ev(1, 1, {"order": {"total": 2.5}})], NOW).attributes[0].result.value == 2.5


def test_stored_form_round_trips_typed_values() -> None:
    t = template(
        {},
        {"aggregationMode": "Max", "metaDataType": "utc_datetime", "metaData": "at", "verbose": True},
        {"aggregationMode": "Distinct", "metaDataType": "integer", "metaData": "n"},
        {"aggregationMode": "Average", "metaDataType": "integer", "metaData": "n", "lookBackPeriod": 3},
    )
    events = [ev(1, 1, {"amount": 1.5, "at": "2026-11-20T10:00:00Z", "n": 2}), ev(2, 2, {"n": 3})]
    values = compute(t, events, NOW)
    stored = json.loads(json.dumps(to_json(t, values)))
    back = from_json(t, stored, values.computed_at, values.next_change_at)
    assert [a.result for a in back.attributes] == [a.result for a in values.attributes]
    assert [a.seqs for a in back.attributes] == [(), (1, 2), (), ()]  # only a verbose attribute's
    assert [a.window_start for a in back.attributes] == [a.window_start for a in values.attributes]
    assert back.attributes[3].window_start == NOW - timedelta(minutes=3)
    assert [len(a) for a in stored] == [3, 4, 3, 3]  # value, events, error; seqs only when verbose


def test_an_overflowed_sum_is_stored_as_json_and_read_back_infinite() -> None:
    """JSON (and jsonb) has no infinity: the stored form spells it so PostgreSQL accepts it."""
    t = template({}, {"aggregationMode": "Average"})
    values = compute(t, [ev(1, 1, {"amount": 1e308}), ev(2, 2, {"amount": 1e308})], NOW)
    assert [a.result.value for a in values.attributes] == [float("inf"), float("inf")]
    stored = json.loads(json.dumps(to_json(t, values), allow_nan=False))
    back = from_json(t, stored, values.computed_at, values.next_change_at)
    assert [a.result for a in back.attributes] == [a.result for a in values.attributes]
    assert back.attributes[0].jds_result == "Infinity"


def test_migration_seeds_the_same_default_template_the_engine_creates() -> None:
    (sql,) = [sql for _, name, sql in migrations() if name == "0004_profiles.sql"]
    literal = re.search(r"'(\{\"name\":\"journey-default-template\".*?\})'::jsonb", sql)
    assert literal is not None
    assert TemplateSpec.model_validate_json(literal.group(1)) == default_template()


# --- the computation against a straightforward reference ------------------------------------------------
# `reference_*` compute what compute.py computed before its per-template plans: every attribute filters
# all events with `AttributeSpec.counts`, reads with `get_path`, casts with `cast_value`, and aggregates
# with `aggregate` and `next_change`. The optimised code must give the same results, to the type and repr.


def reference_compute(t: TemplateSpec, events: Sequence[EventFact], now: datetime) -> ProfileValues:
    newest_first = sorted(events, key=lambda e: (e.time, e.seq), reverse=True)
    values = []
    changes = []
    for attribute in t.attributes:
        span = attribute.lookback
        matching = [e for e in newest_first if attribute.counts(e.type, _mapping(e.data))]
        inside = [e for e in matching if in_window(now, span, from_micros(e.time))]
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
        error = None
        if skipped:
            shown = "; ".join(skipped[:3])
            more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
            kind = f"{attribute.metaData} is not {attribute.metaDataType}"
            error = f"{len(skipped)} event(s) skipped, {kind}: {shown}{more}"
        result = aggregate(attribute.aggregationMode, attribute.metaDataType, typed)
        change = next_change(now, span, (from_micros(e.time) for e in matching), limit)
        seqs = tuple(e.seq for e in counted) if attribute.verbose else ()
        values.append(AttributeValue(result, error, seqs, now - span, now))
        if change is not None:
            changes.append(change)
    return ProfileValues(now, tuple(values), min(changes) if changes else None)


def reference_from_json(t: TemplateSpec, stored: list[list[Any]]) -> list[AggregateResult]:
    results = []
    for attribute, row in zip(t.attributes, stored, strict=True):
        raw = row[0]
        value: Result
        if isinstance(raw, list):
            value = tuple(cast_value(v, attribute.metaDataType) for v in raw)
        elif raw is None or attribute.aggregationMode in ("Count", "Average"):
            value = raw
        else:
            value = cast_value(raw, attribute.metaDataType)
        results.append(AggregateResult(attribute.aggregationMode, attribute.metaDataType, value, row[1]))
    return results


def _mapping(data: Any) -> Mapping[str, object]:
    return data if isinstance(data, Mapping) else {}


_RAW: list[object] = [
    None, True, False, 0, 1, -7, 42, 95, 2**63 - 1, 2**63, -(2**63) - 1, 2.5, -0.0, 4.0, 1e308, -1e308,
    float("inf"), float("nan"), 1.7e12, "42", " 17 ", "-3", "4.0", "2.5", "1e3", "abc", "", "Water", "paid",
    "10", "vip,gift", "2026-11-21T11:55:00Z", "2026-11-21t11:55:00.123456789+02:00", "2026-13-40T00:00:00Z",
    [], {"x": 1}, datetime(2026, 11, 21, 11, 0, tzinfo=UTC), datetime(2026, 11, 21, 11, 0),
]  # fmt: skip
_PATHS = ["amount", "status", "at", "n", "order.total", "order.items.0.sku", "order.items.1.sku", "tags",
          "tags.0", "order.total.x", "missing"]  # fmt: skip
_TYPES_MODES = [
    (type_, mode)
    for type_ in ("string", "integer", "double", "utc_datetime")
    for mode in ("Value", "Count", "Sum", "Max", "Min", "Average", "Distinct")
    if mode_type_problem(mode, type_) is None
]
_SPANS = [(1, "minutes"), (10, "minutes"), (90, "minutes"), (2, "hours"), (24, "hours"), (3, "days"),
          (400, "days")]  # fmt: skip
_RULE_VALUES = {
    "string": ["Water", "paid", "10", "abc", "4.0", "2026", "vip"],
    "integer": ["5", "-3", "42", "95", "0"],
    "double": ["2.5", "0", "42.0", "-1e3", "1e308"],
    "utc_datetime": ["2026-11-21T11:30:00Z", "2026-11-21T13:00:00+02:00"],
}


def random_raw(rng: random.Random) -> object:
    return rng.choice(_RAW)


def random_data(rng: random.Random) -> object:
    if rng.random() < 0.05:
        return rng.choice([None, [1, 2], "text", 5])
    data: dict[str, object] = {
        k: random_raw(rng) for k in ("amount", "status", "at", "n") if rng.random() < 0.8
    }
    if rng.random() < 0.6:
        order: dict[str, object] = {"total": random_raw(rng)}
        if rng.random() < 0.7:
            order["items"] = [{"sku": random_raw(rng)} for _ in range(rng.randint(0, 3))]
        data["order"] = rng.choice([order, order, order, MappingProxyType(order), random_raw(rng)])
    if rng.random() < 0.1:
        data["order.total"] = random_raw(rng)
    if rng.random() < 0.3:
        data["tags"] = [random_raw(rng) for _ in range(rng.randint(0, 3))]
    return data if rng.random() < 0.9 else MappingProxyType(data)  # a Mapping that is not a dict


def random_rule(rng: random.Random, event: str, depth: int = 0) -> object:
    if depth < 2 and rng.random() < 0.4:
        args = [random_rule(rng, event, depth + 1) for _ in range(rng.randint(1, 3))]
        return {"logic": rng.choice(["AND", "OR"]), "args": args}
    type_ = rng.choice(list(_RULE_VALUES))
    ops = ["EQ", "NEQ", "GT", "GTE", "LT", "LTE"] + (["HAS"] * 2 if type_ == "string" else [])
    leaf = f"{event},{rng.choice(_PATHS)},{type_},Value {rng.choice(ops)} {rng.choice(_RULE_VALUES[type_])}"
    return leaf if depth else {"logic": "SINGLE", "condition": leaf}


def random_template(rng: random.Random) -> TemplateSpec:
    attributes = []
    for i in range(rng.randint(1, 6)):
        type_, mode = rng.choice(_TYPES_MODES)
        period, unit = rng.choice(_SPANS)
        event = rng.choice(["Payment", "Refund"])
        attributes.append(
            {"event": event, "metaDataType": type_, "metaData": rng.choice(_PATHS), "displayName": f"a{i}",
             "limit": rng.choice([0, 0, 1, 2, 3, 5]), "lookBackPeriod": period, "lookBackDurationType": unit,
             "aggregationMode": mode, "rules": random_rule(rng, event) if rng.random() < 0.5 else None,
             "verbose": rng.random() < 0.5}
        )  # fmt: skip
    return TemplateSpec.model_validate({"name": "random", "attributes": attributes})


def random_events(rng: random.Random, t: TemplateSpec) -> list[EventFact]:
    edges = [NOW - a.lookback + d for a in t.attributes for d in (-RESOLUTION, timedelta(0), RESOLUTION)]
    edges += [NOW, NOW + RESOLUTION, NOW - RESOLUTION]
    times: list[datetime] = []
    for _ in range(rng.choice([0, 1, 2, 5, 10, 30])):
        pick = rng.random()
        if pick < 0.25:
            times.append(rng.choice(edges))
        elif pick < 0.35 and times:
            times.append(rng.choice(times))  # a tie in time
        elif pick < 0.45:
            times.append(NOW + timedelta(seconds=rng.uniform(0, 7200)))  # future-stamped
        elif pick < 0.75:
            times.append(NOW - timedelta(seconds=rng.uniform(0, 600)))
        else:
            times.append(NOW - timedelta(seconds=rng.uniform(0, 5 * 86400)))
    seqs = rng.sample(range(1, 10_000), len(times))
    types = ["Payment", "Payment", "Refund", "Other"]
    return [
        EventFact(seq, rng.choice(types), micros(time), random_data(rng))
        for seq, time in zip(seqs, times, strict=True)
    ]


def test_compute_agrees_with_the_reference_on_random_templates_and_events() -> None:
    rng = random.Random(20261121)
    for _ in range(400):
        t = random_template(rng)
        events = random_events(rng, t)
        nows = [NOW, NOW + timedelta(minutes=rng.uniform(-60, 60))]
        change = reference_compute(t, events, NOW).next_change_at
        if change is not None:
            nows += [change, change - RESOLUTION]  # an event leaving (or entering) the window
        for now in nows:
            expected = reference_compute(t, events, now)
            actual = compute(t, events, now)
            assert actual == expected
            assert repr(actual) == repr(expected)  # the same types too: 1 is not 1.0, -0.0 not 0.0


def test_stored_form_agrees_with_the_reference_on_random_values() -> None:
    rng = random.Random(7)
    for _ in range(300):
        t = random_template(rng)
        values = compute(t, random_events(rng, t), NOW)
        stored = json.loads(json.dumps(to_json(t, values)))
        expected = reference_from_json(t, stored)
        back = from_json(t, stored, NOW, values.next_change_at)
        assert [a.result for a in back.attributes] == expected
        assert repr([a.result for a in back.attributes]) == repr(expected)
        assert [(a.error, a.seqs, a.window_start) for a in back.attributes] == [
            (a.error, a.seqs if spec.verbose else (), a.window_start)
            for spec, a in zip(t.attributes, values.attributes, strict=True)
        ]


def test_the_stored_form_computed_directly_equals_the_one_of_the_values() -> None:
    """`compute_stored` (an ingest with no action) writes what `to_json(compute(...))` would, to the type."""
    rng = random.Random(2611)
    for _ in range(400):
        t = random_template(rng)
        events = random_events(rng, t)
        for now in (NOW, NOW + timedelta(minutes=rng.uniform(-60, 60))):
            values = compute(t, events, now)
            stored, next_change = compute_stored(t, events, micros(now))
            assert repr(stored) == repr(to_json(t, values))
            assert next_change == (None if values.next_change_at is None else micros(values.next_change_at))


def test_compute_follows_the_template_object_it_is_given() -> None:
    events = [ev(1, 1, {"amount": 2}), ev(2, 2, {"amount": 3})]
    assert compute(template({}), events, NOW).attributes[0].result.value == 5.0
    assert compute(template({"aggregationMode": "Max"}), events, NOW).attributes[0].result.value == 3.0
    assert compute(template({"limit": 1}), events, NOW).attributes[0].result.value == 2.0


def test_a_rule_on_a_field_absent_from_non_object_data_only_passes_neq() -> None:
    rules = {"logic": "OR", "args": ["Payment,a.b,string,Value NEQ x", "Payment,a,integer,Value EQ 1"]}
    t = template({"aggregationMode": "Count", "rules": rules, "verbose": True})
    events = [ev(1, 1, ["not", "an", "object"]), ev(2, 2, "text"), ev(3, 3, {"a": {"b": "x"}})]
    assert compute(t, events, NOW).attributes[0].seqs == (1, 2)
