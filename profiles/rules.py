"""The JDS rule grammar: parse, render back, and evaluate as an event filter or on profile values.

A leaf is `"<event>,<dataField>,<type>,<Mode> <OP> <value>"`, split on the first three commas only, so the
value may hold commas and spaces. Trees are `{"logic": "SINGLE", "condition": ...}` and
`{"logic": "AND"|"OR", "args": [...]}`, args being leaf strings or trees: at most MAX_DEPTH objects deep,
at most MAX_LEAVES conditions in all. Names of types, modes, operators and logic are accepted in any case and
normalised; a SINGLE collapses into its condition, so `to_json` renders the canonical JDS shape.

Decisions:

- The comparison value casts to the declared type, except Count (an integer, whatever the type) and Average
  (a double). Sum/Average need integer|double; Max/Min need integer|double|utc_datetime. HAS ("contains")
  needs a string value: type string and mode Value or Distinct.
- Ordering (GT, GTE, LT, LTE) on strings is allowed: numerically when both sides are decimal numbers (the JDS
  action sample compares a count with `"Closed Queue,category,string,Value GTE 2"`), otherwise by code point.
  EQ/NEQ on strings are exact and case-sensitive.
- A missing value, or one that does not cast, satisfies NEQ and nothing else.
- As an event filter (`matches_event`, or `event_filter` compiled once per rule; template attributes) a leaf
  compares one event's own field: its event must equal the event type, and its data field, cast to the
  leaf's type, is compared with OP to the value. This is how the JDS documentation describes template rules,
  all of whose examples use Value; a Count or Sum has no meaning for a single event, so event filters must
  use Value (`parse_rules(event=...)` checks).
- On profile values (`evaluate`, actions) a leaf reads the value of the attribute (event, field, mode) through
  `lookup`. A multi-valued result (Value with a limit above 1, Distinct) compares by its newest value, except
  HAS, which looks for the text in the whole JDS `result` string (values comma-joined). An array field in
  event data is compared the same way.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias, get_args

from profiles.aggregation import (
    INT64_MAX,
    INT64_MIN,
    MISSING,
    AggregationMode,
    CastError,
    MetaDataType,
    Typed,
    cast_value,
    get_path,
    mode_type_problem,
    parse_mode,
    parse_type,
    path_reader,
    render_value,
)

Operator = Literal["EQ", "NEQ", "GT", "GTE", "LT", "LTE", "HAS"]
OPERATORS: Final[tuple[Operator, ...]] = get_args(Operator)
_OPERATOR_NAMES: Final[dict[str, Operator]] = {op: op for op in OPERATORS}
MAX_DEPTH: Final = 32
MAX_LEAVES: Final = 256
LEAF_SHAPE: Final = '"<event>,<dataField>,<type>,<Mode> <OP> <value>"'
_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")


class RuleError(ValueError):
    """A rule that does not parse; `path` is its JSON path ("rules.args[1]"), `reason` what is wrong."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Condition:
    event: str
    field: str
    type: MetaDataType
    mode: AggregationMode
    op: Operator
    value: str
    typed: Typed

    @property
    def text(self) -> str:
        """The leaf string, normalised."""
        return f"{self.event},{self.field},{self.type},{self.mode} {self.op} {self.value}"


@dataclass(frozen=True)
class AllOf:
    children: tuple[Rule, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Rule, ...]


Rule: TypeAlias = Condition | AllOf | AnyOf
Lookup: TypeAlias = Callable[[str, str, AggregationMode], object]
"""lookup(event, field, mode) -> the attribute's typed value, a sequence of values, or None when absent."""
EventFilter: TypeAlias = Callable[[Mapping[str, object]], bool]
"""filter(data) -> whether an event with this data passes (see `event_filter`)."""


def parse_condition(text: str, path: str = "rules") -> Condition:
    """Parse one leaf string; errors name `path`."""
    parts = text.split(",", 3)
    if len(parts) != 4:
        raise RuleError(path, f"expected 4 comma-separated parts {LEAF_SHAPE}, got {len(parts)} in {text!r}")
    event, field, type_text, expression = (part.strip() for part in parts)
    if not event:
        raise RuleError(path, "the event is empty")
    if not field or any(not segment for segment in field.split(".")):
        raise RuleError(path, f"data field {field!r} is empty or has an empty path segment")
    try:
        type_ = parse_type(type_text)
    except ValueError as exc:
        raise RuleError(path, str(exc)) from None
    tokens = expression.split(None, 2)
    if not tokens:
        raise RuleError(path, f'missing "<Mode> <OP> <value>" after the type in {text!r}')
    try:
        mode = parse_mode(tokens[0])
    except ValueError as exc:
        raise RuleError(path, str(exc)) from None
    if len(tokens) < 2:
        raise RuleError(path, f"missing operator after {mode}")
    op = _OPERATOR_NAMES.get(tokens[1].upper())
    if op is None:
        raise RuleError(path, f"unknown operator {tokens[1]!r} (expected one of {', '.join(OPERATORS)})")
    if len(tokens) < 3 or not tokens[2].strip():
        raise RuleError(path, f"missing value after {op}")
    value = tokens[2].strip()
    problem = mode_type_problem(mode, type_)
    if problem:
        raise RuleError(path, problem)
    if op == "HAS" and (type_ != "string" or mode not in ("Value", "Distinct")):
        raise RuleError(path, f"HAS needs a string type and mode Value or Distinct, not {type_} {mode}")
    try:
        typed = cast_value(value, _comparison_type(mode, type_))
    except CastError as exc:
        raise RuleError(path, f"value {exc.reason}") from None
    return Condition(event, field, type_, mode, op, value, typed)


