"""JSON text for json and jsonb parameters (profile values, the events of an ingest batch), and what reads
back from jsonb unchanged."""

from __future__ import annotations

import json
from math import copysign
from typing import Any, Final

import orjson


def jsonb_text(value: Any) -> str:
    """JSON text of `value` for a jsonb parameter. jsonb keeps values, not spelling, so orjson writes it
    (about ten times faster than json); json writes what orjson cannot (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)


_FLOAT_EXACT_BELOW: Final = 1e16
"""orjson writes a float from 1e16 up with an exponent ("1e+16"), which jsonb keeps as the integer
10000000000000000: it reads back as an int."""


def reads_back_unchanged(value: Any) -> bool:
    """Whether `value` (as `json.loads` makes it) reads back from a jsonb column (stored through
    `jsonb_text`, read with `json.loads`) equal to itself, of the same types, object keys aside (jsonb
    orders them its own way). Only floats can change: -0.0 reads back as 0.0, one of 1e16 or more in
    magnitude as an int, a non-finite one (which JSON cannot hold) as null."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return -_FLOAT_EXACT_BELOW < value < _FLOAT_EXACT_BELOW and (value != 0.0 or copysign(1.0, value) > 0)
    if kind is dict or kind is list:
        for item in value.values() if kind is dict else value:
            if type(item) is not str and not reads_back_unchanged(item):  # most are strings
                return False
        return True
    return False
