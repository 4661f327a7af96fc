"""JSON Patch (RFC 6902) of a person, as JDS's ``PATCH .../person-id/{personId}`` takes it.

Operations: ``add``, ``remove``, ``replace``, and ``update`` (the name JDS's schema gives replace).
``<type>`` is one of ``phone``, ``email``, ``customerId``, ``temporaryId``, ``socialId``; a value is one
alias (a string) or a list of them, normalised as at ingest; ``<n>`` counts from 0 in the order the person
lists its aliases of that type.

- ``/firstName``, ``/lastName``: ``add``, ``replace`` set the name (a string, or null); ``remove`` clears it.
- ``/<type>`` (also ``/<type>/-`` and ``/<type>/<n>`` for ``add``: aliases are a set, with no position):
  ``add`` gives the person the value; ``replace`` makes the value exactly the person's aliases of that
  type; ``remove`` with a value removes those, without one every alias of that type.
- ``/<type>/<n>``: ``replace`` puts the value (one alias) in place of the n-th; ``remove`` removes it.

Operations apply in order, all or none (one transaction). Anything else is a 400 naming the operation's
index and path: ``[2].path: '/name' is not a person field ...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, RootModel

from journey_engine import persons
from journey_engine.errors import BadRequest, Problem
from journey_engine.identities import IdentityType, normalise
from journey_engine.person_changes import Edit, Named

MAX_OPERATIONS = 100
_OPS = {"add": "add", "replace": "replace", "update": "replace", "remove": "remove"}
_NAMES = ("firstName", "lastName")
_TYPES = "|".join(kind.value for kind in IdentityType)
_PATH = re.compile(rf"/(firstName|lastName|{_TYPES})(?:/(-|0|[1-9][0-9]{{0,5}}))?")
_PATHS = "/firstName, /lastName, or /<type>, /<type>/-, /<type>/<n> with <type> one of " + _TYPES.replace(
    "|", ", "
)


class PatchOperation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    op: str
    path: str
    value: Any = None  # checked with the path, for a message that says what the path takes


class PatchDocument(RootModel[list[PatchOperation]]):
    """JDS's PatchRequest: a list of PatchDocument operations."""


@dataclass(frozen=True, slots=True)
class Step:
    """One checked operation: ``op`` is add, replace or remove; ``position`` None for the whole field."""

    index: int
    op: str
    field: str
    position: int | None
    value: str | list[str] | None
    has_value: bool


def _bad(index: int, operation: PatchOperation, part: str, reason: str) -> BadRequest:
    return BadRequest(
        f"Invalid patch operation {index} ({operation.op} {operation.path[:100]})",
        [Problem(part, reason, index)],
    )


def parse(operations: list[PatchOperation]) -> list[Step]:
    """Check a patch document's operations; 400 naming the index and the part of the first bad one."""
    if not 1 <= len(operations) <= MAX_OPERATIONS:
        raise BadRequest(
            "Invalid patch document", [Problem("body", f"give 1 to {MAX_OPERATIONS} operations")]
        )
    return [_step(index, operation) for index, operation in enumerate(operations)]


def _step(index: int, operation: PatchOperation) -> Step:
    op = _OPS.get(operation.op)
    if op is None:
        raise _bad(
            index, operation, "op", f"must be add, replace, update or remove, not {operation.op[:40]!r}"
        )
    match = _PATH.fullmatch(operation.path)
    if match is None:
        raise _bad(index, operation, "path", f"{operation.path[:100]!r} is not a person field; use {_PATHS}")
    field, position = match.groups()
    has_value = "value" in operation.model_fields_set
    value = operation.value
    if not (value is None or isinstance(value, str) or (isinstance(value, list) and _all_text(value))):
        raise _bad(index, operation, "value", "must be an alias (a string) or a list of aliases (strings)")
    if field in _NAMES:
        if position is not None:
            raise _bad(index, operation, "path", f"{field} is a single value: use /{field}")
        if op != "remove" and (not has_value or isinstance(value, list)):
            raise _bad(index, operation, "value", f"{op} of /{field} needs a string (or null) value")
    elif op == "add" and value is None:
        raise _bad(index, operation, "value", "add needs an alias or a list of aliases")
    elif op != "add" and position == "-":
        raise _bad(index, operation, "path", f"'-' names no alias: use /{field}/<n> or /{field}")
    elif op == "replace" and position is not None and not isinstance(value, str):
        raise _bad(index, operation, "value", f"replace of /{field}/{position} needs one alias (a string)")
    elif op == "replace" and value is None:
        raise _bad(index, operation, "value", f"replace of /{field} needs an alias or a list of aliases")
    number = int(position) if position not in (None, "-") else None
    return Step(index, op, field, number, value, has_value)


def _all_text(values: list[Any]) -> bool:
    return all(isinstance(v, str) for v in values)


async def apply(changes: Edit, person_id: str, steps: list[Step], region: str) -> None:
    """Apply `steps` to `person_id` (live and locked by `changes`), in order."""
    names: dict[str, str | None] = {}
    for step in steps:
        if step.field in _NAMES:
            names[step.field] = None if step.op == "remove" else _text(step.value)
        else:
            await _alias_step(changes, person_id, step, region)
    await changes.rename(person_id, names)


def _text(value: str | list[str] | None) -> str | None:
    return value if isinstance(value, str) else None


async def _alias_step(changes: Edit, person_id: str, step: Step, region: str) -> None:
    kind = IdentityType(step.field)
    where = f"[{step.index}].value"
    given = [step.value] if isinstance(step.value, str) else list(step.value or [])
    values = list(dict.fromkeys(normalise(kind, v, region, where) for v in given))
    named = [Named(v, kind, where) for v in values]
    (person,) = await persons.fetch(changes.conn, changes.workspace_id, [person_id])
    current = person.of_type(kind)
    if step.op != "add" and step.position is not None and step.position >= len(current):
        raise BadRequest(
            f"Invalid patch operation {step.index} ({step.op} /{step.field}/{step.position})",
            [Problem("path", f"the person has {len(current)} {kind.value} alias(es)", step.index)],
        )
    if step.op == "add":
        await changes.add(person_id, named)
    elif step.op == "remove" and step.position is not None:
        await changes.remove(person_id, [current[step.position]])
    elif step.op == "remove":
        gone = current if not step.has_value or step.value is None else values
        await changes.remove(person_id, await changes.pick(person_id, [(where, (v,)) for v in gone]))
    elif step.position is not None:  # replace the n-th
        if values[0] != current[step.position]:
            await changes.remove(person_id, [current[step.position]])
            await changes.add(person_id, named)
    else:  # replace the whole type
        await changes.remove(person_id, [a for a in current if a not in values])
        await changes.add(person_id, [n for n in named if n.alias not in current])
