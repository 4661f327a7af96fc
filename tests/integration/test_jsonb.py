"""profiles/jsonb.py against PostgreSQL's own round trip (jsonb_text in, jsonb or json, text out):
`reads_back_unchanged` says exactly what survives it, and `loads` reads the text as `json.loads` does."""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import asyncpg

from profiles.jsonb import jsonb_text, loads, reads_back_unchanged
from tests.helpers import strict

_FLOATS = [
    0.0, -0.0, 1e16, -1e16, math.nextafter(1e16, 0), -math.nextafter(1e16, 0), 1e15, 9999999999999998.0, 1e-4,
    1e-5, 1.5e-7, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 2.5, -7.0, 123456789.123,
    1.2345678901234568e16, 1e21, math.inf, -math.inf,
]  # fmt: skip


def _float(rng: random.Random) -> float:
    if rng.random() < 0.5:
        return rng.choice(_FLOATS)
    while True:  # any finite double, every exponent as likely
        value: float = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            return value


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(
        ["str", "int", "float", "bool", "null", "dict", "list"] if depth < 3 else ["float", "str"]
    )
    if kind == "str":
        return rng.choice(["", "a", "é", "1e16", "-0.0", "\u2028", "x" * 20])
    if kind == "int":
        return rng.choice([0, -1, 10**16, 2**63, -(2**70), rng.getrandbits(40)])
    if kind == "float":
        return _float(rng)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    items = [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": v for i, v in enumerate(items)} if kind == "dict" else items


async def test_reads_back_unchanged_is_exactly_what_the_jsonb_round_trip_keeps(
    db: asyncpg.Connection,
) -> None:
    rng = random.Random(20261121)
    values = [_value(rng) for _ in range(3000)] + [{"k": f} for f in _FLOATS]
    texts = await db.fetch(
        "SELECT v::jsonb::text AS t FROM unnest($1::text[]) AS v", [jsonb_text(v) for v in values]
    )
    kept = 0
    for value, row in zip(values, texts, strict=True):
        same = strict(json.loads(row["t"])) == strict(value)
        assert reads_back_unchanged(value) == same, (value, row["t"])
        kept += same
    assert kept > 1000 and len(values) - kept > 200  # both answers are well exercised


async def test_loads_reads_what_postgresql_gives_back_as_json_loads_does(db: asyncpg.Connection) -> None:
    rng = random.Random(20261122)
    values = [_value(rng) for _ in range(3000)] + [{"k": f} for f in _FLOATS]
    values = [v for v in values if "Infinity" not in json.dumps(v)]  # refused at ingest (content_hash)
    values += [2**63 - 1, 2**63, 2**64, -(2**63), -(2**63) - 1, 10**30, [1, {"a": -(10**25)}], 9.3e18, -1e19]
    texts = [jsonb_text(v) for v in values]
    rows = await db.fetch(
        "SELECT v::jsonb::text AS b, v::json::text AS j FROM unnest($1::text[]) AS v", texts
    )
    for row in rows:
        for text in (row["b"], row["j"]):
            assert strict(loads(text)) == strict(json.loads(text)), text
    assert strict(loads("[NaN, 1]")[1:]) == strict([1])  # what orjson refuses, json reads
