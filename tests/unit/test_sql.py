import pytest

from journey_engine.sql import LATEST_VERSION, QUERIES, migrations, schema
from profiles.sqlfiles import parse_queries


def test_named_queries_are_split_by_header() -> None:
    text = "-- name: a --\nSELECT 1;\n\n-- name: b --\nSELECT 2\nFROM t;\n"
    assert parse_queries(text) == {"a": "SELECT 1;", "b": "SELECT 2\nFROM t;"}


def test_a_query_defined_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        parse_queries("-- name: a --\nSELECT 1;\n-- name: a --\nSELECT 2;")


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [v for v, _, _ in migrations()] == list(range(1, LATEST_VERSION + 1))


def test_schema_records_every_version() -> None:
    for version in range(1, LATEST_VERSION + 1):
        assert f"({version})" in schema().split("INSERT INTO schema_version")[-1]


def test_queries_are_loaded() -> None:
    assert "get_api_key" in QUERIES
