"""JSON text for jsonb parameters (profile values, the events of an ingest batch)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def jsonb_text(value: Any) -> str:
    """JSON text of `value` for a jsonb parameter. jsonb keeps values, not spelling, so orjson writes it
    (about ten times faster than json); json writes what orjson cannot (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
