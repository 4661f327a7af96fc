"""The engine's SQL: `schema.sql` for a fresh database, numbered migrations, and named queries.

Queries live in `queries/<noun>.sql` as blocks headed `-- name: <name> --`; `QUERIES[name]` holds the text.
"""

from __future__ import annotations

import re
from importlib.resources import files

from profiles.sqlfiles import load_queries


def schema() -> str:
    return files(__name__).joinpath("schema.sql").read_text(encoding="utf-8")


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


QUERIES = load_queries(__name__)
LATEST_VERSION = len(migrations())
