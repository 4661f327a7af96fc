"""Profile computation: a template over one person's events at one instant (pure)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from journey_engine.sql import migrations
from profiles.compute import EventFact, compute, from_json, to_json
from profiles.templates import TemplateSpec, default_template

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def template(*attributes: dict[str, Any]) -> TemplateSpec:
    base = {"event": "Payment", "metaDataType": "double", "metaData": "amount", "limit": 0,
            "lookBackDurationType": "minutes", "lookBackPeriod": 10, "aggregationMode": "Sum"}  # fmt: skip
    return TemplateSpec.model_validate(
        {"name": "t", "attributes": [{**base, "displayName": f"a{i}", **a} for i, a in enumerate(attributes)]}
    )


def ev(seq: int, minutes_ago: float, data: Any = None, type_: str = "Payment") -> EventFact:
    return EventFact(seq, type_, NOW - timedelta(minutes=minutes_ago), data if data is not None else {})


def test_only_events_of_the_type_inside_the_window_count() -> None:
    values = compute(
        template({}),
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
    future = EventFact(1, "Payment", NOW + timedelta(seconds=30), {"amount": 7})
    values = compute(template({}), [future], NOW)
    assert values.attributes[0].result.value == 0
    assert values.next_change_at == NOW + timedelta(seconds=30)
    later = compute(template({}), [future], NOW + timedelta(seconds=30))
    assert later.attributes[0].result.value == 7


def test_no_events_means_no_next_change() -> None:
    assert compute(template({}), [], NOW).next_change_at is None


def test_limit_keeps_the_newest_events() -> None:
    events = [ev(i, i, {"amount": i}) for i in range(1, 6)]
    values = compute(template({"limit": 2}), events, NOW)
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
        {"aggregationMode": "Max", "metaDataType": "utc_datetime", "metaData": "at"},
        {"aggregationMode": "Distinct", "metaDataType": "integer", "metaData": "n"},
        {"aggregationMode": "Average", "metaDataType": "integer", "metaData": "n"},
    )
    events = [ev(1, 1, {"amount": 1.5, "at": "2026-11-20T10:00:00Z", "n": 2}), ev(2, 2, {"n": 3})]
    values = compute(t, events, NOW)
    stored = json.loads(json.dumps(to_json(values)))
    back = from_json(t, stored, values.computed_at, values.next_change_at)
    assert [a.result for a in back.attributes] == [a.result for a in values.attributes]
    assert [a.seqs for a in back.attributes] == [a.seqs for a in values.attributes]


def test_migration_seeds_the_same_default_template_the_engine_creates() -> None:
    (sql,) = [sql for _, name, sql in migrations() if name == "0004_profiles.sql"]
    literal = re.search(r"'(\{\"name\":\"journey-default-template\".*?\})'::jsonb", sql)
    assert literal is not None
    assert TemplateSpec.model_validate_json(literal.group(1)) == default_template()
