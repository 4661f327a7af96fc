"""Webhook body templates: which placeholders exist, and how values are filled in (pure, no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from actions.render import render, unknown_placeholders

NAMES = ["Calls today", "closed"]


@pytest.mark.parametrize(
    "name",
    [
        "person.id", "identity", "action.id", "action.name", "template.id", "template.name", "event.id",
        "event.type", "event.source", "event.time", "firing.id", "firing.time", "event.data.a.b",
        "aliases.phone", "aliases.email", "aliases.customerId", "aliases.temporaryId", "aliases.socialId",
        "values.Calls today", "values.closed",
    ],
)  # fmt: skip
def test_every_documented_placeholder_is_known(name: str) -> None:
    assert unknown_placeholders(f'{{"x": "{{{{{name}}}}}"}}', NAMES) == []


def test_unknown_placeholders_are_listed_in_order_with_whitespace_trimmed() -> None:
    body = '{"a": "{{ values.Nope }}", "b": "{{aliases.fax}}", "c": "{{ person.id }}", "d": "{{secret}}"}'
    assert unknown_placeholders(body, NAMES) == ["values.Nope", "aliases.fax", "secret"]


def test_a_display_name_matches_exactly() -> None:
    assert unknown_placeholders("{{values.calls today}}", NAMES) == ["values.calls today"]


def test_a_body_without_placeholders_is_sent_as_it_is() -> None:
    body = '{"SMS":"12263762551", "note": "{ not a placeholder }"}'
    assert render(body, {"person.id": "p"}) is body


def test_values_are_json_escaped_inside_the_string_they_sit_in() -> None:
    body = '{"msg": "{{values.note}}"}'
    rendered = render(body, {"values.note": 'He said "hi"\nthen left \\ — ok'})
    assert json.loads(rendered) == {"msg": 'He said "hi"\nthen left \\ — ok'}
    assert "—" in rendered  # not \u-escaped


def test_a_placeholder_without_a_value_becomes_the_empty_string() -> None:
    body = '{"a": "{{aliases.phone}}", "b": "{{event.id}}", "c": "{{event.data.missing}}"}'
    assert json.loads(render(body, {"event.id": None, "event.data": {}})) == {"a": "", "b": "", "c": ""}


def test_event_data_placeholders_reach_nested_fields_and_array_items() -> None:
    data = {"customer": {"tier": "gold", "tags": ["a", "b"]}, "amount": 12.5, "vip": True}
    body = (
        "{{event.data.customer.tier}}|{{event.data.customer.tags.1}}|{{event.data.amount}}|{{event.data.vip}}"
    )
    assert render(body, {"event.data": data}) == "gold|b|12.5|true"


def test_event_data_that_is_not_an_object_fills_nothing() -> None:
    assert render("[{{event.data.a}}]", {"event.data": "text"}) == "[]"


def test_objects_and_arrays_are_inserted_as_compact_escaped_json() -> None:
    rendered = render('{"raw": "{{event.data.customer}}"}', {"event.data": {"customer": {"k": [1, "x"]}}})
    assert json.loads(json.loads(rendered)["raw"]) == {"k": [1, "x"]}
    assert '{\\"k\\":[1,\\"x\\"]}' in rendered


def test_typed_values_render_as_jds_shows_them() -> None:
    context = {"a": 3, "b": 0.1, "c": False, "d": datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)}
    assert render("{{a}} {{b}} {{c}} {{d}}", context) == "3 0.1 false 2024-05-01T12:00:00.250Z"