def _comparison_type(mode: AggregationMode, type_: MetaDataType) -> MetaDataType:
    return "integer" if mode == "Count" else "double" if mode == "Average" else type_


def parse_rules(obj: object, path: str = "rules", *, event: str | None = None) -> Rule:
    """Parse a JDS rule (a tree, or a bare leaf string); errors name the JSON path under `path`.

    With `event`, the rule is a template attribute's event filter: every condition must use mode Value and
    name that event (a condition on another event could never match).
    """
    counter = [0]
    rule = _parse(obj, path, 1, counter)
    if event is not None:
        for where, condition in _walk(obj, rule, path):
            if condition.mode != "Value":
                reason = f"an attribute rule filters single events: use Value, not {condition.mode}"
                raise RuleError(where, reason)
            if condition.event != event:
                reason = f"event {condition.event!r} differs from the attribute's event {event!r}"
                raise RuleError(where, reason)
    return rule


def _parse(obj: object, path: str, depth: int, counter: list[int]) -> Rule:
    if isinstance(obj, str):
        counter[0] += 1
        if counter[0] > MAX_LEAVES:
            raise RuleError(path, f"more than {MAX_LEAVES} conditions")
        return parse_condition(obj, path)
    if not isinstance(obj, Mapping):
        raise RuleError(path, f'expected a rule string or an object with "logic", not {_json_kind(obj)}')
    if depth > MAX_DEPTH:
        raise RuleError(path, f"rules nest deeper than {MAX_DEPTH} levels")
    logic = obj.get("logic")
    if not isinstance(logic, str):
        raise RuleError(path, 'missing "logic" (expected SINGLE, AND or OR)')
    kind = logic.strip().upper()
    if kind == "SINGLE":
        if obj.get("args"):
            raise RuleError(f"{path}.args", 'SINGLE takes a "condition", not "args"')
        if obj.get("condition") is None:
            raise RuleError(f"{path}.condition", 'SINGLE needs a "condition"')
        return _parse(obj["condition"], f"{path}.condition", depth + 1, counter)
    if kind not in ("AND", "OR"):
        raise RuleError(f"{path}.logic", f"unknown logic {logic!r} (expected SINGLE, AND or OR)")
    if obj.get("condition"):
        raise RuleError(f"{path}.condition", f'{kind} takes "args", not a "condition"')
    args = obj.get("args")
    if not isinstance(args, Sequence) or isinstance(args, str) or not args:
        raise RuleError(f"{path}.args", f"{kind} needs a non-empty array of rules")
    children = tuple(_parse(arg, f"{path}.args[{i}]", depth + 1, counter) for i, arg in enumerate(args))
    return AllOf(children) if kind == "AND" else AnyOf(children)


def _json_kind(obj: object) -> str:
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    if isinstance(obj, int | float):
        return "a number"
    return "an array" if isinstance(obj, Sequence) else type(obj).__name__


def _walk(obj: object, rule: Rule, path: str) -> Iterator[tuple[str, Condition]]:
    """Leaves with the JSON paths they came from (`obj` is the raw JSON `rule` was parsed from)."""
    while isinstance(obj, Mapping) and str(obj.get("logic", "")).strip().upper() == "SINGLE":
        obj, path = obj["condition"], f"{path}.condition"
    if isinstance(rule, Condition):
        yield path, rule
        return
    args = obj["args"] if isinstance(obj, Mapping) else ()
    for i, (arg, child) in enumerate(zip(args, rule.children, strict=True)):
        yield from _walk(arg, child, f"{path}.args[{i}]")


def _render(rule: Rule) -> str | dict[str, object]:
    if isinstance(rule, Condition):
        return rule.text
    return {"logic": "AND" if isinstance(rule, AllOf) else "OR", "args": [_render(c) for c in rule.children]}


def to_json(rule: Rule) -> dict[str, object]:
    """The JDS shape: a leaf as `{"logic": "SINGLE", "condition": ...}`, trees with leaves as strings."""
    rendered = _render(rule)
    return {"logic": "SINGLE", "condition": rendered} if isinstance(rendered, str) else rendered


def leaves(rule: Rule) -> Iterator[Condition]:
    """The conditions, left to right."""
    if isinstance(rule, Condition):
        yield rule
    else:
        for child in rule.children:
            yield from leaves(child)


