"""Profile view templates as the JDS template API sends them (pydantic v2, no I/O).

Field names are the JDS ones (`metaDataType`, `lookBackPeriod`, ...), so `model_dump()` is the wire shape
and `rules` dumps back to its JDS JSON. Decisions:

- Unknown fields are ignored, not refused: JDS clients PUT back what they GET (`id`, `organizationId`,
  `createdAt`, ...). `widgetAttributes` is opaque UI configuration and keeps every field it is given.
- Names of types, modes and units are accepted in any case and normalised; `version` may be a number.
  `version` (default "0.1") and `verbose` (default false) may be omitted; JDS requires them, we need not.
- `lookBackPeriod` >= 1 and the window at most 400 days; `limit` from 0 to 10000, 0 meaning no limit
  (`effective_limit` is None): only the newest `limit` matching events in the window are aggregated.
- The aggregation mode must fit the type (Sum of a string is refused, naming the attribute).
- `rules` (optional, null = every event of the type counts) is the attribute's event filter: each condition
  must use mode Value and name the attribute's event.
- Template names: 1-128 characters, no leading or trailing space, none of `/ \\ ? # %` nor control
  characters (names stand in for ids in URL paths). displayNames must be unique within a template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from profiles.aggregation import (
    AggregationMode,
    LookbackUnit,
    MetaDataType,
    Typed,
    extract_value,
    lookback,
    mode_type_problem,
    parse_mode,
    parse_type,
    parse_unit,
)
from profiles.rules import AllOf, AnyOf, Condition, Rule, RuleError, matches_event, parse_rules, to_json

DEFAULT_TEMPLATE_NAME: Final = "journey-default-template"
MAX_LIMIT: Final = 10_000
MAX_LOOKBACK: Final = timedelta(days=400)
MAX_ATTRIBUTES: Final = 100
_BAD_NAME_CHARS = re.compile(r"[/\\?#%\x00-\x1f\x7f]")


def _problem(info: ValidationInfo, reason: str) -> PydanticCustomError:
    """An error whose message names the attribute by its displayName when that is known."""
    name = info.data.get("displayName")
    message = f"attribute {name!r}: {reason}" if isinstance(name, str) else reason
    return PydanticCustomError("attribute", "{reason}", {"reason": message})


def _rules_error(exc: RuleError) -> PydanticCustomError:
    sub = exc.path.removeprefix("rules").lstrip(".")
    return PydanticCustomError("rule", "{reason}", {"reason": exc.reason, "path": sub})


def _validate_rules(value: object, info: ValidationInfo) -> Rule | None:
    if value is None or (isinstance(value, Mapping) and not value):
        return None
    if isinstance(value, Condition | AllOf | AnyOf):
        value = to_json(value)
    event = info.data.get("event")  # absent when the event itself is invalid (and reported)
    try:
        return parse_rules(value, event=event if isinstance(event, str) else None)
    except RuleError as exc:
        raise _rules_error(exc) from None


def _dump_rules(rule: Rule | None) -> dict[str, object] | None:
    return None if rule is None else to_json(rule)


RulesField = Annotated[
    Rule | None,
    PlainValidator(_validate_rules),
    PlainSerializer(_dump_rules),
    WithJsonSchema({"anyOf": [{"type": "object"}, {"type": "null"}], "description": "JDS rule tree"}),
]


class WidgetAttributes(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    type: str | None = None


def _normalise(parse: Any, value: object) -> object:
    if isinstance(value, str):
        try:
            return parse(value)
        except ValueError:
            return value  # the Literal check then names the expected values
    return value


class AttributeSpec(BaseModel):
    """One attribute of a template (JDS ProfileViewAttributeRequestModel)."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    version: str = "0.1"
    event: str = Field(min_length=1, max_length=256)
    metaDataType: MetaDataType
    metaData: str = Field(min_length=1, max_length=256)
    limit: int = Field(ge=0, le=MAX_LIMIT)
    displayName: str = Field(min_length=1, max_length=256)
    lookBackDurationType: LookbackUnit
    lookBackPeriod: int = Field(ge=1)
    aggregationMode: AggregationMode
    verbose: bool = False
    widgetAttributes: WidgetAttributes | None = None
    rules: RulesField = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("metaDataType", mode="before")
    @classmethod
    def _type_name(cls, value: object) -> object:
        return _normalise(parse_type, value)

    @field_validator("aggregationMode", mode="before")
    @classmethod
    def _mode_name(cls, value: object) -> object:
        return _normalise(parse_mode, value)

    @field_validator("lookBackDurationType", mode="before")
    @classmethod
    def _unit_name(cls, value: object) -> object:
        return _normalise(parse_unit, value)

    @field_validator("metaData")
    @classmethod
    def _dotted_path(cls, value: str) -> str:
        if any(not segment for segment in value.split(".")):
            raise ValueError(f"{value!r} has an empty path segment")
        return value

    @field_validator("lookBackPeriod")
    @classmethod
    def _window_cap(cls, value: int, info: ValidationInfo) -> int:
        unit = info.data.get("lookBackDurationType")
        if unit is not None and lookback(value, unit) > MAX_LOOKBACK:
            raise _problem(info, f"the window is at most 400 days, not {value} {unit}")
        return value

    @field_validator("aggregationMode")
    @classmethod
    def _fits_type(cls, value: AggregationMode, info: ValidationInfo) -> AggregationMode:
        type_ = info.data.get("metaDataType")
        problem = mode_type_problem(value, type_) if type_ is not None else None
        if problem:
            raise _problem(info, problem)
        return value

    @property
    def lookback(self) -> timedelta:
        return lookback(self.lookBackPeriod, self.lookBackDurationType)

    @property
    def effective_limit(self) -> int | None:
        """The number of newest events aggregated, or None (limit 0) for all events in the window."""
        return self.limit or None

    def counts(self, event_type: str, data: Mapping[str, object]) -> bool:
        """Whether an event of this type and data is one this attribute aggregates (time aside)."""
        if event_type != self.event:
            return False
        return self.rules is None or matches_event(self.rules, event_type, data)

    def value_of(self, data: Mapping[str, object]) -> Typed | None:
        """The event's value for this attribute, None when the field is missing or does not cast."""
        return extract_value(data, self.metaData, self.metaDataType)


