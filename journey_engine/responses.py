"""JSON answers, written with orjson (about ten times faster than json.dumps on a profile view).

The text differs from json.dumps only in spelling (no spaces, UTF-8 instead of \\u escapes, floats as
orjson writes them), never in value; what orjson cannot write (an integer beyond 64 bits) json does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web


def json_body(data: Any) -> bytes:
    try:
        return orjson.dumps(data)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(data).encode()


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """`web.json_response`, written with orjson."""
    return web.Response(
        body=json_body(data), status=status, headers=headers, content_type="application/json", charset="utf-8"
    )
