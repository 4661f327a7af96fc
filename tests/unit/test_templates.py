"""Template models: the JDS request shape, validation with field paths, the default template."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from profiles.rules import AnyOf, Condition, parse_condition
from profiles.templates import (
    DEFAULT_TEMPLATE_NAME,
    MAX_LIMIT,
    AttributeSpec,
    TemplateSpec,
    default_template,
    validation_errors,
)


def attribute(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": "0.1",
        "event": "Closed Queue",
        "metaDataType": "string",
        "metaData": "category",
        "limit": 100,
        "displayName": "ClosedCaller",
        "lookBackDurationType": "minutes",
        "lookBackPeriod": 5,
        "aggregationMode": "Count",
        "rules": {"logic": "SINGLE", "condition": "Closed Queue,category,string,Value EQ Closed"},
        "widgetAttributes": {"type": "table"},
        "verbose": False,
    }
    return {**base, **overrides}


def template(*attributes: dict[str, Any], name: str = "ClosedCaller") -> dict[str, Any]:
    return {"name": name, "attributes": list(attributes) or [attribute()]}


def problems(body: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as info:
        TemplateSpec.model_validate(body)
    return validation_errors(info.value)


def test_the_documented_single_rule_template_validates() -> None:
    spec = TemplateSpec.model_validate(template())
    only = spec.attributes[0]
    assert only.rules == parse_condition("Closed Queue,category,string,Value EQ Closed")
    assert only.lookback == timedelta(minutes=5)
    assert only.effective_limit == 100


def test_dump_is_the_jds_shape_and_round_trips() -> None:
    body = template(
        attribute(
            rules={
                "logic": "or",
                "args": [
                    "Closed Queue,category,STRING,value eq A",
                    "Closed Queue,category,string,Value EQ B",
                ],
            }
        )
    )
    spec = TemplateSpec.model_validate(body)
    dumped = spec.model_dump(mode="json")
    assert dumped["attributes"][0]["rules"] == {
        "logic": "OR",
        "args": ["Closed Queue,category,string,Value EQ A", "Closed Queue,category,string,Value EQ B"],
    }
    assert set(dumped["attributes"][0]) == set(attribute())
    assert TemplateSpec.model_validate(dumped) == spec
    assert TemplateSpec.model_validate_json(spec.model_dump_json()) == spec


def test_fields_get_ed_from_jds_are_ignored_on_put() -> None:
    body = template(attribute(id="a1", createdAt="2022-10-18T04:21:34.124Z"))
    body.update(id="638505f32332c8200dac025e", organizationId="Demo Assure", workspaceId="w", createdBy="u")
    spec = TemplateSpec.model_validate(body)
    assert "id" not in spec.model_dump()


def test_widget_attributes_keep_unknown_fields() -> None:
    spec = TemplateSpec.model_validate(
        template(attribute(widgetAttributes={"type": "table", "icon": "phone"}))
    )
    assert spec.model_dump()["attributes"][0]["widgetAttributes"] == {"type": "table", "icon": "phone"}


def test_names_are_normalised_and_version_may_be_a_number() -> None:
    spec = TemplateSpec.model_validate(
        template(
            attribute(
                metaDataType="STRING", aggregationMode="count", lookBackDurationType="Minutes", version=1.1
            )
        )
    )
    only = spec.attributes[0]
    assert (only.metaDataType, only.aggregationMode, only.lookBackDurationType, only.version) == (
        "string",
        "Count",
        "minutes",
        "1.1",
    )


def test_version_verbose_widget_and_rules_are_optional() -> None:
    body = attribute()
    for key in ("version", "verbose", "widgetAttributes", "rules"):
        del body[key]
    only = TemplateSpec.model_validate(template(body)).attributes[0]
    assert (only.version, only.verbose, only.widgetAttributes, only.rules) == ("0.1", False, None, None)


@pytest.mark.parametrize("rules", [None, {}])
def test_null_or_empty_rules_mean_no_filter(rules: object) -> None:
    only = TemplateSpec.model_validate(template(attribute(rules=rules))).attributes[0]
    assert only.rules is None
    assert only.counts("Closed Queue", {})
    assert not only.counts("Other", {})


def test_verbose_accepts_the_string_true_that_samples_send() -> None:
    assert TemplateSpec.model_validate(template(attribute(verbose="true"))).attributes[0].verbose is True


def test_limit_zero_means_no_limit() -> None:
    assert TemplateSpec.model_validate(template(attribute(limit=0))).attributes[0].effective_limit is None


def test_whitespace_around_strings_is_stripped() -> None:
    only = TemplateSpec.model_validate(
        template(attribute(displayName="  Calls ", metaData=" category "))
    ).attributes[0]
    assert (only.displayName, only.metaData) == ("Calls", "category")


def test_models_are_frozen() -> None:
    spec = TemplateSpec.model_validate(template())
    with pytest.raises(ValidationError):
        spec.name = "other"


def test_rules_may_be_given_as_parsed_objects() -> None:
    condition = parse_condition("Closed Queue,category,string,Value EQ Closed")
    only = AttributeSpec.model_validate(attribute(rules=condition))
    assert only.rules == condition


def test_counts_applies_the_event_filter() -> None:
    only = TemplateSpec.model_validate(template()).attributes[0]
    assert only.counts("Closed Queue", {"category": "Closed"})
    assert not only.counts("Closed Queue", {"category": "Open"})
    assert not only.counts("Payment", {"category": "Closed"})


def test_value_of_casts_the_attribute_field() -> None:
    only = AttributeSpec.model_validate(
        attribute(metaData="order.total", metaDataType="double", aggregationMode="Sum", rules=None)
    )
    assert only.value_of({"order": {"total": "12.5"}}) == 12.5
    assert only.value_of({"order": {"total": "n/a"}}) is None
    assert only.value_of({}) is None


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"lookBackPeriod": 0}, "attributes[0].lookBackPeriod", "greater than or equal to 1"),
        (
            {"lookBackPeriod": 401, "lookBackDurationType": "days"},
            "attributes[0].lookBackPeriod",
            "attribute 'ClosedCaller': the window is at most 400 days, not 401 days",
        ),
        (
            {"lookBackPeriod": 9601, "lookBackDurationType": "hours"},
            "attributes[0].lookBackPeriod",
            "at most 400 days",
        ),
        ({"limit": -1}, "attributes[0].limit", "greater than or equal to 0"),
        ({"limit": MAX_LIMIT + 1}, "attributes[0].limit", f"less than or equal to {MAX_LIMIT}"),
        (
            {"metaDataType": "text"},
            "attributes[0].metaDataType",
            "'string', 'integer', 'double' or 'utc_datetime'",
        ),
        ({"aggregationMode": "Median"}, "attributes[0].aggregationMode", "'Value', 'Count', 'Sum'"),
        (
            {"lookBackDurationType": "weeks"},
            "attributes[0].lookBackDurationType",
            "'minutes', 'hours' or 'days'",
        ),
        (
            {"aggregationMode": "Sum"},
            "attributes[0].aggregationMode",
            "attribute 'ClosedCaller': Sum needs a numeric type, not string",
        ),
        (
            {"aggregationMode": "Max"},
            "attributes[0].aggregationMode",
            "Max needs a numeric or utc_datetime type",
        ),
        ({"event": "  "}, "attributes[0].event", "at least 1 character"),
        ({"displayName": ""}, "attributes[0].displayName", "at least 1 character"),
        ({"metaData": "a..b"}, "attributes[0].metaData", "'a..b' has an empty path segment"),
        (
            {
                "rules": {
                    "logic": "OR",
                    "args": ["Closed Queue,category,string,Value EQ A", "Closed Queue,x,integer,Value GTX 1"],
                }
            },
            "attributes[0].rules.args[1]",
            "unknown operator 'GTX'",
        ),
        (
            {"rules": {"logic": "SINGLE", "condition": "Closed Queue,category,string,Count GTE 2"}},
            "attributes[0].rules.condition",
            "an attribute rule filters single events: use Value, not Count",
        ),
        (
            {"rules": {"logic": "SINGLE", "condition": "Payment,category,string,Value EQ x"}},
            "attributes[0].rules.condition",
            "event 'Payment' differs from the attribute's event 'Closed Queue'",
        ),
        ({"rules": "Closed Queue,category,string,Value EQ"}, "attributes[0].rules", "missing value after EQ"),
        ({"rules": ["x"]}, "attributes[0].rules", "not an array"),
    ],
)
def test_attribute_errors_name_the_field(overrides: dict[str, Any], field: str, reason: str) -> None:
    found = problems(template(attribute(**overrides)))
    assert [p["field"] for p in found] == [field]
    assert reason in found[0]["reason"]


@pytest.mark.parametrize(
    "missing",
    [
        "event",
        "metaDataType",
        "metaData",
        "limit",
        "displayName",
        "lookBackDurationType",
        "lookBackPeriod",
        "aggregationMode",
    ],
)
def test_required_attribute_fields(missing: str) -> None:
    body = attribute()
    del body[missing]
    assert problems(template(body)) == [{"field": f"attributes[0].{missing}", "reason": "is required"}]


def test_errors_carry_the_attribute_index_and_accumulate() -> None:
    found = problems(
        template(attribute(), attribute(displayName="B", lookBackPeriod=0, aggregationMode="Average"))
    )
    assert found == [
        {"field": "attributes[1].lookBackPeriod", "reason": "Input should be greater than or equal to 1"},
        {
            "field": "attributes[1].aggregationMode",
            "reason": "attribute 'B': Average needs a numeric type, not string",
        },
    ]


def test_an_invalid_event_does_not_add_a_rules_error() -> None:
    found = problems(template(attribute(event="")))
    assert [p["field"] for p in found] == ["attributes[0].event"]


def test_duplicate_display_names_are_refused() -> None:
    found = problems(template(attribute(), attribute(displayName="Other"), attribute()))
    assert found == [
        {
            "field": "attributes[2].displayName",
            "reason": "duplicate displayName 'ClosedCaller' (also attributes[0])",
        }
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "at least 1 character"),
        ("a" * 129, "at most 128 characters"),
        (" padded", "must not start or end with whitespace"),
        ("a/b", "must not contain '/'"),
        ("a?b", "must not contain '?'"),
        ("50%", "must not contain '%'"),
        ("a#b", "must not contain '#'"),
        ("a\\b", "must not contain '\\\\'"),
        ("tab\there", "must not contain '\\t'"),
    ],
)
def test_template_name_rules(name: str, reason: str) -> None:
    found = problems(template(name=name))
    assert [p["field"] for p in found] == ["name"]
    assert reason in found[0]["reason"]


@pytest.mark.parametrize(
    "name", ["sample-template", "Repeat Caller (5 min)", "journey-default-template1", "Kundenreise-Ü"]
)
def test_template_names_that_are_accepted(name: str) -> None:
    assert TemplateSpec.model_validate(template(name=name)).name == name


def test_a_template_needs_attributes() -> None:
    assert problems({"name": "t", "attributes": []}) == [
        {"field": "attributes", "reason": "a template needs 1 to 100 attributes, not 0"}
    ]
    assert problems({"name": "t"}) == [{"field": "attributes", "reason": "is required"}]


def test_find_returns_the_attribute_an_action_rule_refers_to() -> None:
    spec = TemplateSpec.model_validate(
        template(
            attribute(),
            attribute(
                displayName="Sum",
                metaData="amount",
                metaDataType="integer",
                aggregationMode="Sum",
                rules=None,
            ),
        )
    )
    assert spec.find("Closed Queue", "amount", "Sum") is spec.attributes[1]
    assert spec.find("Closed Queue", "category", "Count") is spec.attributes[0]
    assert spec.find("Closed Queue", "category", "Value") is None


def test_default_template_counts_contacts_in_24_hours_and_10_days() -> None:
    spec = default_template()
    assert spec.name == DEFAULT_TEMPLATE_NAME == "journey-default-template"
    assert [(a.event, a.aggregationMode, a.lookback, a.effective_limit) for a in spec.attributes] == [
        ("task:new", "Count", timedelta(hours=24), None),
        ("task:new", "Count", timedelta(days=10), None),
    ]
    assert [a.displayName for a in spec.attributes] == [
        "No of times contacted in the last 24 hours",
        "No of times contacted in the last 10 days",
    ]
    assert TemplateSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_validation_errors_flattens_nested_locations() -> None:
    body = copy.deepcopy(template(attribute(widgetAttributes={"type": 5})))
    assert problems(body) == [
        {"field": "attributes[0].widgetAttributes.type", "reason": "Input should be a valid string"}
    ]


def test_nested_rules_in_a_template_keep_their_structure() -> None:
    rules = {
        "logic": "OR",
        "args": [
            "Quote,isEV,string,Value EQ Yes",
            {"logic": "AND", "args": ["Quote,make,string,Value EQ Honda"]},
        ],
    }
    only = AttributeSpec.model_validate(attribute(event="Quote", rules=rules))
    assert isinstance(only.rules, AnyOf)
    assert isinstance(only.rules.children[0], Condition)


def test_a_template_holds_at_most_100_attributes() -> None:
    many = [attribute(displayName=f"a{i}") for i in range(101)]
    assert problems(template(*many)) == [
        {"field": "attributes", "reason": "a template needs 1 to 100 attributes, not 101"}
    ]
    assert len(TemplateSpec.model_validate(template(*many[:100])).attributes) == 100
