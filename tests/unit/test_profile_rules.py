"""The JDS rule grammar: parsing, errors with their JSON paths, rendering, and both evaluation uses."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiles.rules import (
    MAX_DEPTH,
    MAX_LEAVES,
    AllOf,
    AnyOf,
    Condition,
    Lookup,
    Rule,
    RuleError,
    evaluate,
    event_filter,
    leaves,
    matches_event,
    parse_condition,
    parse_rules,
    to_json,
)


def leaf(text: str) -> Condition:
    return parse_condition(text)


def error_of(obj: object, **kwargs: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        parse_rules(obj, **kwargs)
    return info.value


# --- leaves ------------------------------------------------------------------------------------------


def test_leaf_parses_into_its_parts_with_a_typed_value() -> None:
    assert leaf("item buy,price,integer,Sum GT 100") == Condition(
        "item buy", "price", "integer", "Sum", "GT", "100", 100
    )


def test_leaf_value_keeps_commas_and_spaces() -> None:
    condition = leaf("task:new,note,string,Value EQ late, again  and again")
    assert condition.event == "task:new"
    assert condition.value == condition.typed == "late, again  and again"


def test_leaf_names_are_normalised_in_any_case() -> None:
    condition = leaf(" Payment , category , STRING , value eq Water ")
    assert (condition.event, condition.field, condition.type, condition.mode, condition.op) == (
        "Payment",
        "category",
        "string",
        "Value",
        "EQ",
    )
    assert condition.text == "Payment,category,string,Value EQ Water"


def test_leaf_accepts_dotted_fields() -> None:
    assert leaf("Order,customer.address.city,string,Value EQ Oslo").field == "customer.address.city"


@pytest.mark.parametrize("op", ["EQ", "NEQ", "GT", "GTE", "LT", "LTE"])
@pytest.mark.parametrize(
    ("type_", "value", "typed"),
    [
        ("integer", "7", 7),
        ("double", "2.5", 2.5),
        ("string", "abc", "abc"),
        ("utc_datetime", "2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_every_ordering_operator_parses_for_every_type(
    op: str, type_: str, value: str, typed: object
) -> None:
    condition = leaf(f"e,f,{type_},Value {op} {value}")
    assert condition.op == op and condition.typed == typed


def test_count_value_is_an_integer_whatever_the_type() -> None:
    assert leaf("Closed Queue,queue,string,Count GTE 2").typed == 2
    assert leaf("x,when,utc_datetime,Count LT 3").typed == 3


def test_average_value_is_a_double() -> None:
    condition = leaf("Order,total,integer,Average GT 2.5")
    assert condition.typed == 2.5 and isinstance(condition.typed, float)


def test_has_parses_for_string_value_and_distinct() -> None:
    assert leaf("Chat,text,string,Value HAS refund").op == "HAS"
    assert leaf("Chat,topic,string,Distinct HAS billing").mode == "Distinct"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "Payment,category,string",
            'expected 4 comma-separated parts "<event>,<dataField>,<type>,<Mode> <OP> <value>"',
        ),
        ("Payment", "got 1 in 'Payment'"),
        (" ,category,string,Value EQ x", "the event is empty"),
        ("Payment,,string,Value EQ x", "data field '' is empty"),
        ("Payment,a..b,string,Value EQ x", "data field 'a..b' is empty or has an empty path segment"),
        (
            "Payment,category,text,Value EQ x",
            "unknown type 'text' (expected one of string, integer, double, utc_datetime)",
        ),
        ("Payment,category,string,", 'missing "<Mode> <OP> <value>" after the type'),
        (
            "Payment,category,string,Median EQ x",
            "unknown aggregation mode 'Median' (expected one of Value, Count",
        ),
        ("Payment,category,string,Value", "missing operator after Value"),
        (
            "item buy,price,integer,Sum GTX 100",
            "unknown operator 'GTX' (expected one of EQ, NEQ, GT, GTE, LT, LTE, HAS)",
        ),
        ("item buy,price,integer,Sum GT", "missing value after GT"),
        ("item buy,price,integer,Sum GT   ", "missing value after GT"),
        ("item buy,price,integer,Sum GT abc", "value 'abc' is not an integer"),
        ("item buy,price,integer,Value EQ 4.0", "value '4.0' is not an integer"),
        ("item buy,price,double,Value EQ NaN", "value 'NaN' is not a number"),
        ("x,t,utc_datetime,Value GT 2024-01-01", "value '2024-01-01' is not an RFC 3339 date-time"),
        ("Closed Queue,queue,string,Count GTE two", "value 'two' is not an integer"),
        ("Payment,category,string,Sum GT 1", "Sum needs a numeric type, not string"),
        ("Payment,category,string,Average GT 1", "Average needs a numeric type, not string"),
        ("Payment,category,string,Max GT 1", "Max needs a numeric or utc_datetime type, not string"),
        (
            "Order,total,integer,Value HAS 1",
            "HAS needs a string type and mode Value or Distinct, not integer Value",
        ),
        (
            "Order,name,string,Count HAS 1",
            "HAS needs a string type and mode Value or Distinct, not string Count",
        ),
    ],
)
def test_leaf_errors_name_the_bad_part(text: str, reason: str) -> None:
    error = error_of({"logic": "OR", "args": ["ok,f,string,Value EQ y", text]})
    assert error.path == "rules.args[1]"
    assert reason in error.reason
    assert str(error).startswith("rules.args[1]: ")


def test_the_documented_operator_error_reads_in_full() -> None:
    error = error_of({"logic": "OR", "args": ["a,b,string,Value EQ x", "item buy,price,integer,Sum GTX 100"]})
    assert (
        str(error) == "rules.args[1]: unknown operator 'GTX' (expected one of EQ, NEQ, GT, GTE, LT, LTE, HAS)"
    )


# --- trees -------------------------------------------------------------------------------------------


def test_single_collapses_into_its_condition() -> None:
    rule = parse_rules({"logic": "SINGLE", "condition": "Closed Queue,category,string,Value EQ Closed"})
    assert rule == leaf("Closed Queue,category,string,Value EQ Closed")


def test_the_documented_nested_template_rule_parses() -> None:
    rule = parse_rules(
        {
            "args": [
                "Quote,isEV,string,Value EQ Yes",
                "Quote,isEV,string,Value EQ No",
                {
                    "args": ["Quote,make,string,Value EQ Honda", "Quote,model,string,Value EQ CR-V"],
                    "logic": "AND",
                },
            ],
            "logic": "OR",
        }
    )
    assert rule == AnyOf(
        (
            leaf("Quote,isEV,string,Value EQ Yes"),
            leaf("Quote,isEV,string,Value EQ No"),
            AllOf((leaf("Quote,make,string,Value EQ Honda"), leaf("Quote,model,string,Value EQ CR-V"))),
        )
    )


def test_logic_is_case_insensitive_and_args_may_mix_strings_and_trees() -> None:
    rule = parse_rules(
        {
            "logic": "or",
            "args": ["a,b,string,Value EQ 1", {"logic": "Single", "condition": "a,c,string,Value EQ 2"}],
        }
    )
    assert rule == AnyOf((leaf("a,b,string,Value EQ 1"), leaf("a,c,string,Value EQ 2")))


def test_a_bare_leaf_string_is_a_rule() -> None:
    assert parse_rules("a,b,integer,Count GT 1") == leaf("a,b,integer,Count GT 1")


def test_single_of_a_tree_is_that_tree() -> None:
    tree = {"logic": "AND", "args": ["a,b,string,Value EQ 1"]}
    assert parse_rules({"logic": "SINGLE", "condition": tree}) == AllOf((leaf("a,b,string,Value EQ 1"),))


@pytest.mark.parametrize(
    ("obj", "path", "reason"),
    [
        (None, "rules", 'expected a rule string or an object with "logic", not null'),
        (["a,b,string,Value EQ 1"], "rules", "not an array"),
        (42, "rules", "not a number"),
        ({"args": ["a,b,string,Value EQ 1"]}, "rules", 'missing "logic" (expected SINGLE, AND or OR)'),
        ({"logic": "XOR", "args": []}, "rules.logic", "unknown logic 'XOR' (expected SINGLE, AND or OR)"),
        ({"logic": "SINGLE"}, "rules.condition", 'SINGLE needs a "condition"'),
        (
            {"logic": "SINGLE", "condition": "a,b,string,Value EQ 1", "args": ["x"]},
            "rules.args",
            'not "args"',
        ),
        ({"logic": "AND", "args": []}, "rules.args", "AND needs a non-empty array of rules"),
        ({"logic": "OR", "args": "a,b,string,Value EQ 1"}, "rules.args", "OR needs a non-empty array"),
        ({"logic": "OR", "args": ["a,b,string,Value EQ 1"], "condition": "x"}, "rules.condition", "not a"),
        (
            {"logic": "AND", "args": ["a,b,string,Value EQ 1", {"logic": "OR", "args": [7]}]},
            "rules.args[1].args[0]",
            "not a number",
        ),
        (
            {"logic": "SINGLE", "condition": {"logic": "AND", "args": ["bad"]}},
            "rules.condition.args[0]",
            "expected 4 comma-separated parts",
        ),
    ],
)
def test_tree_errors_name_their_json_path(obj: object, path: str, reason: str) -> None:
    error = error_of(obj)
    assert error.path == path
    assert reason in error.reason


def test_empty_extras_are_tolerated() -> None:
    rule = parse_rules({"logic": "SINGLE", "condition": "a,b,string,Value EQ 1", "args": []})
    assert rule == leaf("a,b,string,Value EQ 1")
    assert parse_rules({"logic": "AND", "args": ["a,b,string,Value EQ 1"], "condition": None}) == AllOf(
        (leaf("a,b,string,Value EQ 1"),)
    )


def test_a_custom_root_path_prefixes_errors() -> None:
    assert error_of({"logic": "AND", "args": ["x"]}, path="body.rules").path == "body.rules.args[0]"


def nest(depth: int) -> object:
    obj: object = "a,b,string,Value EQ 1"
    for _ in range(depth):
        obj = {"logic": "AND", "args": [obj]}
    return obj


def test_depth_is_capped() -> None:
    parse_rules(nest(MAX_DEPTH))
    error = error_of(nest(MAX_DEPTH + 1))
    assert f"rules nest deeper than {MAX_DEPTH} levels" in error.reason
    assert error.path.startswith("rules.args[0].args[0]")


def test_leaf_count_is_capped() -> None:
    parse_rules({"logic": "OR", "args": ["a,b,string,Value EQ 1"] * MAX_LEAVES})
    error = error_of({"logic": "OR", "args": ["a,b,string,Value EQ 1"] * (MAX_LEAVES + 1)})
    assert error.path == f"rules.args[{MAX_LEAVES}]"
    assert error.reason == f"more than {MAX_LEAVES} conditions"


# --- event filters (template attributes) -------------------------------------------------------------


def test_event_filter_rules_must_use_value() -> None:
    error = error_of(
        {"logic": "SINGLE", "condition": "Closed Queue,queue,string,Count GTE 2"}, event="Closed Queue"
    )
    assert str(error) == "rules.condition: an attribute rule filters single events: use Value, not Count"


def test_event_filter_rules_must_name_the_attributes_event() -> None:
    rule = {
        "logic": "OR",
        "args": ["Quote,a,string,Value EQ 1", {"logic": "SINGLE", "condition": "Order,a,string,Value EQ 1"}],
    }
    error = error_of(rule, event="Quote")
    assert error.path == "rules.args[1].condition"
    assert error.reason == "event 'Order' differs from the attribute's event 'Quote'"


def test_event_filter_rules_pass_the_check_when_consistent() -> None:
    rule = parse_rules(
        {"logic": "SINGLE", "condition": "Closed Queue,category,string,Value EQ Closed"}, event="Closed Queue"
    )
    assert isinstance(rule, Condition)


CLOSED = leaf("Closed Queue,category,string,Value EQ Closed")


def test_event_filter_compares_the_events_own_field() -> None:
    assert matches_event(CLOSED, "Closed Queue", {"category": "Closed"})
    assert not matches_event(CLOSED, "Closed Queue", {"category": "Open"})
    assert not matches_event(CLOSED, "Closed Queue", {"category": "closed"})


def test_event_filter_needs_the_event_type_to_match() -> None:
    assert not matches_event(CLOSED, "Payment Queue", {"category": "Closed"})


def test_event_filter_missing_or_uncastable_field_only_satisfies_neq() -> None:
    neq = leaf("Order,price,integer,Value NEQ 5")
    gt = leaf("Order,price,integer,Value GT 5")
    for data in ({}, {"price": None}, {"price": "lots"}, {"price": True}):
        assert matches_event(neq, "Order", data)
        assert not matches_event(gt, "Order", data)


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("Order,price,integer,Value GT 100", {"price": 150}, True),
        ("Order,price,integer,Value GT 100", {"price": "100"}, False),
        ("Order,price,integer,Value GTE 100", {"price": "100"}, True),
        ("Order,price,integer,Value LT 100", {"price": 99}, True),
        ("Order,price,integer,Value LTE 100", {"price": 100.0}, True),
        ("Order,price,integer,Value EQ 100", {"price": 100}, True),
        ("Order,price,integer,Value NEQ 100", {"price": 101}, True),
        ("Order,price,double,Value GT 2.5", {"price": 3}, True),
        ("Order,price,double,Value EQ 3", {"price": "3.0"}, True),
        (
            "Order,when,utc_datetime,Value GT 2024-01-01T00:00:00Z",
            {"when": "2024-01-01T01:00:00+00:00"},
            True,
        ),
        (
            "Order,when,utc_datetime,Value EQ 2024-01-01T00:00:00Z",
            {"when": "2024-01-01T02:00:00+02:00"},
            True,
        ),
        ("Order,when,utc_datetime,Value LT 2024-01-01T00:00:00Z", {"when": 1704067199000}, True),
        ("Order,name,string,Value HAS cycle", {"name": "Bicycle"}, True),
        ("Order,name,string,Value HAS Cycle", {"name": "Bicycle"}, False),
        ("Order,name,string,Value GT b", {"name": "c"}, True),
        ("Order,name,string,Value GT 9", {"name": "10"}, True),
        ("Order,name,string,Value EQ 2", {"name": "2.0"}, False),
        ("Order,code,string,Value EQ 42", {"code": 42}, True),
        ("Order,vip,string,Value EQ true", {"vip": True}, True),
        ("Order,customer.tier,string,Value EQ gold", {"customer": {"tier": "gold"}}, True),
    ],
)
def test_event_filter_operator_semantics(text: str, data: Mapping[str, object], expected: bool) -> None:
    assert matches_event(leaf(text), "Order", data) is expected


def test_event_filter_on_an_array_field_compares_like_a_multi_valued_result() -> None:
    assert matches_event(leaf("Order,tags,string,Value HAS gift"), "Order", {"tags": ["vip", "gift"]})
    assert matches_event(leaf("Order,tags,string,Value EQ vip"), "Order", {"tags": ["vip", "gift"]})
    assert not matches_event(leaf("Order,tags,string,Value EQ gift"), "Order", {"tags": ["vip", "gift"]})
    assert not matches_event(leaf("Order,tags,string,Value EQ gift"), "Order", {"tags": []})


def test_event_filter_and_or() -> None:
    rule = parse_rules(
        {
            "logic": "OR",
            "args": [
                "Quote,isEV,string,Value EQ Yes",
                {
                    "logic": "AND",
                    "args": ["Quote,make,string,Value EQ Honda", "Quote,model,string,Value EQ CR-V"],
                },
            ],
        }
    )
    assert matches_event(rule, "Quote", {"isEV": "Yes"})
    assert matches_event(rule, "Quote", {"isEV": "No", "make": "Honda", "model": "CR-V"})
    assert not matches_event(rule, "Quote", {"isEV": "No", "make": "Honda", "model": "Civic"})


def test_event_filter_refuses_a_non_value_leaf() -> None:
    with pytest.raises(ValueError, match="an event filter needs mode Value, not Count"):
        matches_event(leaf("Order,price,integer,Count GT 1"), "Order", {})


# --- profile-value rules (actions) -------------------------------------------------------------------


def lookup_from(values: Mapping[tuple[str, str, str], object]) -> Lookup:
    return lambda event, field, mode: values.get((event, field, mode))


def holds(text: str, value: object) -> bool:
    condition = leaf(text)
    return evaluate(condition, lookup_from({(condition.event, condition.field, condition.mode): value}))


def test_evaluate_passes_event_field_and_mode_to_lookup() -> None:
    seen: list[tuple[str, str, str]] = []

    def lookup(event: str, field: str, mode: str) -> object:
        seen.append((event, field, mode))
        return 3

    assert evaluate(leaf("Closed Queue,queue,string,Count GTE 2"), lookup)
    assert seen == [("Closed Queue", "queue", "Count")]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("EQ", 2, True),
        ("NEQ", 2, False),
        ("GT", 1, True),
        ("GTE", 2, True),
        ("LT", 2, False),
        ("LTE", 2, True),
    ],
)
def test_count_comparisons(op: str, value: int, expected: bool) -> None:
    assert holds(f"Closed Queue,queue,string,Count {op} {value}", 2) is expected


def test_missing_value_only_satisfies_neq() -> None:
    for op in ("EQ", "GT", "GTE", "LT", "LTE"):
        assert not holds(f"Order,price,integer,Sum {op} 0", None)
    assert holds("Order,price,integer,Sum NEQ 0", None)
    assert not holds("Chat,text,string,Value HAS x", None)
    assert holds("Chat,text,string,Value NEQ x", ())


def test_uncastable_value_only_satisfies_neq() -> None:
    assert not holds("Order,price,integer,Max GT 1", "lots")
    assert holds("Order,price,integer,Max NEQ 1", "lots")
    assert not holds("Order,price,integer,Max GT 1", True)


def test_numeric_comparisons_mix_ints_floats_and_numeric_strings() -> None:
    assert holds("Order,price,integer,Sum GT 100", 101)
    assert holds("Order,price,double,Sum GT 100.5", 101)
    assert holds("Order,price,integer,Average GTE 2.5", 2.5)
    assert holds("Order,price,integer,Max EQ 7", "7")
    assert holds("Order,price,double,Min LT 1", "0.5")


def test_the_documented_action_rule_compares_a_count_as_a_number() -> None:
    rule = "Closed Queue,category,string,Value GTE 2"
    assert holds(rule, 2) and holds(rule, 10) and holds(rule, "10")
    assert not holds(rule, 1)


def test_string_ordering_is_by_code_point_unless_both_are_numbers() -> None:
    assert holds("Order,tier,string,Value GT silver", "tin")
    assert not holds("Order,tier,string,Value GT silver", "gold")
    assert holds("Order,tier,string,Value LT b", "B")


def test_datetime_comparisons() -> None:
    assert holds("Order,when,utc_datetime,Max GT 2024-01-01T00:00:00Z", datetime(2024, 2, 1, tzinfo=UTC))
    assert holds("Order,when,utc_datetime,Min LTE 2024-01-01T00:00:00Z", "2023-12-31T23:00:00Z")
    assert not holds("Order,when,utc_datetime,Min LTE 2024-01-01T00:00:00Z", "soon")


def test_multi_valued_results_compare_their_newest_value() -> None:
    assert holds("Payment,status,string,Value EQ overdue", ("overdue", "paid"))
    assert not holds("Payment,status,string,Value EQ paid", ("overdue", "paid"))
    assert holds("Payment,amount,integer,Value GT 10", [20, 5])


def test_has_searches_the_whole_jds_result_string() -> None:
    assert holds("Chat,topic,string,Distinct HAS billing", ("refund", "billing"))
    assert holds("Chat,topic,string,Distinct HAS refund,bill", ("refund", "billing"))
    assert not holds("Chat,topic,string,Distinct HAS shipping", ("refund", "billing"))
    assert holds("Chat,text,string,Value HAS late", "payment is late")


def test_and_or_on_profile_values() -> None:
    rule = parse_rules(
        {"logic": "OR", "args": ["item buy,price,integer,Sum GT 100", "item buy,sku,integer,Count GT 5"]}
    )
    assert evaluate(rule, lookup_from({("item buy", "price", "Sum"): 150}))
    assert evaluate(rule, lookup_from({("item buy", "sku", "Count"): 6}))
    assert not evaluate(
        rule, lookup_from({("item buy", "price", "Sum"): 50, ("item buy", "sku", "Count"): 5})
    )
    both = AllOf(rule.children) if isinstance(rule, AnyOf) else rule
    assert evaluate(both, lookup_from({("item buy", "price", "Sum"): 150, ("item buy", "sku", "Count"): 6}))
    assert not evaluate(both, lookup_from({("item buy", "price", "Sum"): 150}))


def test_leaves_lists_conditions_left_to_right() -> None:
    rule = parse_rules(
        {
            "logic": "AND",
            "args": [
                "a,b,string,Value EQ 1",
                {"logic": "OR", "args": ["c,d,string,Value EQ 2", "e,f,string,Value EQ 3"]},
            ],
        }
    )
    assert [c.event for c in leaves(rule)] == ["a", "c", "e"]
    assert list(leaves(CLOSED)) == [CLOSED]


# --- rendering ---------------------------------------------------------------------------------------


def test_to_json_renders_the_jds_shape() -> None:
    assert to_json(leaf("closed queue,category,String,value eq Closed")) == {
        "logic": "SINGLE",
        "condition": "closed queue,category,string,Value EQ Closed",
    }
    tree = {
        "logic": "OR",
        "args": ["a,b,string,Value EQ 1", {"logic": "AND", "args": ["c,d,integer,Count GT 2"]}],
    }
    assert to_json(parse_rules(tree)) == tree


_name = st.text(
    st.characters(blacklist_characters=",", blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=8,
)
_field = st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True), min_size=1, max_size=3).map(
    ".".join
)


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    type_, mode, value = draw(
        st.one_of(
            st.tuples(st.just("string"), st.sampled_from(["Value", "Distinct"]), _name),
            st.tuples(
                st.sampled_from(["integer", "double"]),
                st.sampled_from(["Value", "Sum", "Max", "Min"]),
                st.integers(-(10**6), 10**6).map(str),
            ),
            st.tuples(
                st.sampled_from(["string", "utc_datetime"]), st.just("Count"), st.integers(0, 99).map(str)
            ),
            st.tuples(st.just("utc_datetime"), st.just("Max"), st.just("2024-05-06T07:08:09.123Z")),
        )
    )
    op = draw(
        st.sampled_from(
            ["EQ", "NEQ", "GT", "GTE", "LT", "LTE"]
            + (["HAS"] if type_ == "string" and mode != "Count" else [])
        )
    )
    return parse_condition(f"{draw(_name)},{draw(_field)},{type_},{mode} {op} {value}")


rules = st.recursive(
    conditions(),
    lambda children: (
        st.builds(AllOf, st.lists(children, min_size=1, max_size=3).map(tuple))
        | st.builds(AnyOf, st.lists(children, min_size=1, max_size=3).map(tuple))
    ),
    max_leaves=12,
)


@given(rules)
def test_parse_of_to_json_round_trips(rule: Rule) -> None:
    assert parse_rules(to_json(rule)) == rule


@given(conditions())
def test_leaf_text_round_trips(condition: Condition) -> None:
    assert parse_condition(condition.text) == condition


# --- event_filter: matches_event compiled once -------------------------------------------------------

_FILTER_VALUES = {
    "string": ["Closed", "10", "abc", "2.5", "vip"],
    "integer": ["5", "-3", "0", "9223372036854775807"],
    "double": ["2.5", "0", "-1e3", "1e308"],
    "utc_datetime": ["2026-11-21T11:30:00Z"],
}
_FILTER_RAW: list[object] = [
    None, True, 0, 5, -3, 2**63, 10, 2.5, -0.0, float("nan"), float("inf"), "Closed", "closed", "10", " 5 ",
    "2.5", "abc", "vip,gift", "2026-11-21T11:30:00Z", ["vip", "gift"], [], [5, 6], {"x": 1},
    datetime(2026, 11, 21, 11, 30, tzinfo=UTC),
]  # fmt: skip


def _random_filter(rng: random.Random, depth: int = 0) -> Rule:
    if depth < 3 and rng.random() < 0.4:
        children = tuple(_random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3)))
        return AllOf(children) if rng.random() < 0.5 else AnyOf(children)
    type_ = rng.choice(list(_FILTER_VALUES))
    ops = ["EQ", "NEQ", "GT", "GTE", "LT", "LTE"] + (["HAS"] if type_ == "string" else [])
    event = rng.choice(["Order", "Order", "Order", "Refund"])
    field = rng.choice(["category", "price", "order.total", "items.0", "a.b"])
    return leaf(f"{event},{field},{type_},Value {rng.choice(ops)} {rng.choice(_FILTER_VALUES[type_])}")


def _random_event_data(rng: random.Random) -> dict[str, object]:
    data: dict[str, object] = {
        k: rng.choice(_FILTER_RAW) for k in ("category", "price") if rng.random() < 0.8
    }
    if rng.random() < 0.5:
        data["order"] = {"total": rng.choice(_FILTER_RAW)}
    if rng.random() < 0.3:
        data["items"] = [rng.choice(_FILTER_RAW) for _ in range(rng.randint(0, 2))]
    if rng.random() < 0.2:
        data["a.b"] = rng.choice(_FILTER_RAW)
    return data


def test_event_filter_answers_as_matches_event_does() -> None:
    rng = random.Random(1121)
    for _ in range(500):
        rule = _random_filter(rng)
        compiled = event_filter(rule, "Order")
        for _ in range(10):
            data = _random_event_data(rng)
            assert compiled(data) is matches_event(rule, "Order", data), (to_json(rule), data)


def test_event_filter_refuses_a_leaf_that_is_not_value_when_it_reaches_it() -> None:
    count = leaf("Order,price,integer,Count GT 1")
    rule = AnyOf((leaf("Order,price,integer,Value EQ 5"), count))
    compiled = event_filter(rule, "Order")
    assert compiled({"price": 5}) and matches_event(rule, "Order", {"price": 5})
    for check in (compiled, lambda data: matches_event(rule, "Order", data)):
        with pytest.raises(ValueError, match="needs mode Value, not Count"):
            check({"price": 4})
