"""Named SQL queries kept in `.sql` files: blocks headed `-- name: <name> --` (procrastinate's way).

Each package keeps its queries beside its code and loads them once at import with `load_queries`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.resources import files

_HEADER = re.compile(r"^-- name: (\w+) --$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: x --` blocks into {name: sql}."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip()
    return queries


def load_queries(package: str, folder: str = "queries") -> dict[str, str]:
    """Every `*.sql` file in `package`/`folder`, merged; a name may be defined only once."""
    queries: dict[str, str] = {}
    for entry in sorted(files(package).joinpath(folder).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, sql in parse_queries(entry.read_text(encoding="utf-8")).items():
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice (again in {entry.name})")
            queries[name] = sql
    return queries


def text_array(values: Sequence[str]) -> str:
    """`values` as a PostgreSQL array literal, for a parameter cast `$n::text::text[]`: asyncpg encodes a
    list parameter at ~0.3-0.6 µs an element (it checks each one against the collections.abc classes),
    this text at ~0.1. Every element is quoted, with `\\` and `"` escaped: any text arrives as it is."""
    if not values:
        return "{}"
    return '{"' + '","'.join([v.replace("\\", "\\\\").replace('"', '\\"') for v in values]) + '"}'


def int_array(values: Sequence[int]) -> str:
    """`values` as a PostgreSQL array literal, for a parameter cast `$n::text::bigint[]` (`text_array`)."""
    return "{" + ",".join(map(str, values)) + "}"
