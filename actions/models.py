"""Journey actions as the JDS API sends them (pydantic v2), and how their rules read profile values.

An action belongs to a template. Its `rules` use the template rule grammar; each leaf names an attribute
of the template by (event, dataField, mode). A leaf matches the attribute with exactly that triple; when
there is none, the one attribute of that event and field, whatever its mode (the JDS sample action writes
`"Closed Queue,category,string,Value GTE 2"` against a template that counts Closed Queue events). A leaf
that matches no attribute, or several, is refused (400).

`fire` (ours, beyond JDS): `always` (JDS: whenever the rules hold, outside the cooldown) or `on_enter`
(only when the rules go from false to true, also outside the cooldown).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, field_validator

from profiles.aggregation import Typed
from profiles.compute import ProfileValues
from profiles.rules import Rule, RuleError, evaluate, leaves, parse_rules, to_json
from profiles.templates import TemplateSpec

HTTP_VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_COOLDOWN_MINUTES = 525_600  # a year


def _rules(value: object) -> Rule:
    if isinstance(value, dict | str):
        try:
            return parse_rules(value)
        except RuleError as exc:
            raise ValueError(f"{exc.path}: {exc.reason}") from None
    raise ValueError("rules: expected {'logic': ..., 'args'|'condition': ...} or a rule string")


ActionRules = Annotated[Rule, PlainValidator(_rules), PlainSerializer(to_json)]


class WebhookAttributes(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    httpverb: str = "post"
    requestbody: str = ""
    authorizationScheme: str | None = None
    authorization: str | None = None

    @field_validator("httpverb")
    @classmethod
    def _verb(cls, value: str) -> str:
        if value.upper() not in HTTP_VERBS:
            raise ValueError(f"must be one of {', '.join(v.lower() for v in HTTP_VERBS)}")
        return value.lower()


class TriggerSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["Webhook"]
    webhookURL: str = Field(min_length=1, max_length=2048)
    attributes: WebhookAttributes = WebhookAttributes()

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: object) -> object:
        return "Webhook" if isinstance(value, str) and value.lower() == "webhook" else value

    @field_validator("webhookURL")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @property
    def method(self) -> str:
        return self.attributes.httpverb.upper()


class ActionSpec(BaseModel):
    """A journey action (JDS JourneyActionConfigurationUpsertRequestModel, plus `fire`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    isActive: bool = True
    cooldownPeriodInMinutes: int = Field(default=0, ge=0, le=MAX_COOLDOWN_MINUTES)
    rules: ActionRules
    actionTriggers: tuple[TriggerSpec, ...] = Field(default=(), max_length=10)
    fire: Literal["always", "on_enter"] = "always"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value != value.strip() or "/" in value:
            raise ValueError("must not start or end with whitespace nor contain '/'")
        return value


def attribute_for(template: TemplateSpec, event: str, field: str, mode: str) -> int | None:
    """The index of the attribute a rule leaf reads (see the module docstring), or None."""
    triples = [(a.event, a.metaData, a.aggregationMode) for a in template.attributes]
    exact = [i for i, triple in enumerate(triples) if triple == (event, field, mode)]
    if exact:
        return exact[0]
    loose = [i for i, (e, f, _) in enumerate(triples) if (e, f) == (event, field)]
    return loose[0] if len(loose) == 1 else None


def rule_problems(spec: ActionSpec, template: TemplateSpec) -> list[tuple[str, str]]:
    """(field, reason) for each rule leaf that names no attribute of the template."""
    problems = []
    for leaf in leaves(spec.rules):
        if attribute_for(template, leaf.event, leaf.field, leaf.mode) is None:
            names = ", ".join(f"{a.event},{a.metaData},{a.aggregationMode}" for a in template.attributes)
            reason = f"'{leaf.text}' matches no attribute of the template (it has: {names})"
            problems.append(("rules", reason))
    return problems


def holds(spec: ActionSpec, template: TemplateSpec, values: ProfileValues | None) -> bool:
    """Whether the action's rules hold on these values (no values: nothing holds but NEQ)."""

    def lookup(event: str, field: str, mode: str) -> Typed | tuple[Typed, ...] | None:
        index = attribute_for(template, event, field, mode)
        if index is None or values is None:
            return None
        value: Any = values.attributes[index].result.value
        return value  # type: ignore[no-any-return]

    return evaluate(spec.rules, lookup)
