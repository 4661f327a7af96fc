"""Named SQL queries kept in `.sql` files: blocks headed `-- name: <name> --` (procrastinate's way).

Each package keeps its queries beside its code and loads them once at import with `load_queries`.
"""

from __future__ import annotations

import re
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
