"""profiles/sqlfiles.py's array literals against PostgreSQL's own parser: every text arrives as it is."""

from __future__ import annotations

import random

import asyncpg

from profiles.sqlfiles import int_array, text_array

_NASTY = ["", " ", "a", 'say "hi"', "back\\slash", "\\", '"', "a,b", "{x}", "{", "}", "NULL", "null", "é☎",
          "tab\there", "new\nline", "\x01\x1f\x7f", " lead", "trail ", "''", "x" * 300]  # fmt: skip


async def test_text_arrays_arrive_as_the_texts_they_were(db: asyncpg.Connection) -> None:
    rng = random.Random(20261121)
    cases = [[], _NASTY, *[[rng.choice(_NASTY) + rng.choice(_NASTY) for _ in range(rng.randrange(1, 9))]
                           for _ in range(200)]]  # fmt: skip
    for values in cases:
        back = await db.fetchval("SELECT $1::text::text[]", text_array(values))
        assert back == values, values


async def test_int_arrays_arrive_as_the_numbers_they_were(db: asyncpg.Connection) -> None:
    for values in [[], [0], [1, -2, 3], [2**63 - 1, -(2**63)]]:
        assert await db.fetchval("SELECT $1::text::bigint[]", int_array(values)) == values