class TemplateSpec(BaseModel):
    """A profile view template (JDS CreateOrUpdateTemplateModel)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, max_length=128)
    attributes: tuple[AttributeSpec, ...]

    @field_validator("attributes", mode="before")
    @classmethod
    def _attribute_count(cls, value: object) -> object:
        # Checked before the items, so one bad attribute does not also read as "too few".
        if isinstance(value, list | tuple) and not 1 <= len(value) <= MAX_ATTRIBUTES:
            raise ValueError(f"a template needs 1 to {MAX_ATTRIBUTES} attributes, not {len(value)}")
        return value

    @field_validator("name")
    @classmethod
    def _url_safe(cls, value: str) -> str:
        if value != value.strip():
            raise ValueError("must not start or end with whitespace")
        bad = _BAD_NAME_CHARS.search(value)
        if bad:
            raise ValueError(f"must not contain {bad.group()!r} (names appear in URL paths)")
        return value

    @model_validator(mode="after")
    def _unique_display_names(self) -> TemplateSpec:
        seen: dict[str, int] = {}
        for index, attribute in enumerate(self.attributes):
            first = seen.setdefault(attribute.displayName, index)
            if first != index:
                reason = f"duplicate displayName {attribute.displayName!r} (also attributes[{first}])"
                raise PydanticCustomError(
                    "duplicate", "{reason}", {"reason": reason, "path": f"attributes[{index}].displayName"}
                )
        return self

    def find(self, event: str, field: str, mode: AggregationMode) -> AttributeSpec | None:
        """The first attribute aggregating `field` of `event` with `mode` (what an action rule refers to)."""
        for attribute in self.attributes:
            if (attribute.event, attribute.metaData, attribute.aggregationMode) == (event, field, mode):
                return attribute
        return None


def default_template() -> TemplateSpec:
    """`journey-default-template`: contacts (Webex CC `task:new` events) in the last 24 hours and 10 days.

    Mirrors the template the Webex customer-journey widget and its samples read: Count of `task:new` over
    the `origin` field, shown as a table.
    """
    common: dict[str, object] = {
        "version": "0.1",
        "event": "task:new",
        "metaDataType": "string",
        "metaData": "origin",
        "aggregationMode": "Count",
        "limit": 0,
        "verbose": False,
        "widgetAttributes": {"type": "table"},
    }
    return TemplateSpec.model_validate(
        {
            "name": DEFAULT_TEMPLATE_NAME,
            "attributes": [
                {
                    **common,
                    "displayName": "No of times contacted in the last 24 hours",
                    "lookBackDurationType": "hours",
                    "lookBackPeriod": 24,
                },
                {
                    **common,
                    "displayName": "No of times contacted in the last 10 days",
                    "lookBackDurationType": "days",
                    "lookBackPeriod": 10,
                },
            ],
        }
    )


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """`[{"field": "attributes[2].lookBackPeriod", "reason": ...}]` from a pydantic ValidationError."""
    problems: list[dict[str, str]] = []
    for error in exc.errors(include_url=False):
        field = ""
        for part in error["loc"]:
            field += f"[{part}]" if isinstance(part, int) else f".{part}" if field else str(part)
        sub = str((error.get("ctx") or {}).get("path", ""))
        if sub:
            field = f"{field}{sub}" if sub.startswith("[") or not field else f"{field}.{sub}"
        reason = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            reason = "is required"
        problems.append({"field": field, "reason": reason})
    return problems