def matches_event(rule: Rule, event_type: str, data: Mapping[str, object]) -> bool:
    """Whether one event passes a template attribute's filter (every leaf must use mode Value)."""
    if isinstance(rule, AllOf):
        return all(matches_event(child, event_type, data) for child in rule.children)
    if isinstance(rule, AnyOf):
        return any(matches_event(child, event_type, data) for child in rule.children)
    if rule.mode != "Value":
        raise ValueError(f"an event filter needs mode Value, not {rule.mode}: {rule.text!r}")
    if rule.event != event_type:
        return False
    raw = get_path(data, rule.field)
    return _compare(None if raw is MISSING else raw, rule)


def event_filter(rule: Rule, event_type: str) -> EventFilter:
    """`matches_event(rule, event_type, data)` as a function of `data`: the same answers (and errors),
    with the tree walked, the paths split and the comparisons chosen once."""
    if isinstance(rule, AllOf | AnyOf):
        children = tuple(event_filter(child, event_type) for child in rule.children)
        if isinstance(rule, AllOf):
            return lambda data: all(child(data) for child in children)
        return lambda data: any(child(data) for child in children)
    if rule.mode != "Value":
        message = f"an event filter needs mode Value, not {rule.mode}: {rule.text!r}"

        def refuse(data: Mapping[str, object]) -> bool:
            raise ValueError(message)

        return refuse
    if rule.event != event_type:
        return lambda data: False
    return _leaf_filter(rule)


_NUMBER_TESTS: Final[dict[Operator, Callable[[Any, Any], bool]]] = {
    "EQ": operator.eq, "NEQ": operator.ne, "GT": operator.gt, "GTE": operator.ge, "LT": operator.lt,
    "LTE": operator.le,
}  # fmt: skip


def _leaf_filter(cond: Condition) -> EventFilter:
    """One Value condition on an event's data: `_compare` of its field, with quick paths for a string
    compared for equality with a string, and a number with a number (what `_compare` does to them)."""
    read = path_reader(cond.field)
    typed = cond.typed

    def general(data: Mapping[str, object]) -> bool:
        raw = read(data)
        return _compare(None if raw is MISSING else raw, cond)

    if type(typed) is str and cond.op in ("EQ", "NEQ"):
        equal = cond.op == "EQ"

        def string_equality(data: Mapping[str, object]) -> bool:
            raw = read(data)
            if type(raw) is str:
                return (raw == typed) == equal
            return _compare(None if raw is MISSING else raw, cond)

        return string_equality
    if type(typed) in (int, float) and cond.op in _NUMBER_TESTS:
        test = _NUMBER_TESTS[cond.op]

        def number(data: Mapping[str, object]) -> bool:
            raw = read(data)
            if (type(raw) is int and INT64_MIN <= raw <= INT64_MAX) or (
                type(raw) is float and math.isfinite(raw)
            ):
                return test(raw, typed)
            return _compare(None if raw is MISSING else raw, cond)

        return number
    return general


def evaluate(rule: Rule, lookup: Lookup) -> bool:
    """Whether profile values satisfy an action rule; `lookup(event, field, mode)` gives each value."""
    if isinstance(rule, AllOf):
        return all(evaluate(child, lookup) for child in rule.children)
    if isinstance(rule, AnyOf):
        return any(evaluate(child, lookup) for child in rule.children)
    return _compare(lookup(rule.event, rule.field, rule.mode), rule)


def _text(value: object) -> str | None:
    try:
        return str(cast_value(value, "string"))
    except CastError:
        return None


def _compare(actual: object, cond: Condition) -> bool:
    if isinstance(actual, list | tuple):
        if cond.op == "HAS" and actual:
            texts = [_text(v) for v in actual]
            return cond.value in ",".join(t for t in texts if t is not None)
        actual = actual[0] if actual else None
    if actual is None:
        return cond.op == "NEQ"
    if cond.op == "HAS":
        text = _text(actual)
        return text is not None and cond.value in text
    try:
        left = _coerce(actual, cond)
    except CastError:
        return cond.op == "NEQ"
    if cond.op in ("EQ", "NEQ"):
        return (left == cond.typed) == (cond.op == "EQ")
    order = _order(left, cond.typed)
    return {"GT": order > 0, "GTE": order >= 0, "LT": order < 0, "LTE": order <= 0}[cond.op]


def _coerce(actual: object, cond: Condition) -> Typed:
    """The looked-up or event value in the kind the condition compares: number, date-time or string."""
    if isinstance(cond.typed, int | float):
        if isinstance(actual, float):
            return cast_value(actual, "double")
        if isinstance(actual, int | str) and not isinstance(actual, bool):
            try:
                return cast_value(actual, "integer")
            except CastError:
                return cast_value(actual, "double")
        raise CastError(f"{actual!r} is not a number")
    return cast_value(actual, "utc_datetime" if isinstance(cond.typed, datetime) else "string")


def _order(left: Typed, right: Typed) -> int:
    """-1, 0 or 1. Strings order numerically when both are decimal numbers (see the module docstring)."""
    a: Typed = left
    b: Typed = right
    if isinstance(a, str) and isinstance(b, str):
        if a == b:
            return 0
        if _NUMBER.fullmatch(a) and _NUMBER.fullmatch(b):
            a, b = float(a), float(b)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a > b) - (a < b)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return (a > b) - (a < b)
    raise CastError(f"cannot compare {render_value(a)!r} with {render_value(b)!r}")
