"""JSON between the engine and PostgreSQL: text for json and jsonb parameters (profile values, the events of
an ingest batch), what reads back from jsonb unchanged, and reading what PostgreSQL returns."""

from __future__ import annotations

import json
from collections.abc import Callable
from math import copysign
from typing import Any

import orjson


def jsonb_text(value: Any) -> str:
    """JSON text of `value` for a jsonb parameter. jsonb keeps values, not spelling, so orjson writes it
    (about ten times faster than json); json writes what orjson cannot (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)


def reads_back_unchanged(value: Any) -> bool:
    """Whether `value` (as `json.loads` makes it) reads back from a jsonb column (stored through
    `jsonb_text`, read with `loads`) equal to itself, of the same types, object keys aside (jsonb orders
    them its own way). Only floats can change: -0.0 reads back as 0.0; orjson writes one of 1e16 or more
    in magnitude with an exponent ("1e+16"), which jsonb keeps as the integer 10000000000000000; a
    non-finite one (which JSON cannot hold) becomes null."""
    return _every_float(value, _float_reads_back)


def _float_reads_back(value: float) -> bool:
    return -1e16 < value < 1e16 and (value != 0.0 or copysign(1.0, value) > 0)


def loads(text: str) -> Any:
    """`json.loads(text)` for JSON that PostgreSQL gives back (json and jsonb columns), twice as fast on
    the events and values the engine reads: orjson, unless what it read holds a float of 2**63 or more in
    magnitude, which may have been an integer beyond 64 bits (orjson reads those as floats; json keeps
    every integer exact)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # its error, or what only orjson refuses (NaN)
    return value if _every_float(value, _float_is_no_integer_beyond_64_bits) else json.loads(text)


def _float_is_no_integer_beyond_64_bits(value: float) -> bool:
    return -(2.0**63) < value < 2.0**63


def _every_float(value: Any, ok: Callable[[float], bool]) -> bool:
    """Whether `ok` holds for every float in `value`, a decoded JSON value (False for any other type)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return ok(value)
    if kind is dict or kind is list:
        for item in value.values() if kind is dict else value:
            if type(item) is not str and not _every_float(item, ok):  # most are strings
                return False
        return True
    return False
