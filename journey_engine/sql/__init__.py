"""The engine's SQL: `schema.sql` for a fresh database, numbered migrations, and named queries.

Queries live in `queries.sql` as blocks headed `-- name: <name> --`; `QUERIES[name]` holds the text.
"""

from __future__ import annotations

import re
from importlib.resources import files

_HEADER = re.compile(r"^-- name: (\w+) --$", re.MULTILINE)


def _read(name: str) -> str:
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: x --` blocks into {name: sql}."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip()
    return queries


def schema() -> str:
    return _read("schema.sql")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, sql) of every migration, in order."""
    found = []
    for entry in files(__name__).joinpath("migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


QUERIES = parse_queries(_read("queries.sql"))
LATEST_VERSION = len(migrations())
