"""Webhook bodies: the trigger's `requestbody`, with `{{placeholders}}` filled in. No code runs.

Placeholders (whitespace inside the braces is ignored):

| placeholder | value |
|---|---|
| `{{person.id}}` | the person's id |
| `{{identity}}` | the identity of the event that caused the firing (else the person's first alias) |
| `{{aliases.phone}}` (`.email`, `.customerId`, `.temporaryId`, `.socialId`) | the first such alias |
| `{{values.<displayName>}}` | the attribute's value as JDS renders it (`result`) |
| `{{action.id}}`, `{{action.name}}`, `{{template.id}}`, `{{template.name}}` | the action and its template |
| `{{event.id}}`, `{{event.type}}`, `{{event.source}}`, `{{event.time}}` | the triggering event |
| `{{event.data.<path>}}` | a field of its data (dots reach nested fields) |
| `{{firing.id}}`, `{{firing.time}}` | the firing |

A value is inserted JSON-escaped without quotes, so write placeholders inside JSON strings:
`{"to": "{{aliases.phone}}", "calls": "{{values.Calls today}}"}`. A placeholder with no value (no such
alias, no triggering event) becomes the empty string. A body without placeholders is sent as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from profiles.aggregation import MISSING, get_path, render_value

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_FIXED = {
    "person.id", "identity", "action.id", "action.name", "template.id", "template.name",
    "event.id", "event.type", "event.source", "event.time", "firing.id", "firing.time",
}  # fmt: skip
_ALIAS_TYPES = ("phone", "email", "customerId", "temporaryId", "socialId")


def unknown_placeholders(body: str, display_names: list[str]) -> list[str]:
    """The placeholders of `body` that name nothing (checked when an action is saved)."""
    unknown = []
    for match in PLACEHOLDER.finditer(body):
        name = match.group(1)
        if name in _FIXED or name.startswith("event.data."):
            continue
        if name.startswith("aliases.") and name.removeprefix("aliases.") in _ALIAS_TYPES:
            continue
        if name.startswith("values.") and name.removeprefix("values.") in display_names:
            continue
        unknown.append(name)
    return unknown


def render(body: str, context: Mapping[str, Any]) -> str:
    """Fill the placeholders of `body` from `context` (keys as in the table; `event.data` a mapping)."""
    if "{{" not in body:
        return body

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        raw: Any
        if name.startswith("event.data."):
            data = context.get("event.data")
            raw = get_path(data, name.removeprefix("event.data.")) if isinstance(data, Mapping) else MISSING
        else:
            raw = context.get(name, MISSING)
        if raw is MISSING or raw is None:
            return ""
        text = raw if isinstance(raw, str) else _text(raw)
        return json.dumps(text, ensure_ascii=False)[1:-1]

    return PLACEHOLDER.sub(value, body)


def _text(raw: Any) -> str:
    if isinstance(raw, dict | list):
        return json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    if isinstance(raw, bool | int | float | str) or hasattr(raw, "isoformat"):
        return render_value(raw)
    return str(raw)
