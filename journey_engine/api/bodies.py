"""Reading request bodies into pydantic models, with errors that name the field and the reason."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, ValidationError

from journey_engine.errors import BadRequest, Problem

M = TypeVar("M", bound=BaseModel)


async def read_json(request: web.Request) -> Any:
    """The body as JSON; 400 naming the line and column when it is not JSON, 413 when too large."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest("Malformed body", [Problem("body", "not UTF-8 text")]) from None
    except json.JSONDecodeError as exc:
        problem = Problem("body", f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
        raise BadRequest("Malformed body", [problem]) from None


def problems_of(exc: ValidationError, *, index: int | None = None) -> list[Problem]:
    """pydantic's errors as Problems: `attributes[2].lookBackPeriod: must be at least 1`."""
    out = []
    for err in exc.errors():
        field = ""
        for part in err["loc"]:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        out.append(Problem(field or "body", err["msg"], index))
    return out


def parse_model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest("Invalid request body", problems_of(exc)) from None


async def read_model(request: web.Request, model: type[M]) -> M:
    return parse_model(model, await read_json(request))


_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


def query_int(query: MultiMapping[str], name: str, *, default: int, low: int, high: int) -> int:
    """A whole-number query parameter from `low` to `high` (absent or empty: `default`); else a 400."""
    text = query.get(name) or None
    if text is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(text) or not low <= int(text) <= high:
        reason = f"must be a whole number from {low} to {high}, got {text[:40]!r}"
        raise BadRequest(f"{name}: {reason}", [Problem(name, reason)])
    return int(text)
